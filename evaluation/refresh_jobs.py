"""Dashboard refreshes as jobs that survive a dead worker (worker side only; pages never write here).

A refresh task records itself in a `RefreshJob` row (one per filter set) under an execution
token and keeps its heartbeat moving while `compute_dashboard` runs. The job sweeper
(`refreshes_recover_stale`, run by a timer in every worker) queues a refresh whose heartbeat went
stale again, at most JOB_MAX_RECOVERIES times, then marks it failed with the reason. A redelivered
task takes over a stale refresh and leaves a live one alone.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from rlaif_site import jobs
from .models import RefreshJob

log = logging.getLogger(__name__)


def refresh_job_claim(*, key: str, filters: dict, rounds: int | None, token: str) -> bool:
    """Record that this execution computes `key`; False when another worker's heartbeat on it is fresh."""
    now = timezone.now()
    with transaction.atomic():
        job, created = RefreshJob.objects.select_for_update().get_or_create(
            key=key, defaults={"filters": filters, "rounds": rounds, "status": RefreshJob.Status.RUNNING,
                               "lease_token": token, "heartbeat_at": now, "started_at": now})
        if created:
            return True
        fresh = job.heartbeat_at is not None and job.heartbeat_at >= now - timedelta(seconds=jobs.stale_s())
        if job.status == RefreshJob.Status.RUNNING and fresh and job.lease_token != token:
            return False
        if job.status == RefreshJob.Status.RUNNING:  # its worker died and this copy was redelivered
            job.recoveries += 1
            job.error = f"worker lost; taken over by a redelivered task (recovery {job.recoveries})"
        elif job.status != RefreshJob.Status.QUEUED:  # a new request, not the sweeper's re-queue
            job.recoveries, job.error = 0, ""
        job.filters, job.rounds, job.status, job.lease_token = filters, rounds, RefreshJob.Status.RUNNING, token
        job.heartbeat_at = job.started_at = now
        job.finished_at = None
        job.save()
    return True


def refresh_job_beat(*, key: str, token: str) -> bool:
    return RefreshJob.objects.filter(key=key, lease_token=token, status=RefreshJob.Status.RUNNING).update(
        heartbeat_at=timezone.now()) > 0


def refresh_job_finish(*, key: str, token: str, error: str = "") -> None:
    """Done, or failed with `error`; a done refresh keeps the note of a recovery it went through."""
    status = RefreshJob.Status.FAILED if error else RefreshJob.Status.DONE
    RefreshJob.objects.filter(key=key, lease_token=token).update(
        status=status, finished_at=timezone.now(), heartbeat_at=timezone.now(), **({"error": error} if error else {}))


def refreshes_recover_stale(*, older_than_s: float | None = None, max_recoveries: int | None = None) -> int:
    """The sweeper of dashboard refreshes: a running refresh whose heartbeat is older than
    `older_than_s` (JOB_STALE_S) lost its worker; it is queued again, at most `max_recoveries`
    (JOB_MAX_RECOVERIES) times, then marked failed. Returns the number of refreshes handled."""
    from .tasks import refresh_dashboard_task

    limit = jobs.recovery_limit(max_recoveries)
    n = 0
    with transaction.atomic():
        lost = jobs.lost_rows(RefreshJob.objects.filter(status=RefreshJob.Status.RUNNING), older_than_s=older_than_s)
        for job in lost:
            n += 1
            job.recoveries += 1
            job.lease_token = ""
            why = f"no heartbeat since {job.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC" if job.heartbeat_at else "no heartbeat"
            if job.recoveries > limit:
                job.status, job.finished_at = RefreshJob.Status.FAILED, timezone.now()
                job.error = f"The worker computing this refresh was lost {jobs.times(job.recoveries)} (last: {why})."
            else:
                job.status = RefreshJob.Status.QUEUED
                job.error = f"worker lost ({why}); queued again (recovery {job.recoveries} of {limit})"
                transaction.on_commit(lambda f=job.filters, r=job.rounds: refresh_dashboard_task.delay(f, r))
            job.save()
            log.warning("dashboard refresh %s: %s", job.key, job.error)
    return n
