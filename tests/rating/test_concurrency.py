"""The queue under concurrency: PostgreSQL (threads, one connection each) and a SQLite file
(several processes). No pair gets more labels or live leases than its overlap, no annotator gets a
pair twice, and an expired lease is reassigned."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from labeling.models import Assignment, HumanLabel
from labeling.services.assignments import campaign_create, label_submit, assignment_next

from .conftest import make_dataset

REPO = Path(__file__).resolve().parents[2]


def _run_threads(n: int, target) -> list[BaseException]:
    barrier, errors = threading.Barrier(n), []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            target(i)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_many_annotators_at_once_never_exceed_overlap_or_double_assign(require_postgres, django_user_model):
    users = [django_user_model.objects.create_user(f"conc{i}", password="x") for i in range(16)]
    campaign = campaign_create(name="conc", dataset=make_dataset("conc", n=6), overlap=2, annotators=users)
    # Round 1: 16 annotators ask for a pair at the same instant; only 12 leases fit (6 pairs x 2).
    got: dict[int, int | None] = {}

    def ask(i: int) -> None:
        a = assignment_next(campaign=campaign, user=users[i])
        got[i] = a.item_id if a else None

    assert _run_threads(16, ask) == []
    leased = [item for item in got.values() if item is not None]
    assert len(leased) == 12 and max(Counter(leased).values()) == 2

    # Round 2: everyone loops next/submit until the queue is dry.
    def work(i: int) -> None:
        while (a := assignment_next(campaign=campaign, user=users[i])) is not None:
            label_submit(user=users[i], assignment_id=a.pk, preferred="left" if i % 2 else "right")

    assert _run_threads(16, work) == []
    per_item = Counter(HumanLabel.objects.filter(campaign=campaign).values_list("comparison_id", flat=True))
    assert sorted(per_item.values()) == [2] * 6
    pairs = list(HumanLabel.objects.filter(campaign=campaign).values_list("comparison_id", "annotator_id"))
    assert len(pairs) == len(set(pairs)) == 12
    assert list(campaign.items.values_list("n_done", flat=True)) == [2] * 6


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_expired_lease_is_reassigned_under_concurrency(require_postgres, django_user_model):
    users = [django_user_model.objects.create_user(f"exp{i}", password="x") for i in range(9)]
    campaign = campaign_create(name="exp", dataset=make_dataset("exp", n=1), overlap=1, annotators=users,
                               lease_seconds=60)
    now = timezone.now()
    first = assignment_next(campaign=campaign, user=users[0], now=now)
    later = now + timedelta(seconds=61)
    got: dict[int, int | None] = {}

    def ask(i: int) -> None:
        a = assignment_next(campaign=campaign, user=users[i + 1], now=later)
        got[i] = a.pk if a else None

    assert _run_threads(8, ask) == []
    winners = [pk for pk in got.values() if pk is not None]
    assert len(winners) == 1  # exactly one of the 8 gets the pair back
    winner = Assignment.objects.get(pk=winners[0])
    assert winner.item_id == first.item_id and winner.annotator_id != users[0].pk


def test_sqlite_file_with_several_processes_never_over_assigns(tmp_path):
    """SQLite has no row locks: BEGIN IMMEDIATE must serialize the pick across processes."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'queue.sqlite3'}", "VAR_DIR": str(tmp_path / "var"),
           "DJANGO_SETTINGS_MODULE": "rlaif_site.settings", "CELERY_BROKER_URL": "memory://",
           "PYTHONPATH": str(REPO)}
    env.pop("TEST_DATABASE_NAME", None)
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("sqlite_queue_worker.py")), "--processes", "6", "--pairs", "12",
         "--overlap", "2"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "OK labels=24 max_per_pair=2 duplicates=0 errors=0" in out.stdout, out.stdout[-3000:]
