"""Celery tasks: background imports (queue default).

`import_file` runs the same import service as the shell commands and the admin form on a file
that is already on the server (large admin uploads, the worker round-trip test). It returns the
counts; errors are logged and re-raised (the import itself is atomic, so a failed run writes
nothing).

Heartbeat hook (issue 11): an import has no job row yet, so nothing can be swept. When one exists
(an import job model with `heartbeat_at`, `lease_token` and `recoveries`), wrap the service call
below in `rlaif_site.jobs.Heartbeat(lambda: <UPDATE heartbeat_at WHERE lease_token = ours>)` and
add its `*_recover_stale` sweeper to `settings.JOB_SWEEPERS`; `evaluation/refresh_jobs.py` is the
pattern. Re-queueing a lost import is safe: imports are atomic and idempotent.
"""
from __future__ import annotations

import logging
from pathlib import Path

from celery import shared_task

from ..services.imports import comparison_import, posts_import

__all__ = ["import_file"]

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
            result = comparison_import(path=path, fmt=fmt, dataset=dataset)
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
