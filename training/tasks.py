"""Celery tasks of the training app (queue "gpu"); thin wrappers around `training.runner`.

Jobs ack late and are re-queued if the worker process dies (`task_reject_on_worker_lost`). A run
whose worker died is found by the job sweeper (`training.services.training_runs_recover_stale`,
run by a timer in every worker) and queued again from its last checkpoint; a redelivered task
that finds its run still "running" with a stale heartbeat takes it over (see `runner.execute_run`).
"""
from __future__ import annotations

from celery import shared_task

from . import runner


@shared_task(name="training.run_training", queue="gpu", acks_late=True, reject_on_worker_lost=True)
def run_training(run_id: int) -> str:
    """Run one TrainingRun (SFT, reward model, RL or sampling) to its end."""
    return runner.execute_run(run_id)
