"""Training runs that survive their workers: the run page's poll writes nothing (the sweeper,
not a GET, finds a dead worker), and with real Celery workers through Redis on PostgreSQL a
SIGKILLed worker's run is queued again by a new worker's sweeper and finished from its
checkpoint, and a redelivered task takes over a run whose worker died."""
from __future__ import annotations

import signal
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.ai.test_worker_kill import FAST_JOBS, start_worker, stop, wait_for
from tests.test_worker_roundtrip import database_url
from training import selectors, services
from training.models import RunStatus, TrainingRun
from training.tasks import run_training

from .conftest import TINY

WRITES = ("INSERT", "UPDATE", "DELETE")


@pytest.mark.postgres
def test_run_page_and_its_poll_write_nothing(client, staff_user, train_data, require_postgres):
    run = services.training_run_create(kind="sft", dataset="tldr-test", base_artifact="tiny-gpt2", enqueue=False)
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING,
                                                 heartbeat_at=timezone.now() - timedelta(hours=1))
    client.force_login(staff_user)
    with CaptureQueriesContext(connection) as ctx:
        for name in ("run_detail", "run_progress"):
            assert client.get(reverse(f"training:{name}", args=[run.pk])).status_code == 200
    assert not [q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith(WRITES)]
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.error == ""


@pytest.fixture
def worker_env(settings, tmp_path, require_postgres, require_redis):
    import os

    from rlaif_site.celery import app

    db = settings.DATABASES["default"]
    assert db["NAME"].startswith("test_"), db["NAME"]
    app.control.purge()
    env = {**os.environ, "DATABASE_URL": database_url(db), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "CELERY_TASK_ALWAYS_EAGER": "0", "ARTIFACT_ROOT": str(settings.ARTIFACT_ROOT), "CONN_MAX_AGE": "0",
           "VAR_DIR": str(tmp_path / "var"), "OMP_NUM_THREADS": "1", **FAST_JOBS}
    env.pop("TEST_DATABASE_NAME", None)
    yield env
    app.control.purge()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_killed_worker_run_is_requeued_by_the_sweeper_and_finished_from_its_checkpoint(train_data, worker_env,
                                                                                      tmp_path):
    run = services.training_run_create(kind="sft", dataset="tldr-test", base_artifact="tiny-gpt2", enqueue=False,
                                       hyperparameters=dict(TINY, max_steps=240, epochs=100, checkpoint_every=5,
                                                            max_length=64))
    log_path = tmp_path / "workers.log"
    first = start_worker(worker_env, log_path, "doomed")
    try:
        run_training.apply_async(args=[run.pk], queue="gpu")
        wait_for(lambda: selectors.training_run_checkpoint_step(TrainingRun.objects.get(pk=run.pk)), [first], log_path,
                 "a first checkpoint")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=20)
    finally:
        stop(first, signal.SIGKILL)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and 0 < run.step < 240
    saved = selectors.training_run_checkpoint_step(run)

    second = start_worker(worker_env, log_path, "rescuer")  # nothing is sent: its sweeper must find the run
    try:
        wait_for(lambda: TrainingRun.objects.get(pk=run.pk).status in (RunStatus.DONE, RunStatus.FAILED), [second],
                 log_path, "run finished", timeout=300)
    finally:
        stop(second)
    run.refresh_from_db()
    assert run.status == RunStatus.DONE, (run.error, run.log[-2000:])
    assert run.recoveries == 1 and f"queued again from the checkpoint saved at step {saved} (recovery 1 of" in run.log
    assert f"resumed from the checkpoint saved at step {saved}" in run.log
    assert run.step == 240 and run.artifacts.count() == 1
    steps = [m["step"] for m in run.metrics]
    assert steps == sorted(set(steps)) and steps[-1] == 240  # steps after the checkpoint redone, not doubled


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_redelivered_task_takes_over_a_run_whose_worker_died(train_data, worker_env, tmp_path):
    run = services.training_run_create(kind="sft", dataset="tldr-test", base_artifact="tiny-gpt2", enqueue=False,
                                       hyperparameters=dict(TINY, max_steps=3, max_length=64))
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_token="dead-host:1:x",
                                                 started_at=timezone.now() - timedelta(minutes=10),
                                                 heartbeat_at=timezone.now() - timedelta(minutes=10))
    log_path = tmp_path / "worker.log"
    worker = start_worker({**worker_env, "JOB_SWEEP_EVERY_S": "0"}, log_path, "heir")  # no sweeper: only the task
    try:
        t0 = time.monotonic()
        run_training.apply_async(args=[run.pk], queue="gpu")  # the broker's redelivery
        wait_for(lambda: TrainingRun.objects.get(pk=run.pk).status == RunStatus.DONE, [worker], log_path, "run done")
    finally:
        stop(worker)
    run.refresh_from_db()
    assert "its task was redelivered); taken over from the beginning" in run.log and run.recoveries == 1
    assert run.step == 3 and run.artifacts.count() == 1
    print(f"taken over and done in {time.monotonic() - t0:.1f}s")
