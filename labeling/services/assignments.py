"""Writes of the human rating queue: campaigns, leases ("next pair"), submit, skip, undo, expiry.

Concurrency design. Every write runs inside `transaction.atomic`.

* "Next pair" on PostgreSQL picks one CampaignItem with `SELECT ... FOR UPDATE SKIP LOCKED`, so
  concurrent annotators get different rows without waiting on each other. The pick statement's
  snapshot can be older than a lease another annotator committed a moment ago on that same row
  (the row itself is not updated by a lease, so PostgreSQL does not re-check it), so once the row
  lock is held the lease is written by an INSERT ... SELECT that checks the room again in its own,
  fresh snapshot (and writes nothing when the pair is full). Every lease creator holds the item's
  row lock, so "labels done + live leases <= overlap" cannot be broken. Submit, undo, skip and
  expiry never raise that sum (a late submit on an expired lease re-checks it under the lock).
* The hot path is plain SQL and needs few round trips (see bench/labeling_load.py).
* On SQLite (the demo default) row locks do not exist; the settings open every transaction with
  BEGIN IMMEDIATE, which takes the database write lock up front and so serializes the pick.
* A lease is live while `status == leased and expires_at > now`; an expired lease is simply not
  counted, so it returns its pair to the pool at once. `assignments_expire` only tidies the status
  column for reports.
* One annotator's own requests are serialized by locking their user row, so "next" is idempotent
  (a double click or a retry returns the same live lease instead of leasing a second pair).
* Submitting the same answer twice returns the stored label; a different answer for an already
  answered lease is refused (use undo).

Stored choices are always canonical (0 = summary A, 1 = summary B); what the annotator saw is
left/right, mapped back through `Assignment.a_shown_first`.
"""
from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Literal, NamedTuple

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ..guidelines import DEFAULT_GUIDELINES
from ..models import (
    Assignment,
    AssignmentStatus,
    Campaign,
    CampaignItem,
    Comparison,
    Dataset,
    HumanLabel,
)

LEASED, SUBMITTED, SKIPPED, EXPIRED = (
    AssignmentStatus.LEASED, AssignmentStatus.SUBMITTED, AssignmentStatus.SKIPPED, AssignmentStatus.EXPIRED,
)

#: How strongly the annotator prefers the chosen summary, mapped onto OpenAI's 9-point scale.
CERTAINTY_LABELS = {1: "slightly", 2: "somewhat", 3: "clearly", 4: "definitely"}
#: An item is flagged for review when its most common answer has less than this share of labels.
LOW_AGREEMENT_SHARE = 2 / 3
_LOCK_WAIT_S = 3.0
_SWEEP_EVERY_S = 30.0
_last_sweep: dict[int, float] = {}

Side = Literal["left", "right"]


class QueueError(Exception):
    """A queue request that cannot be honoured; `code` names the reason for the API."""

    code = "queue_error"


class CampaignError(ValueError):
    """Bad input when creating a campaign; the message names the field."""


class LeaseNotYours(QueueError):
    code = "not_your_lease"


class LeaseExpired(QueueError):
    code = "lease_expired"


class AlreadyAnswered(QueueError):
    code = "already_answered"


class NothingToUndo(QueueError):
    code = "nothing_to_undo"


class CampaignClosed(QueueError):
    """The pair's campaign was deactivated or the user taken off it: its pairs take no more answers."""

    code = "campaign_closed"


def _require_campaign(user, campaign_id: int) -> None:
    """The one rule of who may answer a campaign's pairs, shared by the rating page and the JSON API:
    the campaign is active and the user is one of its annotators (`selectors.rating.campaign_get_rateable`)."""
    from ..selectors.rating import campaign_get_rateable

    if campaign_get_rateable(user, campaign_id) is None:
        raise CampaignClosed("this campaign is closed, or you are no longer one of its annotators")


# --- mapping screen order <-> canonical order -------------------------------------------------


