"""Writes of datasets from the admin: archiving, and the rule for when one may be deleted.

Deleting a dataset cascades to its posts, summaries, comparisons and labels. A request that
deletes 25,000 labels times out (the admin's confirmation page alone lists every related row), and
human labels are work that cannot be redone, so the admin refuses to delete a dataset that holds
human labels or more than `settings.DATASET_DELETE_MAX_ROWS` rows, and offers archiving instead.
"""
from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..models import AILabel, Comparison, Dataset, HumanLabel, Post, Summary


def dataset_delete_refusal(dataset: Dataset) -> str:
    """Why `dataset` may not be deleted from the admin ("" when it may), from a few counted queries."""
    humans = HumanLabel.objects.filter(comparison__post__dataset=dataset).count()
    if humans:
        return (f"Dataset {dataset.name!r} holds {humans:,} human labels: deleting it would destroy annotators' "
                "work. Archive it instead (action \"Archive the selected datasets\").")
    rows = {
        "posts": Post.objects.filter(dataset=dataset).count(),
        "summaries": Summary.objects.filter(post__dataset=dataset).count(),
        "comparisons": Comparison.objects.filter(post__dataset=dataset).count(),
        "AI labels": AILabel.objects.filter(comparison__post__dataset=dataset).count(),
    }
    total = sum(rows.values())
    if total > settings.DATASET_DELETE_MAX_ROWS:
        what = ", ".join(f"{n:,} {k}" for k, n in rows.items() if n)
        return (f"Dataset {dataset.name!r} holds {total:,} rows ({what}), more than the admin deletes in one "
                f"request ({settings.DATASET_DELETE_MAX_ROWS:,}, settings.DATASET_DELETE_MAX_ROWS). Archive it "
                "instead, or delete it from the shell (manage.py shell) where no request times out.")
    return ""


@transaction.atomic
def datasets_archive(*, dataset_ids: list[int], archived: bool = True) -> int:
    """Archive (or restore) datasets: kept with every label, marked as out of new work. Returns the count."""
    return Dataset.objects.filter(pk__in=dataset_ids).update(archived_at=timezone.now() if archived else None)
