"""Issue 11, item 9: admin uploads get an import job row with a status page (status, counts, the error
with file, line and field; never the server path), run by a real worker for large files and
re-queued by the sweeper when that worker dies; deleting a dataset that holds human labels or many
rows is refused at once with a message (archive it instead), never a timeout."""
from __future__ import annotations

import html
import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from labeling.models import Comparison, Dataset, HumanLabel, ImportJob
from labeling.services import import_jobs
from labeling.services.imports import comparisons_import
from labeling.tasks import imports as tasks
from tests.test_worker_roundtrip import database_url

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "tldr_comparisons_sample.jsonl"
IMPORT_URL = "admin:labeling_comparison_import"


def _lines(n: int) -> bytes:
    with DATA.open("rb") as fh:
        return b"".join(itertools.islice(fh, n))


def _post(client, name: str, content: bytes, **extra):
    return client.post(reverse(IMPORT_URL), {"file": SimpleUploadedFile(name, content), "kind": "comparisons",
                                             "format": "", **extra})


@pytest.fixture
def staff(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def no_broker(monkeypatch):
    sent = []
    monkeypatch.setattr(tasks.run_import_job, "delay", lambda job_id: sent.append(job_id))
    return sent


@pytest.mark.django_db
def test_background_failure_is_on_the_job_page(staff, no_broker, settings, django_capture_on_commit_callbacks):
    bad = json.loads(_lines(1))
    bad["choice"] = 7
    content = _lines(3) + json.dumps(bad).encode() + b"\n"
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(staff, "big.jsonl", content, background="on")
    job = ImportJob.objects.get()
    assert response.status_code == 302 and no_broker == [job.pk] and job.status == ImportJob.Status.QUEUED

    assert tasks.run_import_job(job.pk) == "failed"  # the worker's run
    job.refresh_from_db()
    assert (job.error_line, job.error_field) == (4, "choice") and "big.jsonl, line 4" in job.error
    assert not HumanLabel.objects.exists() and not Path(job.path).exists()

    page = html.unescape(staff.get(reverse("admin:labeling_importjob_change", args=[job.pk])).content.decode())
    assert 'big.jsonl, line 4, field "choice"' in page and "Failed" in page
    assert str(settings.VAR_DIR) not in page and job.path not in page  # no server path on the page
    listing = staff.get(reverse("admin:labeling_importjob_changelist")).content.decode()
    assert "big.jsonl" in listing
    assert tasks.run_import_job(job.pk) == "skipped"  # a redelivered copy does nothing


@pytest.mark.django_db
def test_small_upload_is_a_done_job_with_its_counts(staff):
    response = _post(staff, "small.jsonl", _lines(5))
    assert response.status_code == 200 and b"Imported 5 records" in response.content
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.DONE and job.counts["labels_created"] == 5 and job.finished_at


@pytest.mark.django_db
def test_sweeper_requeues_an_import_whose_worker_died(settings, tmp_path, django_capture_on_commit_callbacks,
                                                      no_broker):
    path = tmp_path / "up" / "lost.jsonl"
    path.parent.mkdir()
    path.write_bytes(_lines(4))
    job = import_jobs.import_job_create(path=path, file_name="lost.jsonl")
    old = timezone.now() - timedelta(seconds=settings.JOB_STALE_S + 5)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING, heartbeat_at=old, lease_token="dead")
    assert tasks.run_import_job(job.pk) == "done"  # a redelivered task takes a stale job over
    job.refresh_from_db()
    assert job.recoveries == 1 and HumanLabel.objects.count() == 4

    path.parent.mkdir(exist_ok=True)
    path.write_bytes(_lines(4))
    again = import_jobs.import_job_create(path=path, file_name="lost.jsonl")
    ImportJob.objects.filter(pk=again.pk).update(status=ImportJob.Status.RUNNING, heartbeat_at=old)
    with django_capture_on_commit_callbacks(execute=True):
        assert import_jobs.import_jobs_recover_stale() == 1
    again.refresh_from_db()
    assert again.status == ImportJob.Status.QUEUED and no_broker == [again.pk]
    ImportJob.objects.filter(pk=again.pk).update(status=ImportJob.Status.RUNNING, heartbeat_at=old,
                                                 recoveries=settings.JOB_MAX_RECOVERIES)
    assert import_jobs.import_jobs_recover_stale() == 1
    again.refresh_from_db()
    assert again.status == ImportJob.Status.FAILED and "lost" in again.error


