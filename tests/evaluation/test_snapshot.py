"""The label snapshot and the on-demand result of a filter set nobody computed yet: the snapshot
masked by a filter set selects the labels the SQL filters select, labels written after it are
added, and the on-demand result equals the worker's figures without its intervals."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.db import connection
from django.urls import reverse

from evaluation import compute, selectors, snapshot
from evaluation.models import LabelSnapshot
from labeling.models import AILabel, HumanLabel

FILTER_SETS = [
    selectors.Filters(),
    selectors.Filters(dataset="small"),
    selectors.Filters(dataset="nope"),
    selectors.Filters(campaign="c1"),
    selectors.Filters(date_from=dt.date(2001, 1, 1)),
    selectors.Filters(date_to=dt.date(2001, 1, 1)),
]


DAYS = [dt.datetime(2000, 12, 30, 23, 59, 59, tzinfo=dt.UTC), dt.datetime(2000, 12, 31, 12, tzinfo=dt.UTC),
        dt.datetime(2001, 1, 1, tzinfo=dt.UTC)]  # the last one on a filter's day boundary


def _spread_dates(world) -> None:
    """Labels on three days, so that date filters select a part."""
    for n, pk in enumerate(HumanLabel.objects.order_by("pk").values_list("pk", flat=True)):
        HumanLabel.objects.filter(pk=pk).update(created_at=DAYS[n % 3])
    AILabel.objects.filter(config=world["biased"]).update(created_at=DAYS[1])


def _worker_figures(result: dict) -> dict:
    """The parts of a worker result that the on-demand one also has, intervals dropped."""
    judges = {k: {"label": v["label"], "pairs": [p[:5] for p in v["pairs"]],
                  "theta": v["bt"] and pytest.approx(v["bt"]["theta"], abs=1e-6)} for k, v in result["judges"].items()}
    return {"judges": judges, "alignment": result["sql"]["alignment"], "trivial_alignment": result["trivial_alignment"],
            "human_human": result["human_human"], "policies": result["policies"], "n_human": result["n_human"],
            "n_ai": result["n_ai"]}


def _quick_figures(result: dict) -> dict:
    judges = {k: {"label": v["label"], "pairs": [p[:5] for p in v["pairs"]], "theta": v["bt"] and v["bt"]["theta"]}
              for k, v in result["judges"].items()}
    assert all(p[5:] == [None] * 5 for v in result["judges"].values() for p in v["pairs"])  # no intervals
    return {"judges": judges, "alignment": result["aggregates"]["alignment"], "trivial_alignment": result["trivial_alignment"],
            "human_human": result["human_human"], "policies": result["policies"], "n_human": result["n_human"],
            "n_ai": result["n_ai"]}


@pytest.mark.parametrize("f", FILTER_SETS, ids=lambda f: f.key() or "all")
def test_masked_snapshot_selects_what_the_sql_filters_select(small_world, f):
    _spread_dates(small_world)
    rows = snapshot.mask(snapshot.snapshot_build(), f)
    humans = sorted(selectors.human_labels(f).values_list("comparison_id", "choice"))
    assert sorted(zip(rows.humans["cid"].tolist(), rows.humans["choice"].astype(int).tolist())) == humans
    ai = sorted(selectors.ai_labels(f).filter(p_a__isnull=False).values_list("comparison_id", "config_id"))
    assert sorted(zip(rows.ai["cid"].tolist(), rows.ai["config"].tolist())) == ai
    assert rows.comps["cid"].tolist() == sorted({c for c, _ in humans} | {c for c, _ in ai})


@pytest.mark.parametrize("f", FILTER_SETS, ids=lambda f: f.key() or "all")
def test_on_demand_result_equals_the_workers_without_intervals(small_world, f):
    _spread_dates(small_world)
    worker = compute.compute_dashboard(filters=f, rounds=20)
    quick = compute.quick_result(snapshot.rows_for(f))
    assert quick["partial"] and _quick_figures(quick) == _worker_figures(worker)


@pytest.mark.parametrize("f", FILTER_SETS, ids=lambda f: f.key() or "all")
def test_on_demand_pair_counts_equal_the_sql_aggregates(small_world, f):
    _spread_dates(small_world)
    given = compute.quick_result(snapshot.rows_for_worker(f))["aggregates"]
    sql = compute.sql_aggregates(f, ["human_pairs", "ai_pairs"])
    assert sorted(given["human_pairs"]) == sorted(sql["human_pairs"])
    assert given["human_pairs"] or f.dataset == "nope"
    assert sorted(given["ai_pairs"]) == sorted(sql["ai_pairs"])


def test_labels_written_after_the_snapshot_are_added(small_world):
    compute.compute_dashboard(filters=selectors.Filters(), rounds=20)  # stores the snapshot
    stored = LabelSnapshot.objects.get()
    assert (stored.watermark_human, stored.n_human) == (HumanLabel.objects.latest("pk").pk, HumanLabel.objects.count())
    comp, rl_is_a = small_world["comps"][2]
    HumanLabel.objects.create(comparison=comp, worker_id="w3", choice=0 if rl_is_a else 1, confidence=5)
    f = selectors.Filters(dataset="small")
    rows = snapshot.rows_for(f)
    assert len(rows.humans["cid"]) == HumanLabel.objects.count()
    snapshot._LOADED[:] = [None, None]  # as another process: loads the stored one, then adds the new label
    fresh = compute.compute_dashboard(filters=f, rounds=20)
    assert _quick_figures(compute.quick_result(snapshot.rows_for(f))) == _worker_figures(fresh)


def test_the_worker_leaves_out_labels_deleted_after_the_snapshot(small_world):
    compute.compute_dashboard(filters=selectors.Filters(), rounds=20)  # stores a snapshot
    HumanLabel.objects.filter(worker_id="w2").delete()
    result = compute.compute_dashboard(filters=selectors.Filters(dataset="small"), rounds=20)
    assert result["n_human"] == HumanLabel.objects.count() == 6
    assert sum(n for *_, n in result["sql"]["human_pairs"]) == 6


def test_first_visit_shows_alignment_and_trivial_judges_before_the_worker(client, annotator, small_world, no_queue):
    client.force_login(annotator)
    r = client.get(reverse("evaluation:alignment"), {"date_from": "2001-01-01"})
    state = r.context["state"]
    assert state.partial and state.pending and "computing the bootstrap intervals" in r.content.decode()
    rows = {row["judge"]: row for row in r.context["tables"][0].rows}
    trivial = next(v for k, v in rows.items() if k.startswith("Trivial: prefer the longer"))
    assert trivial["alignment"] is not None and trivial["verdict"] == ""
    r = client.get(reverse("evaluation:leaderboard"), {"date_from": "2001-01-01"})
    ranked = [row for row in r.context["tables"][0].rows if row["rating"] is not None]
    assert [row["policy"] for row in ranked] == ["rl", "sft-<b>"] and ranked[0]["rating_ci"] == [None, None]


def test_large_database_without_a_snapshot_waits_for_the_worker(client, annotator, small_world, no_queue, settings):
    settings.EVALUATION_QUICK_WITHOUT_SNAPSHOT = 0  # as if it held millions of labels
    client.force_login(annotator)
    r = client.get(reverse("evaluation:alignment"))
    assert not r.context["state"].partial and r.context["state"].result is None
    compute.compute_dashboard(filters=selectors.Filters(dataset="small"), rounds=20)  # the worker stores a snapshot
    r = client.get(reverse("evaluation:alignment"), {"campaign": "c1"})
    assert r.context["state"].partial


def test_bulk_read_equals_the_row_read(small_world):
    """The snapshot's bulk PostgreSQL read (one bytea per column, raters as codes) gives the rows
    the generic read gives: user names and worker ids, NULL confidence and campaign, times."""
    if connection.vendor != "postgresql":
        pytest.skip("the bulk read is PostgreSQL's")
    comp, _ = small_world["comps"][1]
    HumanLabel.objects.create(comparison=comp, worker_id="w'\\x", choice=1)  # no confidence, no campaign
    for load, where in ((snapshot._humans, "h.id > %s"), (snapshot._ai, "a.id > %s"), (snapshot._comps, "c.id > %s")):
        bulk, rows = load(where, [0], bulk=True), load(where, [0])
        order_b = np.lexsort([bulk["time"] if "time" in bulk else bulk["cid"], bulk["cid"]])
        order_r = np.lexsort([rows["time"] if "time" in rows else rows["cid"], rows["cid"]])
        assert set(bulk) == set(rows) and len(bulk["cid"]) > 0
        for k in bulk:
            assert bulk[k][order_b].tolist() == pytest.approx(rows[k][order_r].tolist(), nan_ok=True) \
                if bulk[k].dtype != object else bulk[k][order_b].tolist() == rows[k][order_r].tolist(), k


def test_a_stored_snapshot_loads_as_it_was_built(small_world):
    _spread_dates(small_world)
    rows = snapshot.snapshot_build()
    snapshot.snapshot_store(rows)
    snapshot._LOADED[:] = [None, None]  # as another process
    loaded = snapshot.snapshot_latest()
    assert loaded is not rows and loaded.watermark == rows.watermark
    for part in ("humans", "ai", "comps"):
        built, got = getattr(rows, part), getattr(loaded, part)
        assert set(built) == set(got)
        for k in built:
            want = np.floor(built[k]) if k == "time" else built[k]  # stored as whole seconds
            assert got[k].tolist() == pytest.approx(want.tolist(), nan_ok=True) if got[k].dtype.kind in "fiu" \
                else got[k].tolist() == want.tolist(), (part, k)
    assert [p.tolist() for p in loaded.positions()] == [p.tolist() for p in rows.positions()]
