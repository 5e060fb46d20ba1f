"""Helper of test_concurrency: on the SQLite file named by DATABASE_URL, migrate, seed a campaign,
then let several *processes* loop "next pair, submit" at once and print the counts.

Not a test module itself (pytest does not collect it); run by test_sqlite_file_with_several_processes.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
from collections import Counter


def _setup() -> None:
    import django

    django.setup()


def _work(user_id: int, campaign_id: int, start, errors) -> None:
    from django.contrib.auth import get_user_model

    from labeling.models import Campaign
    from labeling.services.assignments import label_submit, assignment_next

    user = get_user_model().objects.get(pk=user_id)
    campaign = Campaign.objects.get(pk=campaign_id)
    start.wait()
    try:
        while (a := assignment_next(campaign=campaign, user=user)) is not None:
            label_submit(user=user, assignment_id=a.pk, preferred="left")
    except Exception as exc:  # noqa: BLE001 - counted and printed
        print(f"worker {user_id}: {exc!r}", file=sys.stderr)
        with errors.get_lock():
            errors.value += 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--processes", type=int, default=6)
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--overlap", type=int, default=2)
    args = ap.parse_args()
    _setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, connections

    assert connection.vendor == "sqlite", connection.vendor
    call_command("migrate", verbosity=0)
    sys.path.insert(0, ".")
    from labeling.models import HumanLabel
    from labeling.services.assignments import campaign_create
    from tests.rating.conftest import make_dataset

    users = [get_user_model().objects.create(username=f"sq{i}") for i in range(args.processes)]
    campaign = campaign_create(name="sqlite", dataset=make_dataset("sqlite", n=args.pairs), overlap=args.overlap,
                               annotators=users)
    connections.close_all()
    ctx = mp.get_context("fork")  # children inherit the loaded app; each opens its own connection
    start, errors = ctx.Event(), ctx.Value("i", 0)
    procs = [ctx.Process(target=_work, args=(u.pk, campaign.pk, start, errors)) for u in users]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(240)
    rows = list(HumanLabel.objects.filter(campaign=campaign).values_list("comparison_id", "annotator_id"))
    per_pair = Counter(c for c, _ in rows)
    dupes = len(rows) - len(set(rows))
    print(f"OK labels={len(rows)} max_per_pair={max(per_pair.values())} duplicates={dupes} errors={errors.value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
