"""Fixtures of the rating tests: a small dataset of real-looking comparisons and campaign helpers."""
from __future__ import annotations

import pytest

from labeling.models import Comparison, Dataset, Policy, Post, Summary


def make_dataset(name: str = "rating-test", n: int = 6, n_gold: int = 0, summary_text: str | None = None) -> Dataset:
    """A dataset with `n` plain comparisons and `n_gold` comparisons whose gold answer is A (0)."""
    ds = Dataset.objects.create(name=name, source="tests/rating")
    p1, _ = Policy.objects.get_or_create(name="policy-one")
    p2, _ = Policy.objects.get_or_create(name="policy-two")
    for i in range(n + n_gold):
        post = Post.objects.create(
            dataset=ds, external_id=f"{name}-{i}", subreddit="test", title=f"Post {i} title",
            text=f"Body of post {i}.\n\nSecond paragraph of post {i}.",
        )
        a = Summary.objects.create(post=post, policy=p1, text=summary_text or f"first summary of post {i}")
        b = Summary.objects.create(post=post, policy=p2, text=f"second summary of post {i}")
        lo, hi = sorted([a, b], key=lambda s: s.pk)
        Comparison.objects.create(post=post, summary_a=lo, summary_b=hi, gold_choice=0 if i >= n else None)
    return ds


@pytest.fixture
def dataset(db):
    return make_dataset()


@pytest.fixture
def users(django_user_model):
    return [django_user_model.objects.create_user(f"rater{i}", password="x-pass-123") for i in range(4)]


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """Tests create many users; the production hasher would spend most of the run hashing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
