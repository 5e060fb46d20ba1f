"""Both shipped files imported (TL;DR and HH-RLHF, whose replies all sit under the unknown policy):
the "All datasets" dashboards keep Bradley-Terry, length control, bootstrap intervals, kappa and
alpha, and the win-rate pages say how many same-policy labels they leave out."""
from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from evaluation import cache
from evaluation.selectors import Filters

from .conftest import DATA, TLDR

pytestmark = pytest.mark.django_db
HH = DATA / "hh_rlhf_helpful_comparisons_sample.jsonl"


def test_evaluate_all_datasets_with_same_policy_comparisons(client, annotator):
    call_command("import_comparisons", str(TLDR), stdout=io.StringIO())
    call_command("import_comparisons", str(HH), stdout=io.StringIO())
    n_same = sum(1 for line in HH.open())  # every HH comparison: "unknown" vs "unknown"
    tldr_same = sum(1 for line in TLDR.open() if (r := json.loads(line))["policy_a"] == r["policy_b"])

    out = io.StringIO()
    call_command("evaluate", "--rounds", "20", stdout=out)  # all datasets: used to raise in PairCounts
    text = out.getvalue()
    assert "== Win rates judged by Humans ==" in text
    assert f"Left out: {n_same + tldr_same:,} label(s) of comparisons with the same policy" in text

    result = cache.stored_result(Filters()).value["result"]
    humans = result["judges"]["humans"]
    assert humans["bt"] is not None and humans["pairs"]
    assert all(i != j for i, j, *_ in humans["pairs"])
    assert any(p[5] is not None for p in humans["pairs"])  # bootstrap intervals
    assert any(p[7] is not None for p in humans["pairs"])  # length-controlled win rates
    assert result["agreement"]["alpha"] is not None and result["agreement"]["kappa_pairs"] > 0

    client.force_login(annotator)
    page = client.get(reverse("evaluation:winrates"))
    assert page.status_code == 200 and page.context["same_policy_left_out"] == n_same + tldr_same
    assert f"Left out of win rates: {n_same + tldr_same}" in page.content.decode()
    assert "unknown" not in {row["policy"] for row in page.context["tables"][0].rows}
