"""Celery tasks of the evaluation app (queue "default"): compute and cache dashboard results."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="evaluation.refresh_dashboard", queue="default")
def refresh_dashboard_task(filters: dict, rounds: int | None = None) -> int:
    """Recompute the bootstrap/Bradley-Terry/length-controlled results of one filter set."""
    from . import cache, services

    obj = services.refresh_dashboard(filters=cache.filters_from_payload(filters),
                                     rounds=rounds or services.DEFAULT_ROUNDS, skip_if_fresh=True)
    return obj.n_labels
