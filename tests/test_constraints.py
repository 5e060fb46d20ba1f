"""The data model's invariants are enforced by the database itself (raw creates, no validation)."""
from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from labeling.models import Comparison, Dataset, HumanLabel, Policy, Post, Summary

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair():
    ds = Dataset.objects.create(name="d")
    post = Post.objects.create(dataset=ds, external_id="p", title="t", text="post text")
    policy = Policy.objects.create(name="pol")
    a = Summary.objects.create(post=post, policy=policy, text="one")
    b = Summary.objects.create(post=post, policy=policy, text="two")
    return post, policy, a, b


def test_comparison_of_a_summary_with_itself_is_refused(pair):
    post, _, a, _ = pair
    with pytest.raises(IntegrityError), transaction.atomic():
        Comparison.objects.create(post=post, summary_a=a, summary_b=a)
    assert not Comparison.objects.exists()


def test_comparison_must_be_in_canonical_order_and_unique(pair):
    post, _, a, b = pair
    lo, hi = sorted([a, b], key=lambda s: s.pk)
    with pytest.raises(IntegrityError), transaction.atomic():
        Comparison.objects.create(post=post, summary_a=hi, summary_b=lo)
    Comparison.objects.create(post=post, summary_a=lo, summary_b=hi)
    with pytest.raises(IntegrityError), transaction.atomic():
        Comparison.objects.create(post=post, summary_a=lo, summary_b=hi)
    with pytest.raises(IntegrityError), transaction.atomic():
        Comparison.objects.filter(summary_a=lo).update(gold_choice=2)


def test_duplicate_summary_text_per_post_and_policy_is_refused(pair):
    post, policy, a, _ = pair
    with pytest.raises(IntegrityError), transaction.atomic():
        Summary.objects.create(post=post, policy=policy, text=a.text)
    other = Policy.objects.create(name="other")
    Summary.objects.create(post=post, policy=other, text=a.text)  # another policy may write the same text
    with pytest.raises(IntegrityError), transaction.atomic():
        Summary.objects.bulk_create([Summary(post=post, policy=policy, text="", text_sha256="x")])


def test_duplicate_external_post_id_is_refused(pair):
    post, *_ = pair
    with pytest.raises(IntegrityError), transaction.atomic():
        Post.objects.create(dataset=post.dataset, external_id=post.external_id, text="other")


@pytest.mark.parametrize("field,value", [("choice", 2), ("choice", -1), ("confidence", 10), ("confidence", 0)])
def test_label_choice_and_confidence_ranges(pair, field, value):
    post, _, a, b = pair
    lo, hi = sorted([a, b], key=lambda s: s.pk)
    comparison = Comparison.objects.create(post=post, summary_a=lo, summary_b=hi)
    good = {"comparison": comparison, "worker_id": "w", "choice": 1, "confidence": 9}
    HumanLabel.objects.create(**good)
    with pytest.raises(IntegrityError), transaction.atomic():
        HumanLabel.objects.create(**{**good, field: value})
    assert HumanLabel.objects.count() == 1


def test_label_needs_an_annotator_or_worker_and_import_keys_are_unique(pair):
    post, _, a, b = pair
    lo, hi = sorted([a, b], key=lambda s: s.pk)
    comparison = Comparison.objects.create(post=post, summary_a=lo, summary_b=hi)
    with pytest.raises(IntegrityError), transaction.atomic():
        HumanLabel.objects.create(comparison=comparison, choice=0)
    HumanLabel.objects.create(comparison=comparison, worker_id="w", choice=0, import_key="d:1")
    with pytest.raises(IntegrityError), transaction.atomic():
        HumanLabel.objects.create(comparison=comparison, worker_id="v", choice=1, import_key="d:1")