def to_canonical(*, preferred: Side, a_shown_first: bool, certainty: int | None) -> tuple[int, int | None]:
    """Map a left/right answer and a certainty (1..4) to (choice 0/1, OpenAI confidence 1..9 or None).

    OpenAI's scale runs from 1 (definitely A) to 9 (definitely B) with no middle 5 in a forced
    choice: "slightly A" is 4, "definitely A" is 1, "slightly B" is 6, "definitely B" is 9.
    """
    if preferred not in ("left", "right"):
        raise ValueError(f"preferred must be 'left' or 'right', got {preferred!r}")
    if certainty is not None and certainty not in CERTAINTY_LABELS:
        raise ValueError(f"certainty must be one of 1..4 or empty, got {certainty!r}")
    chose_a = (preferred == "left") == bool(a_shown_first)
    choice = 0 if chose_a else 1
    if certainty is None:
        return choice, None
    return choice, (5 - certainty) if chose_a else (5 + certainty)


# --- campaigns --------------------------------------------------------------------------------


def _resolve_users(annotators: Iterable) -> list:
    User = get_user_model()
    users, names = [], []
    for a in annotators:
        if isinstance(a, AbstractBaseUser):
            users.append(a)
        elif isinstance(a, str) and a.strip():
            names.append(a.strip())
        else:
            raise CampaignError(f"annotators: expected users or usernames, got {a!r}")
    if names:
        found = {u.get_username(): u for u in User.objects.filter(**{f"{User.USERNAME_FIELD}__in": names})}
        missing = [n for n in names if n not in found]
        if missing:
            raise CampaignError(f"annotators: unknown username(s): {', '.join(missing)}")
        users.extend(found[n] for n in names)
    return users


def campaign_items_add(*, campaign: Campaign, comparisons: Iterable | None = None, seed: int | None = None) -> int:
    """Fill a campaign that has no items yet: its comparisons plus a `gold_share` of gold pairs.

    Without `comparisons`, every comparison of the campaign's dataset is used (those with a known
    answer are kept back as gold pairs when gold_share > 0). Gold pairs are comparisons of the same
    dataset with `gold_choice` set; they make up `gold_share` of the items (as far as the dataset
    has them) and are mixed in at random positions, so annotators cannot tell them apart.
    Returns the number of items created.
    """
    if campaign.items.exists():
        raise CampaignError(f"campaign {campaign.name!r} already has items")
    share = float(campaign.gold_share)
    in_dataset = Comparison.objects.filter(post__dataset_id=campaign.dataset_id)
    if comparisons is None:
        regular = list(in_dataset.filter(gold_choice__isnull=True) if share > 0 else in_dataset)
    else:
        regular = [c if isinstance(c, Comparison) else Comparison(pk=int(c)) for c in comparisons]
        ids = {c.pk for c in regular}
        found = set(in_dataset.filter(pk__in=ids).values_list("pk", flat=True))
        if ids - found:
            bad = sorted(ids - found)[:10]
            raise CampaignError(f"comparisons: {len(ids - found)} not in dataset {campaign.dataset}, e.g. ids {bad}")
        regular = [Comparison(pk=pk) for pk in dict.fromkeys(c.pk for c in regular)]
    rng = random.Random(seed if seed is not None else campaign.pk)
    gold: list[Comparison] = []
    if share > 0:
        taken = {c.pk for c in regular}
        pool = [c for c in in_dataset.filter(gold_choice__isnull=False).order_by("pk") if c.pk not in taken]
        if not pool:
            raise CampaignError(
                f"gold_share={share}: dataset {campaign.dataset} has no comparisons with gold_choice set "
                "outside the chosen ones"
            )
        want = len(pool) if share >= 1 else round(share * len(regular) / (1 - share))
        gold = rng.sample(pool, min(max(want, 1), len(pool)))
    items = [CampaignItem(campaign=campaign, comparison_id=c.pk, is_gold=False) for c in regular]
    items += [CampaignItem(campaign=campaign, comparison_id=c.pk, is_gold=True) for c in gold]
    if not items:
        raise CampaignError(f"dataset {campaign.dataset}: no comparisons to put in campaign {campaign.name!r}")
    rng.shuffle(items)
    CampaignItem.objects.bulk_create(items, batch_size=2000)
    if connection.vendor == "postgresql":
        # A big new campaign changes the table's statistics at once; without fresh ones the
        # planner may sort the whole campaign for every "next pair" instead of walking the
        # (campaign, n_done) index and stopping at the first free row.
        with connection.cursor() as cur:
            cur.execute(f"ANALYZE {_T['i']}")
    return len(items)


