"""Celery tasks of the evaluation app (queue "default"): compute and cache dashboard results.

A refresh is a job with a heartbeat (`evaluation.refresh_jobs`): the job sweeper queues one whose
worker died again, and a redelivered copy takes a stale refresh over.
"""
from __future__ import annotations

from celery import shared_task


@shared_task(name="evaluation.refresh_dashboard", queue="default")
def refresh_dashboard_task(filters: dict, rounds: int | None = None) -> int:
    """Recompute the bootstrap/Bradley-Terry/length-controlled results of one filter set."""
    from rlaif_site import jobs

    from . import cache, refresh_jobs, services

    f = cache.filters_from_payload(filters)
    key, token = cache.cache_key(f), jobs.new_token()
    if not refresh_jobs.refresh_job_claim(key=key, filters=filters, rounds=rounds, token=token):
        return -1  # another live worker is computing this filter set
    try:
        with jobs.Heartbeat(lambda: refresh_jobs.refresh_job_beat(key=key, token=token), name="heartbeat-refresh"):
            obj = services.refresh_dashboard(filters=f, rounds=rounds or services.DEFAULT_ROUNDS, skip_if_fresh=True)
    except Exception as exc:
        refresh_jobs.refresh_job_finish(key=key, token=token, error=f"{type(exc).__name__}: {exc}")
        raise
    refresh_jobs.refresh_job_finish(key=key, token=token)
    return obj.n_labels


@shared_task(name="evaluation.run_experiment", queue="gpu", acks_late=True, reject_on_worker_lost=True)
def run_experiment(experiment_id: int) -> str:
    """Drive an experiment (`evaluation.experiments`) on a gpu worker; a redelivered copy goes on
    from the last finished step, or drops out while a live worker drives it."""
    from .experiments import experiment_run

    return experiment_run(experiment_id=experiment_id).status
