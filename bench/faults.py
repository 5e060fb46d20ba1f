"""Fault-injection benchmark: jobs that survive dead workers and dead database connections.

    DATABASE_URL=postgres://rlaif:rlaif@127.0.0.1:5432/rlaif CELERY_BROKER_URL=redis://127.0.0.1:6379/1 \\
        .venv/bin/python bench/faults.py

It uses its own database `rlaif_bench_faults` on the server of DATABASE_URL (dropped and created
again, migrated; never the database DATABASE_URL names) and the Redis of CELERY_BROKER_URL (its
queues "gpu" and "default" are purged). It loads the shipped TL;DR sample, builds the tiny
offline models (training/ml/tiny.py) and the `tiny-local` labeler config, and starts real
`celery worker -Q default,gpu` processes (prefork, one child, like production), each in its own
process group, so `kill -9` takes the whole worker: main process and child. No page is viewed:
recovery is the job sweeper's alone (the timer in every worker, settings JOB_*; the defaults
unless --stale-s/--heartbeat-s/--sweep-every-s say otherwise).

Scenarios, one JSON line each, with the keys completed, labels_expected, labels_found,
duplicates, seconds_to_detect, seconds_to_complete (seconds from the kill):

1. ai_labeling_kill: kill -9 of the worker once an AI labeling job has committed a chunk, then a
   new worker; detected when the job's log says a worker was lost.
2. training_kill: the same once an SFT run has saved a checkpoint; detected when the run is
   queued again; labels_* are null (a run writes no labels), duplicates counts metric steps
   logged twice.
3. refresh_kill: the same while a dashboard refresh computes; labels_* are null, duplicates
   counts stored results beyond one for the filter set.
4. db_connections_killed: 10 annotator threads rate pairs through the queue services while every
   connection of the bench database is terminated (pg_terminate_backend) in 5 rounds;
   labels_expected = acknowledged submits, labels_found = those stored; seconds_to_detect is the
   longest time from a kill to the next acknowledged submit.
5. ai_labeling_scale: the same AI labeling job with 1 and then 2 workers (workers started and
   ready before the clock starts), giving `speedup_two_workers`.

The last line is one JSON object summarising all scenarios.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
BENCH_DB = "rlaif_bench_faults"


def _emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def _database(url: str) -> str:
    import psycopg

    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        sys.exit(f"DATABASE_URL must be PostgreSQL, got {parts.scheme!r}")
    admin = urlunsplit(parts._replace(path="/postgres", scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    return urlunsplit(parts._replace(path="/" + BENCH_DB))


def _setup(db_url: str, var_dir: Path, args) -> dict:
    os.environ.update(DATABASE_URL=db_url, DJANGO_SETTINGS_MODULE="rlaif_site.settings", VAR_DIR=str(var_dir),
                      ARTIFACT_ROOT=str(var_dir / "artifacts"), CONN_MAX_AGE="0", OMP_NUM_THREADS="1")
    for name, value in (("JOB_STALE_S", args.stale_s), ("JOB_HEARTBEAT_S", args.heartbeat_s),
                        ("JOB_SWEEP_EVERY_S", args.sweep_every_s)):
        if value is not None:
            os.environ[name] = str(value)
    os.environ.pop("TEST_DATABASE_NAME", None)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from labeling.services.ai_labeling import CONFIG_DIR, labeler_configs_load
    from labeling.services.imports import comparisons_import, posts_import
    from training.ml.tiny import build_all
    from training.models import ModelArtifact

    comparisons_import(path=settings.DATA_DIR / "tldr_comparisons_sample.jsonl", dataset="tldr")
    posts_import(path=settings.DATA_DIR / "tldr_sft_reference_summaries.jsonl", dataset="tldr", make_pairs=False)
    paths = build_all(settings.ARTIFACT_ROOT, [settings.DATA_DIR / "tldr_comparisons_sample.jsonl",
                                              settings.DATA_DIR / "tldr_sft_reference_summaries.jsonl"])
    ModelArtifact.objects.get_or_create(name="tiny-gpt2", defaults={"kind": "base", "path": str(paths["causal_lm"])})
    labeler_configs_load(paths=[CONFIG_DIR / "tiny-local.json"])
    return {"stale_s": settings.JOB_STALE_S, "heartbeat_s": settings.JOB_HEARTBEAT_S,
            "sweep_every_s": settings.JOB_SWEEP_EVERY_S, "max_recoveries": settings.JOB_MAX_RECOVERIES}


def _purge() -> None:
    from rlaif_site.celery import app

    with app.connection_for_write() as conn:
        for queue in ("gpu", "default"):
            try:
                conn.default_channel.queue_purge(queue)
            except Exception:  # a queue that was never declared
                pass


class Workers:
    """Real `celery worker -Q default,gpu` processes, each in its own process group."""

    def __init__(self, var_dir: Path):
        self.log = var_dir / "workers.log"
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str) -> subprocess.Popen:
        log = self.log.open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "rlaif_site", "worker", "-Q", "default,gpu", "-c", "1",
             "--pool", "prefork", "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "--loglevel", "WARNING"],
            cwd=REPO, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def wait_ready(self, procs: list[subprocess.Popen], timeout: float = 120) -> None:
        """Ready when each worker's sweeper has written... nothing: poll its control reply instead."""
        from rlaif_site.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=1.0) or []
            if len(replies) >= len(procs):
                return
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError("worker exited:\n" + self.log.read_text(errors="replace")[-3000:])
        raise RuntimeError("workers not ready:\n" + self.log.read_text(errors="replace")[-3000:])

    @staticmethod
    def kill9(proc: subprocess.Popen) -> None:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole worker: main process and its child
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=60)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.procs = []


