"""What every long job shares: a heartbeat thread, execution tokens, and the periodic sweeper.

A job (AI labeling, training run, dashboard refresh, file import) keeps a row with a heartbeat
timestamp that a background thread of its worker moves forward every `JOB_HEARTBEAT_S` seconds,
whatever the job's loop is doing. The sweeper (`sweep_jobs`) runs the functions named in
`settings.JOB_SWEEPERS`; each finds the rows of its kind whose heartbeat is older than
`JOB_STALE_S`, marks them lost, and queues them again from their last chunk or checkpoint, up to
`JOB_MAX_RECOVERIES` times, then marks them failed with the reason. Sweepers lock rows with
SKIP LOCKED, so the timer that every worker runs (`start_sweeper_timer`, started by
`rlaif_site.celery` when a worker is ready) can run in many workers at once.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from typing import Callable

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils.module_loading import import_string

log = logging.getLogger(__name__)


def heartbeat_s() -> float:
    return float(settings.JOB_HEARTBEAT_S)


def stale_s() -> float:
    return float(settings.JOB_STALE_S)


def max_recoveries() -> int:
    return int(settings.JOB_MAX_RECOVERIES)


def times(n: int) -> str:
    """'once', '2 times': how often a job was lost, in its failure message."""
    return "once" if n == 1 else f"{n} times"


def recovery_limit(given: int | None = None) -> int:
    """How often a sweeper queues a lost job again: `given`, else JOB_MAX_RECOVERIES."""
    return max_recoveries() if given is None else given


def lost_rows(queryset, *, older_than_s: float | None = None, started_field: str | None = None):
    """The rows of `queryset` (running jobs with a `heartbeat_at`) whose heartbeat is older than
    `older_than_s` (JOB_STALE_S) or missing, locked for update and skipping rows another sweeper
    holds; call inside `transaction.atomic`. With `started_field`, a row with no heartbeat yet counts
    as lost only once that field is older than the cutoff too (it may still be loading its model)."""
    from datetime import timedelta

    from django.db.models import Q
    from django.utils import timezone

    cutoff = timezone.now() - timedelta(seconds=stale_s() if older_than_s is None else older_than_s)
    missing = Q(heartbeat_at__isnull=True, **({f"{started_field}__lt": cutoff} if started_field else {}))
    return queryset.select_for_update(skip_locked=True).filter(Q(heartbeat_at__lt=cutoff) | missing)


def new_token() -> str:
    """An id for one execution of a job: host, process and a random part (fits 64 characters)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Heartbeat:
    """Calls `beat()` every `every_s` seconds in a daemon thread while the `with` block runs.

    `beat` returns False when this execution no longer owns its job (the sweeper gave it to
    another worker, or a person cancelled it); `lost` then stays True and the job's loop should
    stop writing. A beat that raises (database briefly down) is logged and retried.
    """

    def __init__(self, beat: Callable[[], bool | None], *, every_s: float | None = None, name: str = "heartbeat"):
        self._beat = beat
        self.every_s = every_s if every_s is not None else heartbeat_s()
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every_s):
                try:
                    if self._beat() is False:
                        self.lost = True
                except Exception:  # a dead connection: drop it, the next beat reconnects
                    log.exception("heartbeat %s failed", self._thread.name)
                    connection.close()
        finally:
            connection.close()

    def __enter__(self) -> "Heartbeat":
        # Inside a transaction (a test, a job run in a shell's atomic block) nobody else sees this
        # job's rows yet, and a second connection would wait on their row locks: no thread then.
        if not connection.in_atomic_block:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


def sweep_jobs() -> dict[str, int]:
    """Run every sweeper of `settings.JOB_SWEEPERS` once; {sweeper: jobs recovered or failed}.

    One failing sweeper (a missing table during a deploy, a lost connection) does not stop the others.
    """
    counts: dict[str, int] = {}
    own_connection = not connection.in_atomic_block  # the timer thread's, not a caller's transaction
    for path in settings.JOB_SWEEPERS:
        try:
            if own_connection:
                close_old_connections()  # a connection the database dropped since the last sweep
            counts[path] = int(import_string(path)() or 0)
        except Exception:
            log.exception("job sweeper %s failed", path)
            if own_connection:
                connection.close()
            counts[path] = -1
    return counts


_timer: threading.Thread | None = None
_timer_stop = threading.Event()


def start_sweeper_timer(every_s: float | None = None) -> threading.Thread | None:
    """Start (once per process) a daemon thread running `sweep_jobs` every `JOB_SWEEP_EVERY_S` seconds,
    the first time right away. None when the setting is 0 (sweeping disabled)."""
    global _timer
    every = float(settings.JOB_SWEEP_EVERY_S if every_s is None else every_s)
    if every <= 0:
        return None
    if _timer is not None and _timer.is_alive():
        return _timer
    _timer_stop.clear()

    def loop() -> None:
        try:
            while True:
                counts = sweep_jobs()
                if any(n > 0 for n in counts.values()):
                    log.warning("job sweeper: %s", counts)
                if _timer_stop.wait(every):
                    return
        finally:
            connection.close()

    _timer = threading.Thread(target=loop, name="job-sweeper", daemon=True)
    _timer.start()
    return _timer


def stop_sweeper_timer() -> None:
    _timer_stop.set()
