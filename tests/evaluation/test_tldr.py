"""With the shipped OpenAI TL;DR comparisons imported, the dashboards say what the labels say.

Expected figures are computed here directly from the JSONL, independently of the app's code."""
from __future__ import annotations

import csv
import io
import json
from collections import defaultdict

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from evaluation import services
from evaluation.selectors import Filters

from .conftest import TLDR, load_tldr

pytestmark = pytest.mark.django_db
DS = "tldr-sample"


def jsonl_rows():
    return [json.loads(line) for line in TLDR.open()]


def expected_share(rows, x: str, y: str) -> tuple[float, int]:
    """Share of human labels preferring policy x's summary over policy y's."""
    won = n = 0
    for r in rows:
        pols = (r["policy_a"], r["policy_b"])
        if set(pols) != {x, y}:
            continue
        n += 1
        won += pols[r["choice"]] == x
    return won / n, n


@pytest.fixture
def tldr(db):
    load_tldr(dataset=DS)
    services.refresh_dashboard(filters=Filters(dataset=DS), rounds=100)
    return jsonl_rows()


def _long_rows(client, judge="humans"):
    r = client.get(reverse("evaluation:winrates"), {"dataset": DS, "judge": judge})
    assert r.status_code == 200
    return r, {(row["policy"], row["opponent"]): row for row in r.context["tables"][0].rows}


def test_winrate_dashboard_matches_human_labels(client, annotator, tldr):
    client.force_login(annotator)
    r, rows = _long_rows(client)
    pairs = [("sup4_ppo_rm4_t.7", "sup4_12b_t0.7")] + [
        ("ref", sup) for sup in ("sup4_6b", "sup4_6b_t0.7", "sup4_6b_p.95")
    ]
    for x, y in pairs:
        want, n = expected_share(tldr, x, y)
        got = rows[(x, y)]
        assert got["n"] == n
        assert got["rate"] == pytest.approx(want)
        assert got["wilson"][0] < got["rate"] < got["wilson"][1]
        assert got["boot"][0] <= got["rate"] <= got["boot"][1]
        assert rows[(y, x)]["rate"] == pytest.approx(1 - want)
    ppo, n = expected_share(tldr, "sup4_ppo_rm4_t.7", "sup4_12b_t0.7")
    assert ppo > 0.5 and n == 750  # the RLHF policy beats the 12B supervised baseline, as labeled
    assert rows[("sup4_ppo_rm4_t.7", "sup4_12b_t0.7")]["wilson"][0] > 0.5
    assert rows[("sup4_ppo_rm4_t.7", "sup4_12b_t0.7")]["lc"] is not None
    html = r.content.decode()
    assert "Trivial: prefer the longer summary" in html and "shared with the post" in html


def test_trivial_judges_alignment_computed_from_texts(client, annotator, tldr):
    """The longer-summary judge's agreement with the human majority, recomputed from the JSONL."""
    votes = defaultdict(list)
    texts = {}
    for r in tldr:
        key = (r["post_id"], frozenset((r["summary_a"], r["summary_b"])))
        votes[key].append(r["summary_a"] if r["choice"] == 0 else r["summary_b"])
        texts[key] = (r["summary_a"], r["summary_b"])
    agree = n = 0.0
    for key, vs in votes.items():
        a, b = texts[key]
        na = sum(v == a for v in vs)
        if 2 * na == len(vs):
            continue
        human_a = 2 * na > len(vs)
        n += 1
        agree += 0.5 if len(a) == len(b) else float((len(a) > len(b)) == human_a)
    client.force_login(annotator)
    r = client.get(reverse("evaluation:alignment"), {"dataset": DS})
    row = next(x for x in r.context["tables"][0].rows if x["judge"] == "Trivial: prefer the longer summary")
    assert row["n"] == n
    assert row["alignment"] == pytest.approx(agree / n)
    overlap = next(x for x in r.context["tables"][0].rows if "shared with the post" in x["judge"])
    assert 0.5 < overlap["alignment"] < 0.8
    hh = next(x for x in r.context["tables"][0].rows if x["judge"].startswith("Human-human"))
    assert hh["n"] > 0


def test_leaderboard_orders_policies_by_human_labels(client, annotator, tldr):
    client.force_login(annotator)
    r = client.get(reverse("evaluation:leaderboard"), {"dataset": DS})
    assert r.status_code == 200
    rows = {row["policy"]: row for row in r.context["tables"][0].rows}
    ppo, sup = rows["sup4_ppo_rm4_t.7"], rows["sup4_12b_t0.7"]
    assert ppo["rating"] > sup["rating"]
    assert ppo["rating_ci"][0] <= ppo["rating"] <= ppo["rating_ci"][1]
    assert "bt-data" in r.content.decode()


def test_evaluate_command_prints_tables(tldr):
    out = io.StringIO()
    call_command("evaluate", "--dataset", DS, "--rounds", "50", stdout=out)
    text = out.getvalue()
    for needle in ("AI-labeler alignment", "Win rates judged by Humans", "Bradley-Terry leaderboard",
                   "Trivial: prefer the longer summary", "sup4_ppo_rm4_t.7", "Inter-annotator agreement"):
        assert needle in text
    want, _ = expected_share(tldr, "sup4_ppo_rm4_t.7", "sup4_12b_t0.7")
    assert f"{100 * want:.1f}%" in text

    out = io.StringIO()
    call_command("evaluate", "--dataset", DS, "--no-compute", "--format", "csv", stdout=out)
    block = out.getvalue().split("# winrates: ")[1].split("\n# ")[0]
    rows = list(csv.DictReader(io.StringIO(block.split("\n", 1)[1])))
    row = next(r for r in rows if r["policy"] == "sup4_ppo_rm4_t.7" and r["opponent"] == "sup4_12b_t0.7")
    assert float(row["rate"]) == pytest.approx(want)


def test_evaluate_command_rejects_unknown_dataset(db):
    with pytest.raises(CommandError, match="no dataset named"):
        call_command("evaluate", "--dataset", "nope")
