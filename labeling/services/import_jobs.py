"""Import jobs: an uploaded file's import as a row with a status page (admin "Import file").

`import_job_create` records the upload (QUEUED) and, for a background import, queues the task
`labeling.run_import_job` on queue "default" when the transaction commits. `import_job_run` (the
request for a small file, the task for a large one) claims the job under an execution token, keeps
its heartbeat moving while the import service runs, and records the counts or the error with its
file, line and field, so a failure is on the job's page, not only in a worker log. The sweeper
`import_jobs_recover_stale` (in settings.JOB_SWEEPERS) queues an import whose worker died again,
at most JOB_MAX_RECOVERIES times: imports are atomic and idempotent, so running one again is safe.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from rlaif_site import jobs
from ..importers import FORMATS, ImportFileError
from ..models import ImportJob
from .imports import comparisons_import, posts_import

log = logging.getLogger(__name__)

KINDS = ("comparisons", "posts")


def _enqueue(job_id: int) -> None:
    from ..tasks.imports import run_import_job

    run_import_job.delay(job_id)


@transaction.atomic
def import_job_create(*, path: str | Path, file_name: str, kind: str = "comparisons", fmt: str = "",
                      dataset: str = "", make_pairs: bool = True, created_by=None,
                      background: bool = False) -> ImportJob:
    """Record an upload waiting at `path` as an import job; a background job is queued on commit."""
    if kind not in KINDS:
        raise ValidationError({"kind": f"kind must be one of {list(KINDS)}, got {kind!r}"})
    if fmt and fmt not in FORMATS:
        raise ValidationError({"format": f"format must be one of {list(FORMATS)}, got {fmt!r}"})
    if len(dataset) > 200 or "\x00" in dataset:
        raise ValidationError({"dataset": "a dataset name is at most 200 characters, without NUL"})
    path = Path(path)
    job = ImportJob.objects.create(
        file_name=file_name[:255], path=str(path), size_bytes=path.stat().st_size if path.exists() else 0,
        kind=kind, fmt=fmt, dataset=dataset, make_pairs=make_pairs, created_by=created_by)
    if background:
        transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def _claim(job_id: int, token: str) -> ImportJob | None:
    """QUEUED -> RUNNING under `token`; a RUNNING job whose heartbeat is stale is taken over."""
    now = timezone.now()
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            return None
        if job.status == ImportJob.Status.RUNNING:
            fresh = job.heartbeat_at is not None and job.heartbeat_at >= now - timedelta(seconds=jobs.stale_s())
            if fresh:
                return None
            job.recoveries += 1
        elif job.status != ImportJob.Status.QUEUED:
            return None
        job.status, job.lease_token, job.heartbeat_at = ImportJob.Status.RUNNING, token, now
        job.started_at = job.started_at or now
        job.save()
    return job


def _beat(job_id: int, token: str) -> bool:
    return ImportJob.objects.filter(pk=job_id, lease_token=token, status=ImportJob.Status.RUNNING).update(
        heartbeat_at=timezone.now()) > 0


def _finish(job: ImportJob, token: str, **fields) -> None:
    ImportJob.objects.filter(pk=job.pk, lease_token=token).update(finished_at=timezone.now(),
                                                                  heartbeat_at=timezone.now(), **fields)


def import_job_run(*, job_id: int) -> ImportJob | None:
    """Run a queued import job here; None when it is not this caller's to run (done, or live elsewhere).

    The import's own transaction makes it all or nothing; the job row records the outcome outside
    that transaction, so a failure is stored even though the import wrote nothing.
    """
    token = jobs.new_token()
    job = _claim(job_id, token)
    if job is None:
        return None
    path = Path(job.path)
    try:
        with jobs.Heartbeat(lambda: _beat(job.pk, token), name=f"import-{job.pk}"):
            if job.kind == "posts":
                result = posts_import(path=path, dataset=job.dataset or None, make_pairs=job.make_pairs)
            else:
                result = comparisons_import(path=path, fmt=job.fmt or None, dataset=job.dataset or None)
    except ImportFileError as exc:
        _finish(job, token, status=ImportJob.Status.FAILED, error=str(exc), error_line=exc.line or None,
                error_field=exc.field or "")
    except FileNotFoundError:
        _finish(job, token, status=ImportJob.Status.FAILED,
                error=f"{job.file_name}: the uploaded file is gone from the server; upload it again")
    except Exception as exc:  # recorded on the job's page (its type only: no server detail), then logged
        log.exception("import job %s (%s) failed", job.pk, job.file_name)
        _finish(job, token, status=ImportJob.Status.FAILED,
                error=f"{job.file_name}: the import failed unexpectedly ({type(exc).__name__}); nothing was written")
    else:
        _finish(job, token, status=ImportJob.Status.DONE, counts=result.as_dict(), error="")
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()  # the upload's own folder
    except OSError:
        pass
    job.refresh_from_db()
    return job


def import_jobs_recover_stale(*, older_than_s: float | None = None, max_recoveries: int | None = None) -> int:
    """The sweeper of imports: a running import whose heartbeat is older than JOB_STALE_S lost its
    worker; it is queued again (its file is still on the server) up to JOB_MAX_RECOVERIES times,
    then marked failed with the reason. Returns the number of jobs handled."""
    limit = jobs.recovery_limit(max_recoveries)
    n = 0
    with transaction.atomic():
        lost = jobs.lost_rows(ImportJob.objects.filter(status=ImportJob.Status.RUNNING), older_than_s=older_than_s)
        for job in lost:
            n += 1
            job.recoveries += 1
            job.lease_token = ""
            if job.recoveries > limit:
                job.status, job.finished_at = ImportJob.Status.FAILED, timezone.now()
                job.error = f"The worker importing this file was lost {jobs.times(job.recoveries)}; nothing was written."
            else:
                job.status = ImportJob.Status.QUEUED
                transaction.on_commit(lambda pk=job.pk: _enqueue(pk))
            job.save()
            log.warning("import job %s: worker lost (recovery %s)", job.pk, job.recoveries)
    return n
