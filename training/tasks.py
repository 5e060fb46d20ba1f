"""Celery tasks of the training app (queue "gpu"); thin wrappers around `training.runner`.

Jobs ack late and are re-queued if the worker process dies (`task_reject_on_worker_lost`); the
redelivered job then finds its run still "running" with a stale heartbeat and marks it failed with
that reason, so a person can resume it from its last checkpoint. A worker that starts also sweeps
runs whose heartbeat went stale (their worker died while nothing was redelivered).
"""
from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready

from . import runner, services

logger = logging.getLogger(__name__)


@shared_task(name="training.run_training", queue="gpu", acks_late=True, reject_on_worker_lost=True)
def run_training(run_id: int) -> str:
    """Run one TrainingRun (SFT, reward model, RL or sampling) to its end."""
    return runner.execute_run(run_id)


@worker_ready.connect
def _sweep_stale_runs(**kwargs) -> None:
    try:
        n = services.training_runs_fail_stale()
    except Exception:  # a worker must start even if the database is briefly unreachable
        logger.exception("could not sweep stale training runs")
        return
    if n:
        logger.warning("marked %d training run(s) failed: their worker stopped sending heartbeats", n)
