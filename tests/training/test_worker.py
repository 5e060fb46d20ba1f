"""The one test with a real Celery worker: a run created through the service is picked up from
Redis on queue "gpu" by `celery worker` in another process and trained to the end."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training import services
from training.models import RunStatus, TrainingRun

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_real_worker_trains_a_queued_run(require_postgres, require_redis, train_data, settings):
    from rlaif_site.celery import app

    db = settings.DATABASES["default"]
    env = dict(os.environ, CELERY_BROKER_URL=settings.CELERY_BROKER_URL, ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT),
               DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}")
    env.pop("TEST_DATABASE_NAME", None)
    app.control.purge()  # leftovers of earlier runs in this test broker
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "rlaif_site", "worker", "-Q", "gpu", "-P", "solo", "-c", "1",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"train-test-{os.getpid()}@%h",
         "--loglevel", "WARNING"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run = services.training_run_create(kind="sft", dataset="tldr-test", base_artifact="tiny-gpt2",
                                           max_steps=2, batch_size=4, max_length=64)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.status in (RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED):
                break
            assert worker.poll() is None, worker.stdout.read()
            time.sleep(1)
        assert run.status == RunStatus.DONE, (run.status, run.error, run.log)
        assert run.step == 2 and [m["step"] for m in run.metrics] == [1, 2] and run.heartbeat_at is not None
        assert TrainingRun.objects.get(pk=run.pk).artifacts.count() == 1
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
