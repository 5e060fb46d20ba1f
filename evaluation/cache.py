"""Stored dashboard results (``CachedResult``), their freshness, and refresh requests.

A page reads the stored result of its filter set and adds the SQL aggregates of the labels
written since (``cache_state``). A missing or stale result asks for a refresh; a GET writes
nothing to the database for that, only a key in Django's cache:

- one refresh per filter set in flight: ``cache.add`` of an in-flight key (atomic in Redis and in
  the per-process memory cache), deleted by the worker when it stores the result, and expiring
  after ``PENDING_TIMEOUT_S`` should the worker die;
- a rate limit over all filter sets: at most ``EVALUATION_REFRESH_RATE = (n, seconds)`` new
  requests per window (30 GETs with 30 date ranges queue n, not 30);
- the worker skips a request whose stored result is already fresh (a duplicate from another
  web process when no shared cache is configured), and evicts old results after storing one:
  at most ``EVALUATION_MAX_RESULTS`` are kept, none older than ``EVALUATION_RESULT_MAX_AGE_DAYS``,
  and the unfiltered result always.

Set ``CACHE_URL`` (Redis) in production so that every web process shares these keys.
"""
from __future__ import annotations

import datetime as dt
import gc
import hashlib
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache as django_cache
from django.db import transaction
from django.utils import timezone

from .compute import AGGREGATES, CACHE_VERSION, COUNTS, count_labels, merge_aggregates, sql_aggregates
from .models import CachedResult
from .selectors import Filters

PENDING_TIMEOUT_S = 15 * 60


def _setting(name: str, default):
    return getattr(settings, name, default)


def cache_key(f: Filters) -> str:
    """The ``CachedResult.key`` of a filter set."""
    return f"dashboard:v{CACHE_VERSION}:{f.key()}"


def _inflight_key(f: Filters) -> str:
    return "evaluation:refresh:" + hashlib.sha256(cache_key(f).encode()).hexdigest()[:32]


def filters_payload(f: Filters) -> dict:
    """A filter set as the refresh task's JSON argument."""
    return {"dataset": f.dataset, "campaign": f.campaign,
            "date_from": f.date_from.isoformat() if f.date_from else None,
            "date_to": f.date_to.isoformat() if f.date_to else None}


def filters_from_payload(payload: dict) -> Filters:
    def day(x):
        return dt.date.fromisoformat(x) if x else None

    return Filters(payload.get("dataset") or None, payload.get("campaign") or None,
                   day(payload.get("date_from")), day(payload.get("date_to")))


# --- refresh requests (GET-safe: Django's cache and the broker, never the database) ------------


def refresh_pending(f: Filters) -> bool:
    """Whether a refresh of ``f`` is in flight (requested and not yet stored)."""
    return django_cache.get(_inflight_key(f)) is not None


def _rate_allows() -> bool:
    """A fixed-window counter over all filter sets."""
    limit, window = _setting("EVALUATION_REFRESH_RATE", (10, 60))
    key = f"evaluation:refresh-rate:{int(time.time() // window)}"
    django_cache.add(key, 0, timeout=2 * window)
    try:
        return django_cache.incr(key) <= limit
    except ValueError:  # expired between add and incr
        return True


def refresh_request(*, filters: Filters, force: bool = False) -> bool:
    """Queue a recompute of ``filters`` unless one is in flight or the rate limit is spent.

    ``force`` (the staff "Recompute" button, a POST) queues even then. True when queued.
    """
    from .tasks import refresh_dashboard_task

    key = _inflight_key(filters)
    if force:
        django_cache.set(key, time.time(), timeout=PENDING_TIMEOUT_S)
    elif django_cache.get(key) is not None or not _rate_allows():
        return False
    elif not django_cache.add(key, time.time(), timeout=PENDING_TIMEOUT_S):
        return False  # another request won the race
    payload = filters_payload(filters)
    transaction.on_commit(lambda: refresh_dashboard_task.delay(payload))
    return True


def refresh_done(f: Filters) -> None:
    django_cache.delete(_inflight_key(f))


# --- stored results (written by the worker) ------------------------------------------------------


# Parsed stored results of this process, by key: (computed_at, value). A result at a million labels
# is megabytes of JSON; a page checks computed_at (one indexed row) and parses only a new one.
_PARSED: dict[str, tuple] = {}
_PARSED_MAX = 8


def stored_result(f: Filters) -> CachedResult | None:
    """The stored result of ``f`` (read-only: its value may be shared with other requests)."""
    key = cache_key(f)
    row = CachedResult.objects.filter(key=key).values_list("pk", "computed_at", "n_labels").first()
    if row is None:
        return None
    pk, computed_at, n_labels = row
    hit = _PARSED.get(key)
    if hit is None or hit[0] != computed_at:
        value = CachedResult.objects.filter(pk=pk).values_list("value", flat=True).first()
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.pop(next(iter(_PARSED)), None)
        hit = _PARSED[key] = (computed_at, value)
        # A parsed result is ~10^5 long-lived objects (no cycles: refcounting frees a replaced one);
        # out of the cyclic collector's generations, they stop making each full collection cost
        # a tenth of a second inside whatever request triggers it.
        gc.freeze()
    return CachedResult(pk=pk, key=key, value=hit[1], computed_at=computed_at, n_labels=n_labels)