@transaction.atomic
def campaign_create(
    *,
    name: str,
    dataset: Dataset | str,
    overlap: int = 1,
    annotators: Iterable = (),
    comparisons: Iterable | None = None,
    gold_share: float = 0.0,
    guidelines: str | None = None,
    created_by=None,
    group: Group | str | None = None,
    lease_seconds: int = 600,
    undo_seconds: int = 30,
    seed: int | None = None,
) -> Campaign:
    """Create a campaign with its items (see `campaign_items_add`); all or nothing."""
    if not name or not name.strip():
        raise CampaignError("name: must not be empty")
    if Campaign.objects.filter(name=name).exists():
        raise CampaignError(f"name: a campaign called {name!r} already exists")
    if isinstance(dataset, str):
        ds = Dataset.objects.filter(name=dataset).first()
        if ds is None:
            raise CampaignError(f"dataset: no dataset called {dataset!r}")
        dataset = ds
    if dataset.archived_at is not None:
        raise CampaignError(f"dataset: {dataset.name!r} is archived; restore it in the admin to label it again")
    if int(overlap) < 1:
        raise CampaignError(f"overlap: must be at least 1, got {overlap}")
    if not 0.0 <= float(gold_share) <= 1.0:
        raise CampaignError(f"gold_share: must be between 0 and 1, got {gold_share}")
    if isinstance(group, str):
        found = Group.objects.filter(name=group).first()
        if found is None:
            raise CampaignError(f"group: no group called {group!r}")
        group = found
    users = _resolve_users(annotators)
    campaign = Campaign.objects.create(
        name=name.strip(), dataset=dataset, overlap=int(overlap), gold_share=float(gold_share),
        guidelines=DEFAULT_GUIDELINES if guidelines is None else guidelines, created_by=created_by,
        group=group, lease_seconds=lease_seconds, undo_seconds=undo_seconds,
    )
    if users:
        campaign.annotators.add(*users)
    campaign_items_add(campaign=campaign, comparisons=comparisons, seed=seed)
    return campaign


# --- the queue --------------------------------------------------------------------------------


def assignments_expire(*, campaign: Campaign | None = None, now: datetime | None = None) -> int:
    """Mark leases past their expiry as expired (their pairs are already back in the pool)."""
    now = now or timezone.now()
    qs = Assignment.objects.filter(status=LEASED, expires_at__lte=now)
    if campaign is not None:
        qs = qs.filter(item__campaign=campaign)
    return qs.update(status=EXPIRED, finished_at=now)


def _maybe_sweep(campaign: Campaign, now: datetime) -> None:
    last = _last_sweep.get(campaign.pk, 0.0)
    if time.monotonic() - last >= _SWEEP_EVERY_S:
        _last_sweep[campaign.pk] = time.monotonic()
        assignments_expire(campaign=campaign, now=now)


def _db_time(value: datetime):
    """A datetime as the backend stores it (SQLite: naive UTC text; PostgreSQL: aware)."""
    return connection.ops.adapt_datetimefield_value(value)


def _py_time(value) -> datetime:
    if isinstance(value, str):  # SQLite returns raw text from a plain cursor
        value = parse_datetime(value)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, dt_timezone.utc)
    return value


# The hot path ("next pair", "submit") is plain SQL: the ORM's query compilation cost more CPU
# than the database work itself (see bench/labeling_load.py). Same SQL on PostgreSQL and SQLite,
# except the row-lock clauses, which SQLite does not have (BEGIN IMMEDIATE serializes it instead).
_T = {
    "a": Assignment._meta.db_table, "i": CampaignItem._meta.db_table, "c": Campaign._meta.db_table,
    "cmp": Comparison._meta.db_table, "l": HumanLabel._meta.db_table,
}
_ROOM = """
    i.campaign_id = %s AND i.n_done < %s
    AND i.n_done + (SELECT COUNT(*) FROM {a} l WHERE l.item_id = i.id AND l.status = 'leased'
                    AND l.expires_at > %s) < %s
    AND NOT EXISTS (SELECT 1 FROM {a} m WHERE m.item_id = i.id AND m.annotator_id = %s)
""".format(**_T)
_LEASE_COLS = "a.id, a.item_id, a.annotator_id, a.status, a.a_shown_first, a.leased_at, a.expires_at"