@pytest.mark.django_db
def test_dataset_with_human_labels_is_not_deleted_but_can_be_archived(staff):
    comparisons_import(path=DATA, dataset="busy")
    ds = Dataset.objects.get(name="busy")
    labels = HumanLabel.objects.count()
    started = time.monotonic()
    for response in (staff.get(reverse("admin:labeling_dataset_delete", args=[ds.pk])),
                     staff.post(reverse("admin:labeling_dataset_delete", args=[ds.pk]), {"post": "yes"})):
        assert response.status_code == 302
        assert response["Location"] == reverse("admin:labeling_dataset_change", args=[ds.pk])
    assert time.monotonic() - started < 10  # refused before Django lists the related rows
    assert HumanLabel.objects.count() == labels and Dataset.objects.filter(pk=ds.pk).exists()
    page = html.unescape(staff.get(reverse("admin:labeling_dataset_change", args=[ds.pk])).content.decode())
    assert f"holds {labels:,} human labels" in page

    changelist = reverse("admin:labeling_dataset_changelist")
    assert b"delete_selected" not in staff.get(changelist).content
    staff.post(changelist, {"action": "archive", "_selected_action": [ds.pk]})
    ds.refresh_from_db()
    assert ds.archived_at is not None and HumanLabel.objects.count() == labels


@pytest.mark.django_db
def test_large_dataset_refused_small_one_deleted(staff, settings):
    from labeling.models import Post, Summary

    settings.DATASET_DELETE_MAX_ROWS = 3
    big, small = Dataset.objects.create(name="big"), Dataset.objects.create(name="small")
    for i in range(4):
        Post.objects.create(dataset=big, external_id=f"p{i}", text=f"text {i}")
    Post.objects.create(dataset=small, external_id="only", text="t")
    response = staff.post(reverse("admin:labeling_dataset_delete", args=[big.pk]), {"post": "yes"})
    assert response.status_code == 302 and Dataset.objects.filter(pk=big.pk).exists()
    response = staff.post(reverse("admin:labeling_dataset_delete", args=[small.pk]), {"post": "yes"})
    assert response.status_code == 302 and not Dataset.objects.filter(pk=small.pk).exists()
    assert Summary.objects.count() == 0 and Comparison.objects.count() == 0


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_real_worker_runs_a_queued_import_job(transactional_db, require_postgres, require_redis, settings, tmp_path,
                                              staff_user):
    db = settings.DATABASES["default"]
    queue = f"importjob-{uuid.uuid4().hex[:12]}"
    path = tmp_path / "up" / "queued.jsonl"
    path.parent.mkdir()
    path.write_bytes(_lines(6))
    job = import_jobs.import_job_create(path=path, file_name="queued.jsonl", created_by=staff_user)
    env = {**os.environ, "DATABASE_URL": database_url(db), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "CELERY_TASK_ALWAYS_EAGER": "0", "DJANGO_SETTINGS_MODULE": "rlaif_site.settings",
           "VAR_DIR": str(tmp_path / "var"), "CONN_MAX_AGE": "0", "JOB_SWEEP_EVERY_S": "0"}
    env.pop("TEST_DATABASE_NAME", None)
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "rlaif_site", "worker", "-Q", queue, "-n", f"{queue}@%h",
             "--pool", "solo", "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        tasks.run_import_job.apply_async(args=[job.pk], queue=queue)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED):
                break
            assert worker.poll() is None, "worker exited:\n" + log_path.read_text(errors="replace")[-4000:]
            time.sleep(0.5)
        else:
            pytest.fail("the job did not finish; worker log:\n" + log_path.read_text(errors="replace")[-4000:])
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    assert job.status == ImportJob.Status.DONE, job.error
    assert job.counts["labels_created"] == 6 and HumanLabel.objects.count() == 6 and job.heartbeat_at


@pytest.mark.django_db
def test_an_archived_dataset_takes_no_new_work(django_user_model):
    from django.core.exceptions import ValidationError

    from labeling.services.datasets import datasets_archive
    from labeling.services.assignments import CampaignError, campaign_create
    from training import services as training

    comparisons_import(path=DATA, dataset="old")
    ds = Dataset.objects.get(name="old")
    datasets_archive(dataset_ids=[ds.pk])
    user = django_user_model.objects.create_user("a1", password="x-pass-123")
    with pytest.raises(CampaignError, match="archived"):
        campaign_create(name="c", dataset="old", annotators=[user])
    with pytest.raises(ValidationError, match="archived"):
        training.training_run_create(kind="sft", dataset="old", base_checkpoint="org/model", enqueue=False)
    datasets_archive(dataset_ids=[ds.pk], archived=False)
    assert campaign_create(name="c", dataset="old", annotators=[user]).dataset == ds