def _usable(obj: CachedResult | None) -> dict | None:
    result = ((obj.value if obj else None) or {}).get("result")
    if result is None or result.get("version") != CACHE_VERSION or "sql" not in result:
        return None
    return result


def is_fresh(f: Filters) -> bool:
    """A usable stored result with no label written since its watermark."""
    result = _usable(stored_result(f))
    return result is not None and count_labels(sql_aggregates(f.since(*result["watermark"]), COUNTS)) == 0


def result_store(*, filters: Filters, result: dict) -> CachedResult:
    """Store a computed result under its filter set's key."""
    with transaction.atomic():
        obj, _ = CachedResult.objects.select_for_update().get_or_create(
            key=cache_key(filters), defaults={"value": {}}
        )
        obj.value = {"status": "ready", "result": result, "finished_at": timezone.now().isoformat()}
        obj.n_labels = result["n_labels"]
        obj.save()
    return obj


def results_evict() -> int:
    """Delete results beyond the newest ``EVALUATION_MAX_RESULTS`` and those older than
    ``EVALUATION_RESULT_MAX_AGE_DAYS``; the unfiltered result stays. Returns how many went."""
    keep = int(_setting("EVALUATION_MAX_RESULTS", 50))
    max_age = dt.timedelta(days=float(_setting("EVALUATION_RESULT_MAX_AGE_DAYS", 30)))
    evictable = CachedResult.objects.exclude(key=cache_key(Filters()))
    with transaction.atomic():
        old = set(evictable.filter(computed_at__lt=timezone.now() - max_age).values_list("pk", flat=True))
        old |= set(evictable.order_by("-computed_at", "-pk").values_list("pk", flat=True)[max(keep - 1, 0):])
        deleted, _ = CachedResult.objects.filter(pk__in=old).delete()
    return deleted


# --- what a page reads -----------------------------------------------------------------------------


@dataclass
class CacheState:
    result: dict | None
    pending: bool
    stale: bool
    live: dict
    n_new: int = 0
    computed_at: object = None
    n_cached: int = 0
    throttled: bool = False  # stale, not in flight, and the refresh rate limit is spent
    partial: bool = False  # ``result`` was computed on demand: no bootstrap intervals yet


def _quick(f: Filters, parts: tuple[str, ...]) -> dict | None:
    """``compute.quick_result`` of ``f`` from the label snapshot (``snapshot.rows_for``), or, in a
    small database without one, straight from its rows; None when neither is at hand. Kept in
    Django's cache (not the database: a GET writes no row) until a label is written."""
    from . import compute, selectors, snapshot

    wh, wa = selectors.watermarks()
    digest = hashlib.sha256(f"{cache_key(f)}|{','.join(parts)}".encode()).hexdigest()[:32]
    key = f"evaluation:quick:{digest}:{wh}:{wa}"
    hit = django_cache.get(key)
    if hit is not None:
        return hit
    rows = snapshot.rows_for(f, now=(wh, wa))
    if rows is None and wh + wa <= _setting("EVALUATION_QUICK_WITHOUT_SNAPSHOT", 50_000):
        rows = snapshot.mask(snapshot.delta_rows((0, 0), (wh, wa)), f)
    if rows is None:
        return None
    result = compute.quick_result(rows, parts)
    django_cache.set(key, result, timeout=PENDING_TIMEOUT_S)
    return result


def cache_state(f: Filters, auto_refresh: bool = True, needs=tuple(AGGREGATES), quick: tuple[str, ...] = ()) -> CacheState:
    """The stored result for ``f`` and the live aggregates of the page.

    With a stored result, the live aggregates are its SQL aggregates (labels up to the worker's
    id watermark) plus the same GROUP BY over the labels written since, an index range scan;
    without one (a first visit to a filter set) only the aggregates the page ``needs`` run, over
    all labels, and with ``quick`` (the parts of ``compute.quick_result`` the page shows) it gets
    a result computed on demand, without the bootstrap intervals, length-controlled rates and
    agreement statistics; it gives the pair counts and alignment the page needs, not SQL.
    Alignment is not additive (a new label can flip a majority): it comes from the stored result,
    marked stale until the worker has caught up. A missing or stale result asks for a refresh.
    """
    obj = stored_result(f)
    result = _usable(obj)
    partial = False
    if result is None:
        result = _quick(f, quick) if quick else None
        partial = result is not None
        given = result["aggregates"] if partial else {}
        live, n_new = sql_aggregates(f, [n for n in needs if n not in given]), 0
        live.update({n: given[n] for n in needs if n in given})
    else:
        delta = sql_aggregates(f.since(*result["watermark"]))
        live, n_new = merge_aggregates(result["sql"], delta), count_labels(delta)
    stale = partial or result is None or n_new > 0
    pending = refresh_pending(f)
    throttled = False
    if stale and auto_refresh and not pending:
        pending = refresh_request(filters=f)
        throttled = not pending
    return CacheState(result, pending, stale, live, n_new, obj.computed_at if obj else None,
                      obj.n_labels if obj else 0, throttled, partial)