def _lease_from_row(row) -> Assignment:
    pk, item_id, annotator_id, status, a_first, leased_at, expires_at = row
    return Assignment(
        pk=pk, item_id=item_id, annotator_id=annotator_id, status=status, a_shown_first=bool(a_first),
        leased_at=_py_time(leased_at), expires_at=_py_time(expires_at),
    )


def assignment_current(*, campaign: Campaign, user, now: datetime | None = None) -> Assignment | None:
    """The annotator's live lease in this campaign (the newest), if any."""
    now = now or timezone.now()
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT {_LEASE_COLS} FROM {_T['a']} a JOIN {_T['i']} i ON i.id = a.item_id "
            "WHERE a.annotator_id = %s AND i.campaign_id = %s AND a.status = 'leased' AND a.expires_at > %s "
            "ORDER BY a.leased_at DESC, a.id DESC LIMIT 1",
            [user.pk, campaign.pk, _db_time(now)],
        )
        row = cur.fetchone()
    return _loaded(_lease_from_row(row)) if row else None


def _lease_if_room(cur, *, item_id: int, user_id: int, campaign: Campaign, now: datetime):
    """Write a lease on the item for the user if, in this statement's fresh snapshot, the item
    still has room and the user has never had it; returns (id, a_shown_first, expires) or None.

    On PostgreSQL the caller holds the item's row lock, so no other lease can appear meanwhile.
    """
    a_first = random.random() < 0.5
    expires = now + timedelta(seconds=campaign.lease_seconds)
    db_now = _db_time(now)
    cur.execute(
        f"INSERT INTO {_T['a']} (item_id, annotator_id, status, a_shown_first, leased_at, expires_at) "
        f"SELECT i.id, %s, 'leased', %s, %s, %s FROM {_T['i']} i WHERE i.id = %s AND {_ROOM} RETURNING id",
        [user_id, a_first, db_now, _db_time(expires), item_id,
         campaign.pk, campaign.overlap, db_now, campaign.overlap, user_id],
    )
    row = cur.fetchone()
    return (row[0], a_first, expires) if row else None


def assignment_next(*, campaign: Campaign, user, now: datetime | None = None) -> Assignment | None:
    """The annotator's live lease in this campaign, or a new lease on a pair that still needs labels.

    Returns None when the campaign has nothing left for this annotator. The caller checks that
    the annotator may work on the campaign (`selectors.rating.campaign_list_rateable`).
    """
    now = now or timezone.now()
    _maybe_sweep(campaign, now)
    locks = connection.features.has_select_for_update_skip_locked
    db_now = _db_time(now)
    room_args = [campaign.pk, campaign.overlap, db_now, campaign.overlap, user.pk]
    with transaction.atomic(), connection.cursor() as cur:
        if connection.vendor == "postgresql":
            # Serialize this annotator's own requests (double clicks, retries, two tabs). And a
            # lease is soft state: were the server to crash right after this commit, the annotator
            # would just ask again, so its commit need not wait for the WAL flush (labels do).
            cur.execute(
                "SELECT set_config('synchronous_commit', 'off', true), id "
                f"FROM {get_user_model()._meta.db_table} WHERE id = %s FOR UPDATE",
                [user.pk],
            )
        elif locks:
            cur.execute(f"SELECT id FROM {get_user_model()._meta.db_table} WHERE id = %s FOR UPDATE", [user.pk])
        live = assignment_current(campaign=campaign, user=user, now=now)
        if live is not None:
            return live
        skipped: list[int] = []
        deadline = time.monotonic() + _LOCK_WAIT_S
        while True:
            not_in = f" AND i.id NOT IN ({', '.join(['%s'] * len(skipped))})" if skipped else ""
            cur.execute(
                f"SELECT i.id FROM {_T['i']} i WHERE {_ROOM}{not_in} ORDER BY i.n_done LIMIT 1"
                + (" FOR UPDATE OF i SKIP LOCKED" if locks else ""),
                room_args + skipped,
            )
            row = cur.fetchone()
            if row is None:
                if not locks:
                    return None
                # Everything left may only be locked by annotators whose picks are in flight; a
                # fresh look (no locks) tells "nothing left" from "wait a moment".
                cur.execute(f"SELECT 1 FROM {_T['i']} i WHERE {_ROOM}{not_in} LIMIT 1", room_args + skipped)
                if cur.fetchone() is None or time.monotonic() > deadline:
                    return None
                time.sleep(random.uniform(0.002, 0.01))
                continue
            item_id = row[0]
            leased = _lease_if_room(cur, item_id=item_id, user_id=user.pk, campaign=campaign, now=now)
            if leased is not None:
                pk, a_first, expires = leased
                break
            skipped.append(item_id)
    return _loaded(Assignment(pk=pk, item_id=item_id, annotator_id=user.pk, status=LEASED, a_shown_first=a_first,
                              leased_at=now, expires_at=expires))


