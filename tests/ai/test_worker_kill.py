"""Real Celery workers (not eager) run AI labeling jobs from Redis against the TEST database.

- A worker is killed with SIGKILL mid-job and nothing is sent again: the sweeper of a new worker
  finds the job's stale heartbeat, queues it again, and the new worker finishes it; every
  comparison ends with exactly one label.
- Two workers share one job: each leases chunks, the job ends with one label per comparison.
- A redelivered task whose job's worker is dead takes the job over (the sweeper being off).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from labeling.models import (
    AIChunk, AILabel, AILabelingJob, ChunkStatus, Comparison, Dataset, JobStatus, LabelerConfig, Policy, Post, Summary,
)
from labeling.services.ai_labeling import ai_labeling_job_create
from labeling.tasks.ai_labeling import run_ai_labeling_job
from tests.test_worker_roundtrip import database_url

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 150
FAST_JOBS = {"JOB_HEARTBEAT_S": "0.5", "JOB_STALE_S": "6", "JOB_SWEEP_EVERY_S": "0.5"}


def start_worker(env: dict, log_path: Path, name: str) -> subprocess.Popen:
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "rlaif_site", "worker", "-Q", "gpu", "-n", f"{name}-{uuid.uuid4().hex[:4]}@%h",
         "--pool", "solo", "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def stop(worker: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if worker.poll() is None:
        worker.send_signal(sig)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def wait_for(pred, workers, log_path: Path, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        for w in workers:
            assert w.poll() is None, "worker exited:\n" + log_path.read_text(errors="replace")[-4000:]
        time.sleep(0.2)
    pytest.fail(f"{what} not reached after {timeout}s; worker log:\n" + log_path.read_text(errors="replace")[-6000:])


def ready_count(log_path: Path) -> int:
    return log_path.read_text(errors="replace").count(" ready.") if log_path.exists() else 0


@pytest.fixture
def worker_env(settings, tmp_path, require_postgres, require_redis):
    from rlaif_site.celery import app

    db = settings.DATABASES["default"]
    assert db["NAME"].startswith("test_"), db["NAME"]
    app.control.purge()  # leftovers of earlier tests on this broker
    env = {**os.environ, "DATABASE_URL": database_url(db), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "CELERY_TASK_ALWAYS_EAGER": "0", "DJANGO_SETTINGS_MODULE": "rlaif_site.settings",
           "VAR_DIR": str(tmp_path / "var"), "CONN_MAX_AGE": "0", "OMP_NUM_THREADS": "1", **FAST_JOBS}
    env.pop("TEST_DATABASE_NAME", None)
    yield env
    app.control.purge()


def _job(tiny_models, n: int, name: str, parallel_settings) -> tuple[AILabelingJob, LabelerConfig, list[Comparison]]:
    ds = Dataset.objects.create(name=name)
    pa, pb = Policy.objects.create(name=f"{name}-a"), Policy.objects.create(name=f"{name}-b")
    comps = []
    for i in range(n):
        post = Post.objects.create(dataset=ds, external_id=str(i), text=f"Post {i}: the cat sat on the mat. " * 3)
        s1 = Summary.objects.create(post=post, policy=pa, text=f"Cat {i}.")
        s2 = Summary.objects.create(post=post, policy=pb, text=f"A cat, number {i}, sat.")
        comps.append(Comparison.objects.create(post=post, summary_a=s1, summary_b=s2))
    # Chain of thought makes each chunk of 8 take a moment, so a kill lands mid-job.
    config = LabelerConfig.objects.create(name=name, model=str(tiny_models["causal_lm"]), batch_size=2,
                                          chain_of_thought=True, extra={"cot_max_tokens": 24}, is_noise=True)
    return ai_labeling_job_create(config=config, comparisons=comps, enqueue=False), config, comps


def _exactly_once(job: AILabelingJob, config: LabelerConfig, comps: list[Comparison]) -> None:
    job.refresh_from_db()
    labels = AILabel.objects.filter(config=config)
    assert job.status == JobStatus.DONE and job.done == len(comps) and job.failed == 0
    assert sorted(labels.values_list("comparison_id", flat=True)) == sorted(c.pk for c in comps)
    assert all(len(label.rationales) == 2 for label in labels)
    assert not AIChunk.objects.filter(job=job).exclude(status=ChunkStatus.DONE).exists()


def test_killed_worker_is_found_by_the_sweeper_and_a_new_worker_finishes(transactional_db, worker_env, settings,
                                                                         tiny_models, tmp_path):
    job, config, comps = _job(tiny_models, 24, "tiny-kill", settings)
    log_path = tmp_path / "worker.log"
    env = {**worker_env, "AI_LABELING_PARALLEL": "1"}  # one task: nothing but the sweeper can revive the job

    first = start_worker(env, log_path, "doomed")
    try:
        run_ai_labeling_job.apply_async(args=[job.pk], queue="gpu")
        wait_for(lambda: AILabel.objects.filter(job=job).exists(), [first], log_path, "a first committed chunk")
        first.send_signal(signal.SIGKILL)  # --pool solo: the task runs in this very process
        first.wait(timeout=20)
    finally:
        stop(first, signal.SIGKILL)
    killed_at = time.monotonic()
    after_kill = AILabel.objects.filter(config=config).count()
    assert 0 < after_kill < 24
    assert AILabelingJob.objects.get(pk=job.pk).status == JobStatus.RUNNING

    second = start_worker(env, log_path, "rescuer")  # nothing is sent: its sweeper must find the job
    try:
        wait_for(lambda: AILabelingJob.objects.get(pk=job.pk).status == JobStatus.DONE, [second], log_path, "job done")
    finally:
        stop(second)
    _exactly_once(job, config, comps)
    assert job.recoveries == 1 and "worker lost (no heartbeat since" in job.log
    assert "queued again from the last committed chunk (recovery 1 of" in job.log
    print(f"labels before the kill: {after_kill} of 24; recovered and done {time.monotonic() - killed_at:.1f}s after")


def test_two_workers_share_one_job_and_write_each_label_once(transactional_db, worker_env, settings, tiny_models,
                                                            tmp_path):
    job, config, comps = _job(tiny_models, 48, "tiny-pair", settings)
    log_path = tmp_path / "workers.log"
    env = {**worker_env, "AI_LABELING_PARALLEL": "2"}
    workers = [start_worker(env, log_path, "w1"), start_worker(env, log_path, "w2")]
    try:
        wait_for(lambda: ready_count(log_path) >= 2, workers, log_path, "two workers ready")
        for _ in range(2):  # what ai_labeling_job_create sends with AI_LABELING_PARALLEL=2
            run_ai_labeling_job.apply_async(args=[job.pk], queue="gpu")
        wait_for(lambda: AILabelingJob.objects.get(pk=job.pk).status == JobStatus.DONE, workers, log_path, "job done")
    finally:
        for w in workers:
            stop(w)
    _exactly_once(job, config, comps)
    finishers = {c.leased_by.rsplit(":", 1)[0] for c in AIChunk.objects.filter(job=job)}  # host:pid of each chunk
    assert AIChunk.objects.filter(job=job).count() == 6 and len(finishers) == 2, finishers


def test_redelivered_task_takes_over_a_job_whose_worker_died(transactional_db, worker_env, settings, tiny_models,
                                                            tmp_path):
    job, config, comps = _job(tiny_models, 16, "tiny-redeliver", settings)
    # What a worker killed mid-chunk leaves: a running job, a chunk leased by it, both long silent.
    long_ago = timezone.now() - timedelta(minutes=10)
    AILabelingJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, started_at=long_ago, heartbeat_at=long_ago)
    ids = sorted(c.pk for c in comps)
    AIChunk.objects.create(job=job, index=0, first_comparison_id=ids[0], last_comparison_id=ids[7], size=8,
                           status=ChunkStatus.LEASED, leased_by="dead-host:1:abc", lease_expires_at=long_ago, attempts=1)
    AIChunk.objects.create(job=job, index=1, first_comparison_id=ids[8], last_comparison_id=ids[15], size=8)
    log_path = tmp_path / "worker.log"
    worker = start_worker({**worker_env, "JOB_SWEEP_EVERY_S": "0"}, log_path, "heir")  # no sweeper: only the task
    try:
        run_ai_labeling_job.apply_async(args=[job.pk], queue="gpu")  # the broker's redelivery
        wait_for(lambda: AILabelingJob.objects.get(pk=job.pk).status == JobStatus.DONE, [worker], log_path, "job done")
    finally:
        stop(worker)
    _exactly_once(job, config, comps)
    assert "chunk 0: worker dead-host:1:abc lost" in job.log and job.recoveries == 0
    assert AIChunk.objects.get(job=job, index=0).attempts == 2
