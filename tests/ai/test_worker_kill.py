"""A real Celery worker (not eager) runs an AI labeling job from Redis against the TEST database;
the test kills it with SIGKILL after its first committed chunk, sends the task again (as the
broker redelivers an unacknowledged task), and a second worker finishes the job: every
comparison ends with exactly one label."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from labeling.models import AILabel, AILabelingJob, Comparison, Dataset, JobStatus, LabelerConfig, Policy, Post, Summary
from labeling.services.ai_labeling import ai_labeling_job_create
from labeling.tasks.ai_labeling import run_ai_labeling_job
from tests.test_worker_roundtrip import database_url

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 120


def _worker(queue: str, env: dict, log_path: Path) -> subprocess.Popen:
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "rlaif_site", "worker", "-Q", queue, "-n", f"{queue}-{uuid.uuid4().hex[:4]}@%h",
         "--pool", "solo", "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def _wait(pred, worker, log_path: Path, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if pred():
            return
        assert worker.poll() is None, "worker exited:\n" + log_path.read_text(errors="replace")[-4000:]
        time.sleep(0.2)
    pytest.fail(f"{what} not reached after {WAIT_S}s; worker log:\n" + log_path.read_text(errors="replace")[-4000:])


def test_killed_worker_loses_no_label_and_writes_none_twice(transactional_db, require_postgres, require_redis,
                                                            settings, tiny_models, tmp_path):
    ds = Dataset.objects.create(name="kill-test")
    pa, pb = Policy.objects.create(name="a"), Policy.objects.create(name="b")
    comps = []
    for i in range(24):
        post = Post.objects.create(dataset=ds, external_id=str(i), text=f"Post {i}: the cat sat on the mat. " * 3)
        s1 = Summary.objects.create(post=post, policy=pa, text=f"Cat {i}.")
        s2 = Summary.objects.create(post=post, policy=pb, text=f"A cat, number {i}, sat.")
        comps.append(Comparison.objects.create(post=post, summary_a=s1, summary_b=s2))
    # Chain of thought makes each chunk of 8 take a moment, so the kill lands mid-job.
    config = LabelerConfig.objects.create(name="tiny-kill", model=str(tiny_models["causal_lm"]), batch_size=2,
                                          chain_of_thought=True, extra={"cot_max_tokens": 24}, is_noise=True)
    job = ai_labeling_job_create(config=config, comparisons=comps, enqueue=False)

    db = settings.DATABASES["default"]
    assert db["NAME"].startswith("test_"), db["NAME"]
    queue = f"ai-kill-{uuid.uuid4().hex[:12]}"
    env = {**os.environ, "DATABASE_URL": database_url(db), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "CELERY_TASK_ALWAYS_EAGER": "0", "DJANGO_SETTINGS_MODULE": "rlaif_site.settings",
           "VAR_DIR": str(tmp_path / "var"), "CONN_MAX_AGE": "0", "OMP_NUM_THREADS": "1"}
    env.pop("TEST_DATABASE_NAME", None)
    log_path = tmp_path / "worker.log"

    first = _worker(queue, env, log_path)
    try:
        run_ai_labeling_job.apply_async(args=[job.pk], queue=queue)
        _wait(lambda: AILabel.objects.filter(job=job).exists(), first, log_path, "a first committed chunk")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=20)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    after_kill = AILabel.objects.filter(config=config).count()
    assert 0 < after_kill
    assert AILabelingJob.objects.get(pk=job.pk).status in (JobStatus.RUNNING, JobStatus.DONE)

    second = _worker(queue, env, log_path)
    try:
        run_ai_labeling_job.apply_async(args=[job.pk], queue=queue)  # the redelivery
        _wait(lambda: AILabelingJob.objects.get(pk=job.pk).status == JobStatus.DONE, second, log_path, "job done")
    finally:
        second.terminate()
        try:
            second.wait(timeout=20)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait()
    job.refresh_from_db()
    labels = AILabel.objects.filter(config=config)
    assert labels.count() == 24 and job.done == 24 and job.failed == 0
    assert sorted(labels.values_list("comparison_id", flat=True)) == sorted(c.pk for c in comps)
    assert all(len(l.rationales) == 2 for l in labels)
    print(f"labels before the kill: {after_kill} of 24")
