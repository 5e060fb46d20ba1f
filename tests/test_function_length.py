"""Issue 14: no function outside bench/ and tests/ is over 60 lines (end_lineno - lineno + 1, its
decorators not counted), so each reads on one screen; long loops are split into named steps."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 60
NOT_APPS = {"bench", "tests"}


def _app_files() -> list[Path]:
    """Top-level .py files and every Python package of the repository but bench/ and tests/
    (migrations are generated)."""
    packages = [d for d in ROOT.iterdir() if (d / "__init__.py").exists() and d.name not in NOT_APPS]
    files = list(ROOT.glob("*.py")) + [p for d in packages for p in d.rglob("*.py")]
    return [p for p in files if "migrations" not in p.parts]


def long_functions(source: str, max_lines: int = MAX_LINES) -> list[tuple[str, int]]:
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > max_lines]


def test_the_rule_sees_a_long_function():
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    assert long_functions(f"def f():\n{body}\n") == [("f", 62)]
    assert long_functions("class C:\n    def g(self):\n        pass\n") == []


def test_no_function_over_60_lines():
    files = _app_files()
    assert any(p.name == "runner.py" for p in files)  # the walk reaches the apps
    found = [f"{p.relative_to(ROOT)}: {name} ({n} lines)" for p in files
             for name, n in long_functions(p.read_text(encoding="utf-8"))]
    assert not found, "split these into named steps:\n" + "\n".join(found)
