"""Unit tests of the rating queue service: mapping, campaigns, leases, submit, skip, undo, flags."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from labeling.guidelines import DEFAULT_GUIDELINES
from labeling.models import Assignment, Campaign, CampaignItem, Comparison, HumanLabel
from labeling.selectors.rating import agreement_report, campaign_list_rateable, campaign_progress
from labeling.services import assignments
from labeling.services.assignments import (
    AlreadyAnswered, CampaignError, LeaseExpired, LeaseNotYours, NothingToUndo, campaign_create,
    label_submit, assignment_next, assignment_skip, to_canonical, assignment_undo,
)

from .conftest import make_dataset

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "preferred, a_first, certainty, expected",
    [
        ("left", True, None, (0, None)),
        ("left", False, None, (1, None)),
        ("right", True, 4, (1, 9)),
        ("right", False, 4, (0, 1)),
        ("left", True, 1, (0, 4)),
        ("left", False, 1, (1, 6)),
        ("right", False, 3, (0, 2)),
    ],
)
def test_to_canonical_maps_screen_side_and_certainty_onto_openai_scale(preferred, a_first, certainty, expected):
    assert to_canonical(preferred=preferred, a_shown_first=a_first, certainty=certainty) == expected


@pytest.mark.parametrize("kwargs", [{"preferred": "up", "certainty": None}, {"preferred": "left", "certainty": 5}])
def test_to_canonical_rejects_bad_input(kwargs):
    with pytest.raises(ValueError):
        to_canonical(a_shown_first=True, **kwargs)


def test_campaign_create_defaults_and_usernames(dataset, users):
    c = campaign_create(name="c1", dataset=dataset.name, annotators=[users[0].username, users[1]])
    assert c.overlap == 1 and c.guidelines == DEFAULT_GUIDELINES
    assert set(c.annotators.all()) == {users[0], users[1]}
    assert c.items.count() == Comparison.objects.filter(post__dataset=dataset).count() == 6
    assert "coherence" in c.guidelines.lower() and "coverage" in c.guidelines.lower()


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"annotators": ["nobody"]}, "annotators"),
        ({"overlap": 0}, "overlap"),
        ({"gold_share": 1.5}, "gold_share"),
        ({"dataset": "missing"}, "dataset"),
        ({"gold_share": 0.2}, "gold_share"),  # the dataset has no gold pairs
    ],
)
def test_campaign_create_bad_input_names_the_field_and_writes_nothing(dataset, kwargs, field):
    args = {"name": "bad", "dataset": dataset, **kwargs}
    with pytest.raises(CampaignError, match=field):
        campaign_create(**args)
    assert not Campaign.objects.filter(name="bad").exists()


def test_campaign_rejects_comparisons_of_another_dataset(dataset):
    other = make_dataset("other", n=1)
    with pytest.raises(CampaignError, match="not in dataset"):
        campaign_create(name="x", dataset=dataset, comparisons=list(Comparison.objects.filter(post__dataset=other)))


def test_gold_share_mixes_in_gold_pairs():
    ds = make_dataset("golden", n=8, n_gold=5)
    c = campaign_create(name="g", dataset=ds, gold_share=0.2, seed=1)
    gold = c.items.filter(is_gold=True)
    assert c.items.count() == 10 and gold.count() == 2  # 0.2 = 2 / (8 + 2)
    assert all(i.comparison.gold_choice is not None for i in gold)
    assert not c.items.filter(is_gold=False, comparison__gold_choice__isnull=False).exists()


def test_next_is_idempotent_and_submit_maps_back_to_canonical(dataset, users):
    c = campaign_create(name="c", dataset=dataset, annotators=users)
    a = assignment_next(campaign=c, user=users[0])
    assert assignment_next(campaign=c, user=users[0]).pk == a.pk  # a retry returns the same lease
    label, created = label_submit(user=users[0], assignment_id=a.pk, preferred="left", certainty=4, note_left="good")
    assert created
    assert label.choice == (0 if a.a_shown_first else 1)
    assert label.confidence == (1 if a.a_shown_first else 9)
    assert label.a_shown_first == a.a_shown_first
    assert (label.note_a if a.a_shown_first else label.note_b) == "good"
    assert label.campaign == c and label.time_taken_s >= 0
    a.refresh_from_db()
    assert a.status == "submitted" and a.label_id == label.pk
    assert CampaignItem.objects.get(pk=a.item_id).n_done == 1


def test_randomization_records_both_orders(dataset, users):
    c = campaign_create(name="c", dataset=make_dataset("many", n=40), annotators=users)
    seen = set()
    for _ in range(40):
        a = assignment_next(campaign=c, user=users[0])
        seen.add(a.a_shown_first)
        label_submit(user=users[0], assignment_id=a.pk, preferred="left")
    assert seen == {True, False}  # chance of failing: 2 * 0.5**40


def test_double_submit_stores_one_label_and_other_answer_refused(dataset, users):
    c = campaign_create(name="c", dataset=dataset, annotators=users)
    a = assignment_next(campaign=c, user=users[0])
    first, _ = label_submit(user=users[0], assignment_id=a.pk, preferred="right", certainty=2)
    again, created = label_submit(user=users[0], assignment_id=a.pk, preferred="right", certainty=2)
    assert again.pk == first.pk and not created
    with pytest.raises(AlreadyAnswered):
        label_submit(user=users[0], assignment_id=a.pk, preferred="left")
    assert HumanLabel.objects.count() == 1


def test_submit_on_someone_elses_lease_is_refused(dataset, users):
    c = campaign_create(name="c", dataset=dataset, annotators=users)
    a = assignment_next(campaign=c, user=users[0])
    with pytest.raises(LeaseNotYours):
        label_submit(user=users[1], assignment_id=a.pk, preferred="left")
    with pytest.raises(LeaseNotYours):
        assignment_skip(user=users[1], assignment_id=a.pk)
    assert HumanLabel.objects.count() == 0


def test_overlap_is_respected_and_no_annotator_sees_a_pair_twice(users):
    ds = make_dataset("ov", n=3)
    c = campaign_create(name="c", dataset=ds, overlap=2, annotators=users)
    per_user = {}
    for u in users:
        per_user[u.pk] = []
        while (a := assignment_next(campaign=c, user=u)) is not None:
            per_user[u.pk].append(a.item_id)
            label_submit(user=u, assignment_id=a.pk, preferred="left")
    assert all(len(items) == len(set(items)) for items in per_user.values())
    assert list(c.items.values_list("n_done", flat=True)) == [2, 2, 2]
    assert HumanLabel.objects.count() == 6
    assert sum(len(v) for v in per_user.values()) == 6


def test_expired_lease_returns_pair_to_pool_and_late_submit_is_refused(users):
    c = campaign_create(name="c", dataset=make_dataset("one", n=1), annotators=users, lease_seconds=60)
    now = timezone.now()
    a = assignment_next(campaign=c, user=users[0], now=now)
    assert assignment_next(campaign=c, user=users[1], now=now) is None  # leased out
    later = now + timedelta(seconds=61)
    b = assignment_next(campaign=c, user=users[1], now=later)
    assert b is not None and b.item_id == a.item_id
    with pytest.raises(LeaseExpired):
        label_submit(user=users[0], assignment_id=a.pk, preferred="left", now=later)
    label_submit(user=users[1], assignment_id=b.pk, preferred="left", now=later)
    assert HumanLabel.objects.count() == 1
    assert assignment_next(campaign=c, user=users[0], now=later) is None  # saw it once; not again


def test_late_submit_accepted_while_pair_still_has_room(users):
    c = campaign_create(name="c", dataset=make_dataset("one", n=1), annotators=users, lease_seconds=60)
    now = timezone.now()
    a = assignment_next(campaign=c, user=users[0], now=now)
    assert assignments.assignments_expire(campaign=c, now=now + timedelta(seconds=61)) == 1
    label, created = label_submit(user=users[0], assignment_id=a.pk, preferred="left", now=now + timedelta(seconds=90))
    assert created and c.items.get().n_done == 1


def test_skip_returns_pair_to_others_but_not_to_the_skipper(users):
    c = campaign_create(name="c", dataset=make_dataset("one", n=1), annotators=users)
    a = assignment_next(campaign=c, user=users[0])
    assignment_skip(user=users[0], assignment_id=a.pk)
    assert assignment_next(campaign=c, user=users[0]) is None
    b = assignment_next(campaign=c, user=users[1])
    assert b.item_id == a.item_id
    assert campaign_progress(campaign=c, user=users[0]).my_skipped == 1


def test_undo_within_window_then_not_after(dataset, users):
    c = campaign_create(name="c", dataset=dataset, annotators=users, undo_seconds=30)
    now = timezone.now()
    a = assignment_next(campaign=c, user=users[0], now=now)
    label_submit(user=users[0], assignment_id=a.pk, preferred="left", now=now)
    back = assignment_undo(user=users[0], campaign=c, now=now + timedelta(seconds=5))
    assert back.pk == a.pk and back.status == "leased"
    assert HumanLabel.objects.count() == 0 and c.items.get(pk=a.item_id).n_done == 0
    # the undone pair is the current one again; answer it differently
    assert assignment_next(campaign=c, user=users[0], now=now + timedelta(seconds=6)).pk == a.pk
    label, _ = label_submit(user=users[0], assignment_id=a.pk, preferred="right", now=now + timedelta(seconds=6))
    assert label.choice == (1 if a.a_shown_first else 0)
    with pytest.raises(NothingToUndo):
        assignment_undo(user=users[0], campaign=c, now=now + timedelta(seconds=40))


@pytest.mark.parametrize("preferred, certainty", [("left", 3), ("right", 1), ("right", None)])
def test_undo_returns_the_earlier_answer_as_shown(dataset, users, preferred, certainty):
    c = campaign_create(name="c", dataset=dataset, annotators=users, undo_seconds=30)
    a = assignment_next(campaign=c, user=users[0])
    label_submit(user=users[0], assignment_id=a.pk, preferred=preferred, certainty=certainty,
                 note_left="left note", note_right="")
    back = assignment_undo(user=users[0], campaign=c)
    assert back.undone == {"preferred": preferred, "certainty": certainty, "note_left": "left note", "note_right": ""}


def test_undo_after_skip_undoes_the_skip_not_the_answer_before(dataset, users):
    c = campaign_create(name="c", dataset=dataset, annotators=users, undo_seconds=30)
    now = timezone.now()
    first = assignment_next(campaign=c, user=users[0], now=now)
    label_submit(user=users[0], assignment_id=first.pk, preferred="left", now=now)
    second = assignment_next(campaign=c, user=users[0], now=now)
    assignment_skip(user=users[0], assignment_id=second.pk, now=now + timedelta(seconds=1))
    back = assignment_undo(user=users[0], campaign=c, now=now + timedelta(seconds=2))
    assert back.pk == second.pk and back.undone is None
    assert Assignment.objects.get(pk=second.pk).status == "leased"
    assert HumanLabel.objects.filter(assignment__pk=first.pk).exists()  # the answer before stays
    assert assignment_next(campaign=c, user=users[0], now=now + timedelta(seconds=3)).pk == second.pk
    # a second undo then takes back the answer
    assert assignment_undo(user=users[0], campaign=c, now=now + timedelta(seconds=4)).pk == first.pk


def test_undo_of_a_skip_refused_when_the_pair_went_to_others(users):
    ds = make_dataset("one-pair", n=1)
    c = campaign_create(name="c", dataset=ds, annotators=users, overlap=1, undo_seconds=30)
    a = assignment_next(campaign=c, user=users[0])
    assignment_skip(user=users[0], assignment_id=a.pk)
    b = assignment_next(campaign=c, user=users[1])
    assert b.item_id == a.item_id
    with pytest.raises(NothingToUndo, match="other annotators"):
        assignment_undo(user=users[0], campaign=c)
    assert Assignment.objects.get(pk=a.pk).status == "skipped"


def test_gold_miss_and_disagreement_flag_items(users):
    ds = make_dataset("flags", n=1, n_gold=1)
    gold_cmp = Comparison.objects.get(post__dataset=ds, gold_choice__isnull=False)
    c = campaign_create(name="c", dataset=ds, overlap=2, annotators=users, gold_share=0.5)
    answers = {0: "A", 1: "B"}
    for u, want in ((users[0], 0), (users[1], 1)):
        while (a := assignment_next(campaign=c, user=u)) is not None:
            side = "left" if (want == 0) == a.a_shown_first else "right"
            label_submit(user=u, assignment_id=a.pk, preferred=side)
    assert answers  # users[0] always answers A, users[1] always B
    gold_item = c.items.get(comparison=gold_cmp)
    plain_item = c.items.exclude(comparison=gold_cmp).get()
    assert gold_item.flagged and gold_item.is_gold  # users[1] missed the gold answer A
    assert plain_item.flagged  # 1 vs 1 is below two-thirds agreement


def test_unanimous_plain_item_is_not_flagged(users):
    c = campaign_create(name="c", dataset=make_dataset("agree", n=1), overlap=3, annotators=users)
    for u in users[:3]:
        a = assignment_next(campaign=c, user=u)
        label_submit(user=u, assignment_id=a.pk, preferred="left" if a.a_shown_first else "right")
    assert not c.items.get().flagged


def test_agreement_report_leave_one_out_majority_and_gold():
    labels = [
        ("ann", 1, 0), ("bob", 1, 0), ("cy", 1, 1), ("dee", 1, 0),  # cy against a 3-0 majority of the others
        ("ann", 2, 1), ("bob", 2, 0),  # each disagrees with the single other answer
        ("ann", 3, 1),  # alone: no majority to agree with; a gold pair whose answer is 0
        ("cy", 4, 0), ("dee", 4, 1), ("bob", 4, 1),
    ]
    stats = agreement_report(labels, gold={3: 0})
    assert (stats["ann"].agree, stats["ann"].agree_n) == (1, 2)
    assert (stats["bob"].agree, stats["bob"].agree_n) == (1, 2)  # item 4: others tie 1-1 -> left out
    assert (stats["cy"].agree, stats["cy"].agree_n) == (0, 2)  # item 4: the others both say 1
    assert (stats["dee"].agree, stats["dee"].agree_n) == (1, 1)
    assert (stats["ann"].gold_correct, stats["ann"].gold_n) == (0, 1) and stats["ann"].gold_accuracy == 0.0
    assert stats["bob"].gold_accuracy is None and stats["bob"].n_labels == 3


def test_allowed_campaigns_by_list_or_group(dataset, users):
    from django.contrib.auth.models import Group

    g = Group.objects.create(name="raters")
    users[2].groups.add(g)
    c = campaign_create(name="c", dataset=dataset, annotators=[users[0]], group=g)
    assert set(campaign_list_rateable(users[0])) == {c}
    assert set(campaign_list_rateable(users[2])) == {c}
    assert not campaign_list_rateable(users[1]).exists()
    Campaign.objects.filter(pk=c.pk).update(is_active=False)
    assert not campaign_list_rateable(users[0]).exists()


def test_create_campaign_command(dataset, users, capsys):
    call_command("create_campaign", "--name", "cmd", "--dataset", dataset.name, "--overlap", "2",
                 "--annotators", f"{users[0].username},{users[1].username}", "--limit", "4")
    c = Campaign.objects.get(name="cmd")
    assert c.overlap == 2 and c.items.count() == 4 and c.annotators.count() == 2
    assert "4 pairs" in capsys.readouterr().out
    with pytest.raises(CommandError, match="unknown username"):
        call_command("create_campaign", "--name", "cmd2", "--dataset", dataset.name, "--annotators", "ghost")


def test_lease_write_rechecks_room_and_history_in_its_own_statement(users):
    """The guard behind the PostgreSQL pick: even when handed a full pair (as a stale pick
    snapshot could), the lease INSERT writes nothing; it writes once the pair has room again."""
    from django.db import connection

    from labeling.services.assignments import _lease_if_room

    c = campaign_create(name="c", dataset=make_dataset("guard", n=1), overlap=1, annotators=users, lease_seconds=60)
    now = timezone.now()
    taken = assignment_next(campaign=c, user=users[0], now=now)
    with connection.cursor() as cur:
        assert _lease_if_room(cur, item_id=taken.item_id, user_id=users[1].pk, campaign=c, now=now) is None
        later = now + timedelta(seconds=61)  # users[0]'s lease has expired: room again, but not for users[0]
        assert _lease_if_room(cur, item_id=taken.item_id, user_id=users[0].pk, campaign=c, now=later) is None
        assert _lease_if_room(cur, item_id=taken.item_id, user_id=users[1].pk, campaign=c, now=later) is not None
    assert Assignment.objects.filter(item_id=taken.item_id).count() == 2
