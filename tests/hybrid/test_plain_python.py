"""The hybrid-labeling numbers stay plain Python: calibration and the routing simulation import no
Django and no app beyond the numpy metrics core (labeling/judges/trust.py is held by test_architecture)."""
from __future__ import annotations

import pytest

from tests.test_architecture import REPO, imported_modules

ALLOWED = ("evaluation.metrics", "labeling.formats")


@pytest.mark.parametrize("path, module", [("evaluation/calibration.py", "evaluation.calibration"),
                                          ("evaluation/routing.py", "evaluation.routing")])
def test_calibration_and_routing_are_plain_python(path, module):
    bad = [name for _, name in imported_modules((REPO / path).read_text(), module)
           if name.split(".")[0] in ("django", "labeling", "training", "evaluation", "rlaif_site", "celery")
           and not any(name == a or name.startswith(a + ".") for a in ALLOWED)]
    assert bad == []
