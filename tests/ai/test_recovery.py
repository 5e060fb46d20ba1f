"""AI labeling jobs that survive their workers, in-process on PostgreSQL: chunk leases that
expire, the sweeper (re-queue up to JOB_MAX_RECOVERIES, then fail with the reason), cancelled
jobs resumed from the service, the job page's button and the admin action, pages that write
nothing on GET, and the one sweep that runs every app's sweeper."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from labeling.models import AIChunk, AILabel, AILabelingJob, ChunkStatus, JobStatus
from labeling.services import ai_labeling
from labeling.tasks import ai_labeling as tasks
from rlaif_site import jobs
from tests.ai.test_jobs import comparisons, tiny_config  # noqa: F401 - fixtures

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

WRITES = ("INSERT", "UPDATE", "DELETE")


@pytest.fixture
def sent(monkeypatch):
    out = []
    monkeypatch.setattr(tasks.run_ai_labeling_job, "apply_async", lambda **kw: out.append(kw))
    return out


def _stale(job, minutes=10):
    long_ago = timezone.now() - timedelta(minutes=minutes)
    AILabelingJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, heartbeat_at=long_ago,
                                                   started_at=long_ago)


def test_chunk_leases_skip_each_other_and_an_expired_one_is_taken_over(comparisons, tiny_config):
    job = ai_labeling.ai_labeling_job_create(config=tiny_config, comparisons=comparisons, enqueue=False)
    job = ai_labeling._claim(job.pk, 2)
    assert [(c.first_comparison_id, c.last_comparison_id, c.size) for c in job.chunks.order_by("index")] == [
        (comparisons[i].pk, comparisons[i + 1].pk, 2) for i in (0, 2, 4)]
    a, b = ai_labeling._lease_chunk(job.pk, "w-a"), ai_labeling._lease_chunk(job.pk, "w-b")
    assert (a.index, b.index) == (0, 1) and a.lease_expires_at > timezone.now()
    assert ai_labeling._beat(job.pk, "w-a") is True and ai_labeling._beat(job.pk, "nobody") is False
    AIChunk.objects.filter(pk=a.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    again = ai_labeling._lease_chunk(job.pk, "w-c")  # w-a's lease expired: it comes back before the pending chunk 2
    assert again.pk == a.pk and again.leased_by == "w-c" and again.attempts == 2
    job.refresh_from_db()
    assert "chunk 0: worker w-a lost" in job.log and "taken over by w-c" in job.log


def test_sweeper_requeues_a_stale_job_then_fails_it_with_the_reason(comparisons, tiny_config, sent,
                                                                     django_capture_on_commit_callbacks):
    job = ai_labeling.ai_labeling_job_create(config=tiny_config, comparisons=comparisons, enqueue=False)
    ai_labeling._claim(job.pk, 2)
    ai_labeling._write_chunk(job.pk, tiny_config, [], chunk_id=job.chunks.get(index=0).pk)  # chunk 0 committed
    ai_labeling._lease_chunk(job.pk, "dead-worker")
    assert ai_labeling.ai_labeling_jobs_recover_stale() == 0  # its heartbeat is fresh
    _stale(job)
    with django_capture_on_commit_callbacks(execute=True):
        assert ai_labeling.ai_labeling_jobs_recover_stale(max_recoveries=1) == 1
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.recoveries == 1
    assert "queued again from the last committed chunk (recovery 1 of 1); 1 of 3 chunks" in job.log
    assert sent == [{"args": [job.pk], "queue": "gpu"}] * 2  # one task per open chunk
    assert not job.chunks.filter(status=ChunkStatus.LEASED).exists()  # the dead worker's lease went back

    _stale(job)
    with django_capture_on_commit_callbacks(execute=True):
        assert ai_labeling.ai_labeling_jobs_recover_stale(max_recoveries=1) == 1
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and len(sent) == 2
    assert "lost 2 times" in job.errors[-1]["error"] and "1 of 3 chunks" in job.errors[-1]["error"]


def test_cancelled_job_resumes_after_its_committed_chunks(comparisons, tiny_config, sent,
                                                          django_capture_on_commit_callbacks):
    job = ai_labeling.ai_labeling_job_create(config=tiny_config, comparisons=comparisons, enqueue=False)
    ai_labeling.ai_labeling_job_run(job_id=job.pk, chunk_size=2, on_chunk=lambda j: ai_labeling.ai_labeling_job_cancel(job=j))
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and AILabel.objects.count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        job = ai_labeling.ai_labeling_job_resume(job=job)
    assert job.status == JobStatus.QUEUED and sent == [{"args": [job.pk], "queue": "gpu"}] * 2
    job = ai_labeling.ai_labeling_job_run(job_id=job.pk)
    assert job.status == JobStatus.DONE and job.done == 6
    assert AILabel.objects.filter(config=tiny_config).count() == 6
    assert "cancelled" in job.log and "resume queued (was cancelled; 1 chunk(s) already done)" in job.log
    with pytest.raises(ValueError, match="done"):
        ai_labeling.ai_labeling_job_resume(job=job)


def test_resume_button_and_admin_action_for_a_cancelled_job(client, comparisons, tiny_config, staff_user, sent,
                                                            django_capture_on_commit_callbacks):
    job = ai_labeling.ai_labeling_job_create(config=tiny_config, comparisons=comparisons[:2], enqueue=False)
    ai_labeling.ai_labeling_job_cancel(job=job)
    client.force_login(staff_user)
    resume_url = reverse("labeling:ai_job_resume", args=[job.pk])
    assert f'hx-post="{resume_url}"' in client.get(reverse("labeling:ai_job_progress", args=[job.pk])).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(resume_url).status_code == 200
    assert AILabelingJob.objects.get(pk=job.pk).status == JobStatus.QUEUED and len(sent) == 1

    ai_labeling.ai_labeling_job_cancel(job=job)
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post(reverse("admin:labeling_ailabelingjob_changelist"),
                           {"action": "resume_jobs", "_selected_action": [job.pk]})
    assert resp.status_code == 302 and AILabelingJob.objects.get(pk=job.pk).status == JobStatus.QUEUED
    assert len(sent) == 2


def test_job_pages_write_nothing_on_get_even_for_a_stale_job(client, comparisons, tiny_config, staff_user):
    job = ai_labeling.ai_labeling_job_create(config=tiny_config, comparisons=comparisons[:2], enqueue=False)
    _stale(job)
    client.force_login(staff_user)
    with CaptureQueriesContext(connection) as ctx:
        for name in ("ai_job_detail", "ai_job_progress"):
            page = client.get(reverse(f"labeling:{name}", args=[job.pk]))
            assert page.status_code == 200
    assert not [q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith(WRITES)]
    assert "No sign of its worker since" in page.content.decode() and "s left" not in page.content.decode()
    assert AILabelingJob.objects.get(pk=job.pk).status == JobStatus.RUNNING


def test_one_sweep_runs_every_apps_sweeper(comparisons, tiny_config, sent, settings):
    settings.JOB_MAX_RECOVERIES = 0
    job = ai_labeling.ai_labeling_job_create(config=tiny_config, comparisons=comparisons[:2], enqueue=False)
    _stale(job)
    counts = jobs.sweep_jobs()
    mine = "labeling.services.ai_labeling.ai_labeling_jobs_recover_stale"
    assert counts == {path: (1 if path == mine else 0) for path in settings.JOB_SWEEPERS}
    assert AILabelingJob.objects.get(pk=job.pk).status == JobStatus.FAILED


def test_a_task_hands_its_job_on_after_max_seconds(comparisons, tiny_config, sent,
                                                    django_capture_on_commit_callbacks):
    """A task stays shorter than the broker's visibility timeout: past AI_LABELING_TASK_MAX_S it
    stops leasing and queues the job's next task, which continues after the committed chunks."""
    job = ai_labeling.ai_labeling_job_create(config=tiny_config, comparisons=comparisons, enqueue=False)
    with django_capture_on_commit_callbacks(execute=True):
        job = ai_labeling.ai_labeling_job_run(job_id=job.pk, chunk_size=2, max_seconds=0)
    assert job.status == JobStatus.RUNNING and sent == [{"args": [job.pk], "queue": "gpu"}]
    assert not job.chunks.filter(status=ChunkStatus.LEASED).exists()
    job = ai_labeling.ai_labeling_job_run(job_id=job.pk)
    assert job.status == JobStatus.DONE and AILabel.objects.filter(config=tiny_config).count() == 6
