"""Celery tasks: background imports (queue default).

`import_file` runs the same import service as the shell commands and the admin form on a file
that is already on the server (large admin uploads, the worker round-trip test). It returns the
counts; errors are logged and re-raised (the import itself is atomic, so a failed run writes
nothing).

`run_import_job` runs an admin upload's `ImportJob` (`labeling.services.import_jobs`): status,
counts and the error with file, line and field on the job's row, a heartbeat while it runs, and
the sweeper `import_jobs_recover_stale` re-queueing it if its worker dies.
"""
from __future__ import annotations

import logging
from pathlib import Path

from celery import shared_task

from ..services.imports import comparisons_import, posts_import

__all__ = ["import_file", "run_import_job"]

log = logging.getLogger(__name__)


@shared_task(name="labeling.import_file")
def import_file(
    path: str, kind: str = "comparisons", fmt: str | None = None, dataset: str | None = None,
    make_pairs: bool = True, delete_after: bool = False,
) -> dict:
    """Import `path` (kind "comparisons" or "posts"); delete it afterwards when asked (uploads)."""
    try:
        if kind == "posts":
            result = posts_import(path=path, dataset=dataset, make_pairs=make_pairs)
        elif kind == "comparisons":
            result = comparisons_import(path=path, fmt=fmt, dataset=dataset)
        else:
            raise ValueError(f"unknown import kind {kind!r}")
        log.info("import_file %s: %s", path, result)
        return result.as_dict()
    except Exception:
        log.exception("import_file %s failed", path)
        raise
    finally:
        if delete_after:
            Path(path).unlink(missing_ok=True)


@shared_task(name="labeling.run_import_job", acks_late=True, reject_on_worker_lost=True)
def run_import_job(job_id: int) -> str:
    """Run an import job; its outcome is on its row ("skipped" when it is done or live elsewhere)."""
    from ..services.import_jobs import import_job_run

    job = import_job_run(job_id=job_id)
    return job.status if job is not None else "skipped"

