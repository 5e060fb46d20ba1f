"""Stored dashboard results and refresh requests: GETs with many filter sets cannot grow background
work without bound (one refresh per filter set in flight, a rate limit, eviction of old results),
GETs write nothing to the database, and alignment's SQL fast path equals its numpy definition."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.urls import reverse

from evaluation import cache, compute, metrics, selectors, services, tasks
from evaluation.models import CachedResult
from evaluation.selectors import Filters
from labeling.models import HumanLabel

from .conftest import load_tldr

pytestmark = pytest.mark.django_db


def test_gets_with_many_filter_sets_queue_a_bounded_number_and_write_nothing(
        client, annotator, small_world, no_queue, settings, django_capture_on_commit_callbacks):
    settings.EVALUATION_REFRESH_RATE = (5, 3600)
    client.force_login(annotator)
    before = CachedResult.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        for day in range(1, 31):
            r = client.get(reverse("evaluation:alignment"), {"date_from": f"2001-01-{day:02d}"})
            assert r.status_code == 200
    assert len(no_queue) == 5  # the rate limit, not one per filter set
    assert CachedResult.objects.count() == before  # GETs wrote no row
    r = client.get(reverse("evaluation:alignment"), {"date_from": "2001-01-30"})
    assert r.context["state"].throttled and "busy with other filter sets" in r.content.decode()
    # the same filter set again: in flight already, nothing new even when the limit allows
    settings.EVALUATION_REFRESH_RATE = (100, 3600)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            client.get(reverse("evaluation:winrates"), {"date_from": "2001-01-01"})
    assert len(no_queue) == 5


def test_one_refresh_per_filter_set_in_flight_until_the_worker_stores_it(small_world, no_queue,
                                                                         django_capture_on_commit_callbacks):
    f = Filters(dataset="small")
    with django_capture_on_commit_callbacks(execute=True):
        assert cache.refresh_request(filters=f) is True
        assert cache.refresh_request(filters=f) is False
        assert cache.refresh_request(filters=Filters(campaign="c1")) is True
    assert len(no_queue) == 2 and cache.refresh_pending(f)
    tasks.refresh_dashboard_task(no_queue[0], rounds=10)
    assert not cache.refresh_pending(f)
    with django_capture_on_commit_callbacks(execute=True):
        assert cache.refresh_request(filters=f) is True  # done: a later request may queue again
        assert cache.refresh_request(filters=f, force=True) is True  # staff "Recompute" always queues
    assert len(no_queue) == 4


def test_worker_skips_a_duplicate_request_when_the_result_is_fresh(small_world, no_queue):
    f = Filters(dataset="small")
    services.refresh_dashboard(filters=f, rounds=10)
    first = CachedResult.objects.get(key=cache.cache_key(f))
    tasks.refresh_dashboard_task(cache.filters_payload(f), rounds=10)
    assert CachedResult.objects.get(key=cache.cache_key(f)).computed_at == first.computed_at
    comp, _ = small_world["comps"][0]
    HumanLabel.objects.create(comparison=comp, worker_id="w9", choice=1, confidence=8)
    assert not cache.is_fresh(f)
    assert tasks.refresh_dashboard_task(cache.filters_payload(f), rounds=10) == first.n_labels + 1


def test_old_results_are_evicted_and_the_unfiltered_one_kept(small_world, settings):
    settings.EVALUATION_MAX_RESULTS = 3
    services.refresh_dashboard(filters=Filters(), rounds=5)
    keys = []
    for day in range(1, 6):
        f = Filters(date_from=dt.date(2001, 1, day))
        services.refresh_dashboard(filters=f, rounds=5)
        keys.append(cache.cache_key(f))
    left = set(CachedResult.objects.values_list("key", flat=True))
    assert left == {cache.cache_key(Filters()), *keys[-2:]}
    settings.EVALUATION_RESULT_MAX_AGE_DAYS = 1
    CachedResult.objects.filter(key=keys[-1]).update(computed_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    assert cache.results_evict() == 1
    assert not CachedResult.objects.filter(key=keys[-1]).exists()


def _numpy_alignment(f: Filters) -> dict[int, dict]:
    """Alignment per labeler config straight from the label rows and ``metrics.alignment``."""
    H, A = selectors.human_rows(f), selectors.ai_rows(f)
    hv = metrics.human_majority(H["cid"], H["choice"], H["confidence"])
    return {int(c): compute.alignment_counts(A["cid"][A["config"] == c], A["p_a"][A["config"] == c], hv)
            for c in np.unique(A["config"])}


def _assert_same(sql: dict, ref: dict) -> None:
    assert set(sql) == {k for k, v in ref.items() if v["n"]}
    for k, v in sql.items():
        assert v["n"] == ref[k]["n"] and v["n_hc"] == ref[k]["n_hc"]
        assert v["agree"] == pytest.approx(ref[k]["agree"]) and v["agree_hc"] == pytest.approx(ref[k]["agree_hc"])


@pytest.mark.parametrize("f", [Filters(), Filters(dataset="small"), Filters(campaign="c1"),
                               Filters(date_to=dt.date(2000, 1, 1))], ids=["all", "dataset", "campaign", "empty"])
def test_sql_alignment_fast_path_equals_the_numpy_definition(small_world, f):
    comp, _ = small_world["comps"][2]
    HumanLabel.objects.create(comparison=comp, worker_id="w3", choice=0, confidence=None)  # unknown confidence
    _assert_same(selectors.alignment_counts(f), _numpy_alignment(f))


def test_sql_alignment_equals_numpy_on_the_shipped_tldr_labels(db):
    from labeling.models import AILabel, Comparison, LabelerConfig

    load_tldr(dataset="tldr-sample")
    cfg = LabelerConfig.objects.create(name="rng", model="tiny")
    rng = np.random.default_rng(0)
    comps = list(Comparison.objects.values_list("pk", flat=True)[:400])
    p = rng.choice([0.1, 0.4, 0.5, 0.6, 0.9], size=len(comps))
    AILabel.objects.bulk_create([AILabel(comparison_id=c, config=cfg, p_a=float(x)) for c, x in zip(comps, p)])
    _assert_same(selectors.alignment_counts(Filters()), _numpy_alignment(Filters()))
    stored = compute.compute_dashboard(filters=Filters(), rounds=5)["sql"]["alignment"]
    _assert_same({int(k): v for k, v in stored.items()}, _numpy_alignment(Filters()))
