"""Dashboard refreshes survive a dead worker: the task records a RefreshJob with a heartbeat, a
copy of the task leaves a live refresh alone and takes over a stale one, and the sweeper queues a
stale refresh again, up to JOB_MAX_RECOVERIES times, then marks it failed."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from evaluation import cache, refresh_jobs, tasks
from evaluation.models import CachedResult, RefreshJob
from evaluation.selectors import Filters

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    out = []
    monkeypatch.setattr(tasks.refresh_dashboard_task, "delay", lambda payload, rounds=None: out.append((payload, rounds)))
    return out


def test_the_task_records_its_refresh_and_leaves_a_live_one_alone(small_world):
    f = Filters(dataset="small")
    payload, key = cache.filters_payload(f), cache.cache_key(f)
    RefreshJob.objects.create(key=key, filters=payload, status=RefreshJob.Status.RUNNING, lease_token="live",
                              heartbeat_at=timezone.now())
    assert tasks.refresh_dashboard_task(payload, rounds=5) == -1  # another worker is on it
    assert not CachedResult.objects.filter(key=key).exists()

    RefreshJob.objects.filter(key=key).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    n = tasks.refresh_dashboard_task(payload, rounds=5)  # its worker died: taken over
    job = RefreshJob.objects.get(key=key)
    assert n == CachedResult.objects.get(key=key).n_labels > 0
    assert job.status == RefreshJob.Status.DONE and job.lease_token not in ("", "live") and job.finished_at
    assert job.recoveries == 1 and "taken over by a redelivered task" in job.error


def test_sweeper_requeues_a_stale_refresh_then_fails_it(small_world, sent, django_capture_on_commit_callbacks):
    payload = cache.filters_payload(Filters(dataset="small"))
    job = RefreshJob.objects.create(key="k", filters=payload, rounds=7, status=RefreshJob.Status.RUNNING,
                                    lease_token="dead", heartbeat_at=timezone.now())
    assert refresh_jobs.refreshes_recover_stale() == 0
    RefreshJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        assert refresh_jobs.refreshes_recover_stale(max_recoveries=1) == 1
    job.refresh_from_db()
    assert job.status == RefreshJob.Status.QUEUED and sent == [(payload, 7)] and "recovery 1 of 1" in job.error
    RefreshJob.objects.filter(pk=job.pk).update(status=RefreshJob.Status.RUNNING,
                                                heartbeat_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        assert refresh_jobs.refreshes_recover_stale(max_recoveries=1) == 1
    job.refresh_from_db()
    assert job.status == RefreshJob.Status.FAILED and "lost 2 times" in job.error and len(sent) == 1