def _refresh_flag(item_id: int, campaign_id: int, comparison_id: int, is_gold: bool, gold_choice: int | None) -> None:
    """Flag an item when a gold answer was missed or its labels agree too little.

    Runs after the item's n_done update, i.e. holding its row lock, so it sees every label
    committed before it."""
    with connection.cursor() as cur:
        cur.execute(f"SELECT choice FROM {_T['l']} WHERE campaign_id = %s AND comparison_id = %s",
                    [campaign_id, comparison_id])
        choices = [r[0] for r in cur.fetchall()]
        gold_miss = is_gold and gold_choice is not None and any(c != gold_choice for c in choices)
        low_agreement = len(choices) >= 2 and Counter(choices).most_common(1)[0][1] / len(choices) < LOW_AGREEMENT_SHARE
        cur.execute(f"UPDATE {_T['i']} SET flagged = %s WHERE id = %s AND flagged <> %s",
                    [gold_miss or low_agreement, item_id, gold_miss or low_agreement])


def _loaded(obj):
    """Mark a model instance built from a raw row as one that exists in the database."""
    obj._state.adding, obj._state.db = False, "default"
    return obj


def _locked_assignment(assignment_id: int, user) -> Assignment:
    a = (
        Assignment.objects.select_for_update(of=("self",))
        .select_related("item__campaign", "item__comparison")
        .filter(pk=assignment_id)
        .first()
    )
    if a is None or a.annotator_id != user.pk:
        raise LeaseNotYours("this pair is not leased to you")
    return a


class _Lease(NamedTuple):
    """An assignment row with what submitting on it needs from its item, campaign and comparison."""

    annotator_id: int
    status: str
    a_first: bool
    leased_at: object
    expires_at: object
    label_id: int | None
    item_id: int
    comparison_id: int
    is_gold: bool
    campaign_id: int
    overlap: int
    gold_choice: int | None


def _lease_locked(cur, assignment_id: int, user, locks: bool) -> _Lease:
    """The user's assignment, row-locked where the database can; LeaseNotYours otherwise."""
    cur.execute(
        "SELECT a.annotator_id, a.status, a.a_shown_first, a.leased_at, a.expires_at, a.label_id, a.item_id, "
        "i.comparison_id, i.is_gold, i.campaign_id, c.overlap, cmp.gold_choice "
        f"FROM {_T['a']} a JOIN {_T['i']} i ON i.id = a.item_id JOIN {_T['c']} c ON c.id = i.campaign_id "
        f"JOIN {_T['cmp']} cmp ON cmp.id = i.comparison_id WHERE a.id = %s" + (" FOR UPDATE OF a" if locks else ""),
        [assignment_id],
    )
    row = cur.fetchone()
    if row is None or row[0] != user.pk:
        raise LeaseNotYours("this pair is not leased to you")
    lease = _Lease(*row)
    return lease._replace(a_first=bool(lease.a_first), is_gold=bool(lease.is_gold))


def _expired_lease_check(cur, lease: _Lease, user, now: datetime, locks: bool) -> None:
    """An expired lease still takes an answer while its pair has room; LeaseExpired otherwise."""
    if not _item_has_room(cur, lease.item_id, lease.overlap, user.pk, now, lock=locks):
        raise LeaseExpired("your lease on this pair expired and the pair went to someone else")


