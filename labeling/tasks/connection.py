"""Celery task: probe a labeler config's server or model from a worker of queue "gpu"."""
from __future__ import annotations

from celery import shared_task

__all__ = ["probe_labeler_connection"]


@shared_task(name="labeling.probe_labeler_connection", queue="gpu")
def probe_labeler_connection(config_id: int) -> bool | None:
    from ..services.connection import labeler_config_test_run

    return labeler_config_test_run(config_id=config_id).reachable
