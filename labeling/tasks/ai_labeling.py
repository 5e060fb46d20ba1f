"""Celery task: run an AI labeling job on queue "gpu".

Acks late and rejected on worker loss, so a killed worker's job is redelivered; the service
resumes after the last committed chunk and the database forbids a second label per
(comparison, config), so redelivery is safe.
"""
from __future__ import annotations

from celery import shared_task

__all__ = ["run_ai_labeling_job"]


@shared_task(name="labeling.run_ai_labeling_job", queue="gpu", acks_late=True, reject_on_worker_lost=True)
def run_ai_labeling_job(job_id: int) -> None:
    from ..services.ai_labeling import ai_labeling_job_run

    ai_labeling_job_run(job_id=job_id)