def _item_has_room(cur, item_id: int, overlap: int, user_id: int, now: datetime, *, lock: bool) -> bool:
    """Whether a pair can take one more answer from `user_id`: its answers plus others' live leases
    stay under its overlap (under the item's row lock where the database has one)."""
    if lock:
        cur.execute(f"SELECT id FROM {_T['i']} WHERE id = %s FOR UPDATE", [item_id])
    cur.execute(
        f"SELECT 1 FROM {_T['i']} i WHERE i.id = %s AND i.n_done < %s AND i.n_done + "
        f"(SELECT COUNT(*) FROM {_T['a']} l WHERE l.item_id = i.id AND l.status = 'leased' "
        "AND l.expires_at > %s AND l.annotator_id <> %s) < %s",
        [item_id, overlap, _db_time(now), user_id, overlap],
    )
    return cur.fetchone() is not None


def _label_insert(cur, lease: _Lease, *, assignment_id: int, user, choice: int, confidence: int | None,
                  note_left: str, note_right: str, now: datetime) -> HumanLabel:
    """Write the label, mark the assignment submitted, count it on the item and refresh its flag."""
    note_a, note_b = (note_left, note_right) if lease.a_first else (note_right, note_left)
    fields = {
        "comparison_id": lease.comparison_id, "annotator_id": user.pk, "worker_id": "",
        "campaign_id": lease.campaign_id, "choice": choice, "confidence": confidence, "a_shown_first": lease.a_first,
        "time_taken_s": max(0.0, (now - _py_time(lease.leased_at)).total_seconds()),
        "note_a": note_a.strip(), "note_b": note_b.strip(), "created_at": now,
    }
    cols = ", ".join(fields)
    params = [_db_time(v) if isinstance(v, datetime) else v for v in fields.values()]
    cur.execute(f"INSERT INTO {_T['l']} ({cols}) VALUES ({', '.join(['%s'] * len(fields))}) RETURNING id", params)
    label_pk = cur.fetchone()[0]
    cur.execute(f"UPDATE {_T['a']} SET status = 'submitted', finished_at = %s, label_id = %s WHERE id = %s",
                [_db_time(now), label_pk, assignment_id])
    cur.execute(f"UPDATE {_T['i']} SET n_done = n_done + 1 WHERE id = %s RETURNING n_done", [lease.item_id])
    n_done = cur.fetchone()[0]
    if lease.is_gold or n_done >= 2:  # one label alone can only miss a gold answer
        _refresh_flag(lease.item_id, lease.campaign_id, lease.comparison_id, lease.is_gold, lease.gold_choice)
    return _loaded(HumanLabel(pk=label_pk, **fields))


def label_submit(
    *,
    user,
    assignment_id: int,
    preferred: Side,
    certainty: int | None = None,
    note_left: str = "",
    note_right: str = "",
    now: datetime | None = None,
) -> tuple[HumanLabel, bool]:
    """Store the annotator's answer on their lease; returns (label, created).

    Idempotent: the same answer again returns the stored label with created=False. A lease that
    is someone else's raises LeaseNotYours; a different answer on an answered lease raises
    AlreadyAnswered; a lease past its expiry is accepted only while its pair still has room.
    """
    now = now or timezone.now()
    locks = connection.features.has_select_for_update
    with transaction.atomic(), connection.cursor() as cur:
        lease = _lease_locked(cur, assignment_id, user, locks)
        _require_campaign(user, lease.campaign_id)
        choice, confidence = to_canonical(preferred=preferred, a_shown_first=lease.a_first, certainty=certainty)
        if lease.status == SUBMITTED:
            label = HumanLabel.objects.get(pk=lease.label_id)
            if label.choice == choice and label.confidence == confidence:
                return label, False
            raise AlreadyAnswered("this pair is already answered; undo it to change the answer")
        if lease.status == SKIPPED:
            raise AlreadyAnswered("this pair was skipped")
        if lease.status == EXPIRED or _py_time(lease.expires_at) <= now:
            _expired_lease_check(cur, lease, user, now, locks)
        label = _label_insert(cur, lease, assignment_id=assignment_id, user=user, choice=choice,
                              confidence=confidence, note_left=note_left, note_right=note_right, now=now)
    return label, True


