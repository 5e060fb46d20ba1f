"""Writes of the labeler "test connection" action: queue a probe on a `gpu` worker, store its answer.

The probe runs where jobs run (a worker of queue "gpu"), since that is where the server or the
model files must be reachable; the web process never loads a model. The result lives on the
config (`reachable`, `reachability_detail`, `reachability_checked_at`) and is shown on the AI
labeling pages and in the admin.
"""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from ..judges import probe
from ..models import LabelerBackend, LabelerConfig

PROBE_TIMEOUT_S = 5.0
TESTING = "Testing from a gpu worker …"


def labeler_config_test_queue(*, config: LabelerConfig) -> LabelerConfig:
    """Mark the config as being tested and queue the probe (after the commit)."""
    from ..tasks.connection import probe_labeler_connection

    with transaction.atomic():
        LabelerConfig.objects.filter(pk=config.pk).update(reachable=None, reachability_detail=TESTING,
                                                          reachability_checked_at=None)
        transaction.on_commit(lambda: probe_labeler_connection.apply_async(args=[config.pk], queue="gpu"))
    config.refresh_from_db()
    return config


def labeler_config_test_run(*, config_id: int, timeout: float = PROBE_TIMEOUT_S) -> LabelerConfig:
    """Probe the config's server or model from this process and store the answer."""
    from .ai_labeling import api_key_env_allowed

    config = LabelerConfig.objects.get(pk=config_id)
    if config.backend == LabelerBackend.OPENAI:
        key = ""
        if config.api_key_env and api_key_env_allowed(config.api_key_env):
            key = probe.api_key_from_env(config.api_key_env)
        result = probe.probe_http(config.base_url, config.model, api_key=key, timeout=timeout)
    elif config.backend == LabelerBackend.LOCAL:
        result = probe.probe_local(config.model)
    else:
        result = probe.Probe(False, f"unknown backend {config.backend!r}")
    with transaction.atomic():
        LabelerConfig.objects.filter(pk=config.pk).update(
            reachable=result.ok, reachability_detail=result.detail[:300], reachability_checked_at=timezone.now())
    config.refresh_from_db()
    return config
