"""Celery task: work on an AI labeling job on queue "gpu".

A job queues several copies of this task (`AI_LABELING_PARALLEL` at most); each leases the job's
chunks until none is left, so any number of gpu workers share one job. Acks late and rejected on
worker loss; a dead worker's chunk lease expires and returns to the pool, and the sweeper queues a
job whose workers all died again. The database forbids a second label per (comparison, config),
so redelivery and take-overs are safe.
"""
from __future__ import annotations

from celery import shared_task
from django.conf import settings

__all__ = ["run_ai_labeling_job"]


@shared_task(name="labeling.run_ai_labeling_job", queue="gpu", acks_late=True, reject_on_worker_lost=True)
def run_ai_labeling_job(job_id: int) -> str:
    from ..services.ai_labeling import ai_labeling_job_run

    return ai_labeling_job_run(job_id=job_id, max_seconds=settings.AI_LABELING_TASK_MAX_S).status