def assignment_skip(*, user, assignment_id: int, now: datetime | None = None) -> Assignment:
    """Give a leased pair back without answering; this annotator will not be offered it again."""
    now = now or timezone.now()
    with transaction.atomic():
        a = _locked_assignment(assignment_id, user)
        _require_campaign(user, a.item.campaign_id)
        if a.status == SUBMITTED:
            raise AlreadyAnswered("this pair is already answered; undo it first")
        if a.status != SKIPPED:
            a.status, a.finished_at = SKIPPED, now
            Assignment.objects.filter(pk=a.pk).update(status=SKIPPED, finished_at=now)
        return a


def answer_as_shown(label: HumanLabel, a_shown_first: bool) -> dict:
    """A stored label as the annotator gave it: left/right, certainty 1..4 and notes in screen order."""
    chose_a = label.choice == 0
    certainty = None
    if label.confidence is not None:
        certainty = (5 - label.confidence) if chose_a else (label.confidence - 5)
        certainty = certainty if certainty in CERTAINTY_LABELS else None
    left_is_a = bool(a_shown_first)
    return {
        "preferred": "left" if chose_a == left_is_a else "right",
        "certainty": certainty,
        "note_left": label.note_a if left_is_a else label.note_b,
        "note_right": label.note_b if left_is_a else label.note_a,
    }


def assignment_undo(*, user, campaign: Campaign, now: datetime | None = None) -> Assignment:
    """Take back the annotator's latest answer or skip in this campaign if it is younger than
    `campaign.undo_seconds`: the pair is leased to them again (an answer's label is deleted).

    The returned assignment carries `undone`: None after a skip, else the earlier answer as the
    annotator gave it ({"preferred": "left"|"right", "certainty": 1..4|None, "note_left",
    "note_right"}), so the page can show it again. A skipped pair may have gone to someone else
    meanwhile; then there is no room left and NothingToUndo says so.
    """
    now = now or timezone.now()
    with transaction.atomic():
        a = (
            Assignment.objects.select_for_update(of=("self",))
            .select_related("item__comparison", "label")
            .filter(annotator_id=user.pk, item__campaign=campaign, status__in=[SUBMITTED, SKIPPED],
                    finished_at__gte=now - timedelta(seconds=campaign.undo_seconds))
            .order_by("-finished_at", "-pk")
            .first()
        )
        if a is None:
            raise NothingToUndo(f"nothing to undo (answers and skips can be undone for {campaign.undo_seconds} s)")
        if a.status == SKIPPED:
            # A skip gave the pair back to the pool: lease it again only if it still has room
            # (same check as a late submit, under the item's row lock).
            with connection.cursor() as cur:
                if not _item_has_room(cur, a.item_id, campaign.overlap, user.pk, now,
                                      lock=connection.features.has_select_for_update):
                    raise NothingToUndo("the skipped pair has gone to other annotators meanwhile")
            a.status, a.finished_at = LEASED, None
            a.leased_at, a.expires_at = now, now + timedelta(seconds=campaign.lease_seconds)
            a.save(update_fields=["status", "finished_at", "leased_at", "expires_at"])
            a.undone = None
            return a
        label = a.label
        undone = answer_as_shown(label, a.a_shown_first) if label is not None else None
        a.status, a.label, a.finished_at = LEASED, None, None
        a.leased_at, a.expires_at = now, now + timedelta(seconds=campaign.lease_seconds)
        a.save(update_fields=["status", "label", "finished_at", "leased_at", "expires_at"])
        if label is not None:
            HumanLabel.objects.filter(pk=label.pk).delete()
        CampaignItem.objects.filter(pk=a.item_id).update(n_done=F("n_done") - 1)
        _refresh_flag(a.item_id, campaign.pk, a.item.comparison_id, a.item.is_gold, a.item.comparison.gold_choice)
        a.undone = undone
        return a


def uses_row_locks() -> bool:
    """True where the pick relies on row locks (PostgreSQL); False where transactions serialize it."""
    return connection.features.has_select_for_update_skip_locked