def _poll(pred, timeout: float, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(every)
    return None


def _ai_config(name: str):
    from labeling.models import LabelerConfig

    config = LabelerConfig.objects.get(name="tiny-local")
    config.pk, config.name = None, name
    config.save()
    return config


def _ai_job(config, n_pairs: int):
    from labeling.models import Comparison
    from labeling.services.ai_labeling import ai_labeling_job_create

    ids = list(Comparison.objects.filter(post__dataset__name="tldr").order_by("pk").values_list("pk", flat=True)[:n_pairs])
    return ai_labeling_job_create(config=config, comparisons=ids)


def _label_counts(job) -> tuple[int, int]:
    from django.db.models import Count

    from labeling.models import AILabel

    labels = AILabel.objects.filter(config=job.config, comparison__in=job.comparisons.all())
    dup = labels.values("comparison_id").annotate(n=Count("id")).filter(n__gt=1).count()
    return labels.count(), dup


def scenario_ai_kill(workers: Workers, n_pairs: int, timeout: float) -> dict:
    from labeling.models import AILabel, AILabelingJob, JobStatus

    first = workers.start("ai-doomed")
    workers.wait_ready([first])
    job = _ai_job(_ai_config("tiny-local-kill"), n_pairs)
    if not _poll(lambda: AILabel.objects.filter(job=job).exists(), timeout):
        raise RuntimeError("no chunk committed before the kill")
    workers.kill9(first)
    killed = time.monotonic()
    before = AILabel.objects.filter(config=job.config).count()
    workers.start("ai-rescuer")
    detected = _poll(lambda: "lost" in AILabelingJob.objects.get(pk=job.pk).log and time.monotonic(), timeout)
    done = _poll(lambda: AILabelingJob.objects.get(pk=job.pk).status in (JobStatus.DONE, JobStatus.FAILED)
                 and time.monotonic(), timeout)
    workers.stop_all()
    job.refresh_from_db()
    found, dup = _label_counts(job)
    return {"scenario": "ai_labeling_kill", "completed": job.status == JobStatus.DONE, "labels_expected": job.total,
            "labels_found": found, "duplicates": dup,
            "seconds_to_detect": round(detected - killed, 1) if detected else None,
            "seconds_to_complete": round(done - killed, 1) if done else None,
            "labels_before_kill": before, "recoveries": job.recoveries,
            "how_detected": "sweeper" if job.recoveries else "expired chunk lease taken over"}


def scenario_training_kill(workers: Workers, steps: int, timeout: float) -> dict:
    from training import selectors, services
    from training.models import RunStatus, TrainingRun

    first = workers.start("train-doomed")
    workers.wait_ready([first])
    run = services.training_run_create(kind="sft", dataset="tldr", base_artifact="tiny-gpt2",
                                       hyperparameters={"max_steps": steps, "batch_size": 4, "micro_batch_size": 4,
                                                        "checkpoint_every": 10, "max_length": 64, "epochs": 100,
                                                        "max_examples": 64})
    def past_a_checkpoint():  # kill between checkpoints, so the step logged and the step saved differ
        r = TrainingRun.objects.get(pk=run.pk)
        return selectors.training_run_checkpoint_step(r) and r.step >= selectors.training_run_checkpoint_step(r) + 3

    if not _poll(past_a_checkpoint, timeout, 0.05):
        raise RuntimeError("no checkpoint before the kill:\n" + TrainingRun.objects.get(pk=run.pk).log[-2000:])
    workers.kill9(first)
    killed = time.monotonic()
    run.refresh_from_db()
    step_at_kill, saved = run.step, selectors.training_run_checkpoint_step(run)
    workers.start("train-rescuer")
    detected = _poll(lambda: TrainingRun.objects.get(pk=run.pk).recoveries >= 1 and time.monotonic(), timeout)
    done = _poll(lambda: TrainingRun.objects.get(pk=run.pk).status in (RunStatus.DONE, RunStatus.FAILED)
                 and time.monotonic(), timeout)
    workers.stop_all()
    run.refresh_from_db()
    logged = [m["step"] for m in run.metrics]
    return {"scenario": "training_kill", "completed": run.status == RunStatus.DONE and run.step == steps,
            "labels_expected": None, "labels_found": None, "duplicates": len(logged) - len(set(logged)),
            "seconds_to_detect": round(detected - killed, 1) if detected else None,
            "seconds_to_complete": round(done - killed, 1) if done else None,
            "step_at_kill": step_at_kill, "checkpoint_step_at_kill": saved, "steps": steps,
            "resumed_from_checkpoint": f"resumed from the checkpoint saved at step {saved}" in run.log,
            "recoveries": run.recoveries}


def scenario_refresh_kill(workers: Workers, rounds: int, timeout: float) -> dict:
    from evaluation import cache
    from evaluation.models import CachedResult, RefreshJob
    from evaluation.selectors import Filters
    from evaluation.tasks import refresh_dashboard_task

    first = workers.start("refresh-doomed")
    workers.wait_ready([first])
    f = Filters(dataset="tldr")
    key = cache.cache_key(f)
    refresh_dashboard_task.delay(cache.filters_payload(f), rounds)
    if not _poll(lambda: RefreshJob.objects.filter(key=key, status=RefreshJob.Status.RUNNING).exists(), timeout, 0.05):
        raise RuntimeError("the refresh never started")
    time.sleep(1.0)  # well inside the computation
    computing = not CachedResult.objects.filter(key=key).exists()
    workers.kill9(first)
    killed = time.monotonic()
    workers.start("refresh-rescuer")
    detected = _poll(lambda: RefreshJob.objects.get(key=key).recoveries >= 1 and time.monotonic(), timeout)
    done = _poll(lambda: RefreshJob.objects.get(key=key).status in (RefreshJob.Status.DONE, RefreshJob.Status.FAILED)
                 and time.monotonic(), timeout)
    workers.stop_all()
    job = RefreshJob.objects.get(key=key)
    stored = CachedResult.objects.filter(key=key)
    return {"scenario": "refresh_kill", "completed": job.status == RefreshJob.Status.DONE and stored.exists(),
            "labels_expected": None, "labels_found": None, "duplicates": max(stored.count() - 1, 0),
            "seconds_to_detect": round(detected - killed, 1) if detected else None,
            "seconds_to_complete": round(done - killed, 1) if done else None,
            "killed_mid_compute": computing, "rounds": rounds, "recoveries": job.recoveries}


def scenario_db_kills(annotators: int, rounds: int, every_s: float, db_url: str, n_pairs: int = 300) -> dict:
    import psycopg
    from django.contrib.auth import get_user_model
    from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connection
    from django.db.models import Count

    from labeling.models import Comparison, HumanLabel
    from labeling.services import assignments

    User = get_user_model()
    users = [User.objects.create_user(f"bench-annotator-{i}", password=None) for i in range(annotators)]
    pairs = list(Comparison.objects.filter(post__dataset__name="tldr").order_by("-pk")[:n_pairs])
    # Every annotator rates every pair, so the work outlasts the kill rounds.
    campaign = assignments.campaign_create(name="bench-faults", dataset="tldr", overlap=annotators, annotators=users,
                                     comparisons=pairs, lease_seconds=600)
    acked: list[int] = []
    ack_times: list[float] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors = [0]

    def annotate(user) -> None:
        rnd = random.Random(user.pk)
        try:
            while not stop.is_set():
                try:
                    a = assignments.assignment_next(campaign=campaign, user=user)
                    if a is None:
                        return
                    label, _ = assignments.label_submit(user=user, assignment_id=a.pk,
                                                  preferred=rnd.choice(["left", "right"]), certainty=rnd.randint(1, 4))
                    with lock:
                        acked.append(label.pk)
                        ack_times.append(time.monotonic())
                except (OperationalError, InterfaceError, DatabaseError):
                    with lock:
                        errors[0] += 1
                    connection.close()  # the web process's answer: a 500, then the client retries
                    time.sleep(0.05)
        finally:
            connection.close()

    threads = [threading.Thread(target=annotate, args=(u,)) for u in users]
    for t in threads:
        t.start()
    kills: list[float] = []
    admin = urlunsplit(urlsplit(db_url)._replace(scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True) as conn:
        for _ in range(rounds):
            time.sleep(every_s)
            if not any(t.is_alive() for t in threads):
                break
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", [BENCH_DB])
            kills.append(time.monotonic())
    for t in threads:
        t.join(timeout=300)
    stop.set()
    close_old_connections()
    stored = set(HumanLabel.objects.filter(pk__in=acked).values_list("pk", flat=True))
    dup = (HumanLabel.objects.filter(campaign=campaign).values("comparison_id", "annotator_id")
           .annotate(n=Count("id")).filter(n__gt=1).count())
    recover = [min((t for t in ack_times if t > k), default=None) for k in kills]
    gaps = [r - k for r, k in zip(recover, kills) if r is not None]
    expected = len(pairs) * annotators
    return {"scenario": "db_connections_killed", "completed": len(acked) == expected and len(gaps) == rounds,
            "labels_expected": len(acked), "labels_found": len(stored), "duplicates": dup,
            "seconds_to_detect": round(max(gaps), 2) if gaps else None,
            "seconds_to_complete": round(max(ack_times) - kills[0], 1) if ack_times else None,
            "annotators": annotators, "kill_rounds": len(kills), "pairs": len(pairs), "submits_expected": expected,
            "errors_seen": errors[0]}


def _timed_ai_job(workers: Workers, n_workers: int, n_pairs: int, timeout: float) -> tuple[float, dict]:
    from labeling.models import AIChunk, AILabelingJob, JobStatus

    procs = [workers.start(f"scale{n_workers}-{i}") for i in range(n_workers)]
    workers.wait_ready(procs)
    config = _ai_config(f"tiny-local-{n_workers}w")
    t0 = time.monotonic()
    job = _ai_job(config, n_pairs)
    done = _poll(lambda: AILabelingJob.objects.get(pk=job.pk).status in (JobStatus.DONE, JobStatus.FAILED), timeout)
    seconds = time.monotonic() - t0
    workers.stop_all()
    job.refresh_from_db()
    found, dup = _label_counts(job)
    hosts = {c.leased_by.rsplit(":", 1)[0] for c in AIChunk.objects.filter(job=job)}
    return seconds, {"completed": bool(done) and job.status == JobStatus.DONE, "labels_expected": job.total,
                     "labels_found": found, "duplicates": dup, "workers_that_leased": len(hosts)}


def scenario_scale(workers: Workers, n_pairs: int, timeout: float) -> dict:
    t1, one = _timed_ai_job(workers, 1, n_pairs, timeout)
    t2, two = _timed_ai_job(workers, 2, n_pairs, timeout)
    return {"scenario": "ai_labeling_scale", "completed": one["completed"] and two["completed"],
            "labels_expected": one["labels_expected"] + two["labels_expected"],
            "labels_found": one["labels_found"] + two["labels_found"], "duplicates": one["duplicates"] + two["duplicates"],
            "seconds_to_detect": None, "seconds_to_complete": round(t2, 1),
            "seconds_one_worker": round(t1, 1), "seconds_two_workers": round(t2, 1),
            "speedup_two_workers": round(t1 / t2, 2), "workers_that_leased_with_two": two["workers_that_leased"],
            "cpu_cores": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=480, help="comparisons per AI labeling job")
    parser.add_argument("--steps", type=int, default=150, help="SFT steps of the training run")
    parser.add_argument("--rounds", type=int, default=20000, help="bootstrap rounds of the dashboard refresh")
    parser.add_argument("--annotators", type=int, default=10)
    parser.add_argument("--kill-rounds", type=int, default=5)
    parser.add_argument("--stale-s", type=float, default=None, help="JOB_STALE_S for the workers (default: settings)")
    parser.add_argument("--heartbeat-s", type=float, default=None)
    parser.add_argument("--sweep-every-s", type=float, default=None)
    parser.add_argument("--timeout", type=float, default=600, help="per wait")
    parser.add_argument("--only", default="", help="comma-separated scenario numbers (1-5) to run")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"):
        sys.exit("CELERY_BROKER_URL must be a Redis URL")
    var_dir = REPO / "var" / "bench-faults"
    var_dir.mkdir(parents=True, exist_ok=True)
    (var_dir / "workers.log").unlink(missing_ok=True)
    db_url = _database(url)
    jobs_settings = _setup(db_url, var_dir, args)
    _purge()
    only = {int(x) for x in args.only.split(",") if x.strip()} or {1, 2, 3, 4, 5}
    workers = Workers(var_dir)
    results = []
    try:
        steps = [(1, lambda: scenario_ai_kill(workers, args.pairs, args.timeout)),
                 (2, lambda: scenario_training_kill(workers, args.steps, args.timeout)),
                 (3, lambda: scenario_refresh_kill(workers, args.rounds, args.timeout)),
                 (4, lambda: scenario_db_kills(args.annotators, args.kill_rounds, 1.5, db_url)),
                 (5, lambda: scenario_scale(workers, args.pairs, args.timeout))]
        for number, run in steps:
            if number in only:
                result = run()
                _purge()
                results.append(result)
                _emit(result)
    finally:
        workers.stop_all()
    detect = [r["seconds_to_detect"] for r in results if r.get("seconds_to_detect") is not None]
    scale = next((r for r in results if r["scenario"] == "ai_labeling_scale"), {})
    _emit({"scenarios": len(results), "all_completed": all(r["completed"] for r in results),
           "labels_missing": sum((r["labels_expected"] or 0) - (r["labels_found"] or 0) for r in results),
           "duplicates": sum(r["duplicates"] for r in results),
           "max_seconds_to_detect": max(detect) if detect else None,
           "speedup_two_workers": scale.get("speedup_two_workers"), "job_settings": jobs_settings})


if __name__ == "__main__":
    main()
