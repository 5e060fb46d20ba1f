"""The import directions of ../shared/ARCHITECTURE.md, held by parsing every module's imports.

- The plain-Python cores (``labeling/judges``, ``training/ml``, ``evaluation/metrics.py``,
  ``labeling/formats.py``) import no Django and none of the apps: only themselves and
  ``labeling/formats.py`` (which imports nothing of ours).
- ``labeling`` imports neither ``training`` nor ``evaluation``; ``training`` does not import
  ``evaluation``.

Imports inside functions count too (``ast.walk`` sees them); relative imports are resolved.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
APPS = ("labeling", "training", "evaluation", "rlaif_site")
FRAMEWORK = ("django", "celery", "django_htmx", "environ")
FORMATS = "labeling.formats"

# core (as a module prefix) -> the modules it is made of
CORES = {
    "labeling.judges": "labeling/judges",
    "training.ml": "training/ml",
    "evaluation.metrics": "evaluation/metrics.py",
    "labeling.formats": "labeling/formats.py",
}
# app -> apps it must not import
APP_RULES = {"labeling": ("training", "evaluation"), "training": ("evaluation",)}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, dotted name) of everything ``source`` imports; ``from a import b`` gives ``a.b``."""
    package = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            out += [(node.lineno, f"{base}.{a.name}" if base else a.name) for a in node.names]
    return out


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(module: str, imports: list[tuple[int, str]]) -> list[str]:
    """Each import of ``module`` that breaks a direction, as "module:line imports name"."""
    bad = []
    core = next((c for c in CORES if _within(module, c)), None)
    app = module.split(".")[0]
    for line, name in imports:
        if core is not None:
            ours = any(_within(name, p) for p in APPS + FRAMEWORK)
            allowed = _within(name, core) or (core != FORMATS and _within(name, FORMATS))
            if ours and not allowed:
                bad.append(f"{module}:{line} imports {name} (a plain-Python core imports no Django and no app)")
        for other in APP_RULES.get(app, ()):
            if _within(name, other):
                bad.append(f"{module}:{line} imports {name} ({app} must not import {other})")
    return bad


def python_files():
    for app in APPS:
        for path in sorted((REPO / app).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def test_import_directions_hold():
    found = []
    for path in python_files():
        module = module_name(path)
        imports = imported_modules(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")
        found += violations(module, imports)
    assert not found, "import directions broken (see ../shared/ARCHITECTURE.md):\n" + "\n".join(found)


def test_every_core_exists():
    """A renamed core would make its rule silently hold for nothing."""
    for path in CORES.values():
        assert (REPO / path).exists(), path


@pytest.mark.parametrize("module,source,expected", [
    ("labeling.judges.prompts", "from django.conf import settings", "django.conf.settings"),
    ("labeling.judges.local", "def f():\n    from ..models import Comparison", "labeling.models.Comparison"),
    ("labeling.judges.local", "from training.ml import rl", "training.ml.rl"),
    ("training.ml.reward", "import labeling.judges.labeler", "labeling.judges.labeler"),
    ("evaluation.metrics", "from . import selectors", "evaluation.selectors"),
    ("labeling.formats", "from labeling.models import Post", "labeling.models.Post"),
    ("labeling.services.assignments", "from training import services", "training.services"),
    ("labeling.views", "from evaluation.metrics import share", "evaluation.metrics.share"),
    ("training.services", "from evaluation import compute", "evaluation.compute"),
])
def test_the_checker_catches_each_kind_of_violation(module, source, expected):
    bad = violations(module, imported_modules(source, module))
    assert bad and all(expected in b for b in bad)


@pytest.mark.parametrize("module,source", [
    ("labeling.judges.prompts", "from labeling.formats import format_tldr_prompt"),
    ("labeling.judges.local", "from ..formats import words\nfrom .prompts import build\nimport numpy"),
    ("training.ml.rl", "from labeling import formats\nfrom .common import x"),
    ("evaluation.metrics", "from labeling import formats"),
    ("evaluation.views", "from labeling.models import Post\nfrom training.models import ModelArtifact"),
    ("training.services", "from labeling.judges import labeler"),
])
def test_the_checker_allows_the_agreed_directions(module, source):
    assert violations(module, imported_modules(source, module)) == []
