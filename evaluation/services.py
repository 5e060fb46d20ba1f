"""Writes of the evaluation app: compute and store a filter set's dashboard result, ask for one.

The computation lives in ``compute.py``, stored results and refresh requests in ``cache.py``, the
page tables in ``pages.py``; this module is what the worker, the staff "Recompute" button and
``manage.py evaluate`` call.
"""
from __future__ import annotations

from . import cache, compute
from .compute import DEFAULT_ROUNDS
from .models import CachedResult
from .selectors import Filters


def refresh_dashboard(*, filters: Filters, rounds: int = DEFAULT_ROUNDS, skip_if_fresh: bool = False) -> CachedResult:
    """Compute and store the result of one filter set, then evict old results.

    ``skip_if_fresh`` (the worker's way) returns the stored result untouched when no label was
    written since it was computed: a duplicate request costs one index look-up.
    """
    try:
        if skip_if_fresh and cache.is_fresh(filters):
            return cache.stored_result(filters)
        obj = cache.result_store(filters=filters, result=compute.compute_dashboard(filters=filters, rounds=rounds))
        cache.results_evict()
        return obj
    finally:
        cache.refresh_done(filters)


def request_refresh(*, filters: Filters, force: bool = False) -> bool:
    """Queue a recompute (deduplicated and rate-limited, see ``cache.refresh_request``)."""
    return cache.refresh_request(filters=filters, force=force)
