"""Reads of the labeling app's data."""
from __future__ import annotations

from django.db.models import Count, OuterRef, QuerySet, Subquery, IntegerField, Value
from django.db.models.functions import Coalesce

from ..models import Comparison, Dataset, HumanLabel, Summary


def _count_by_dataset(model, dataset_path: str) -> Subquery:
    return Coalesce(
        Subquery(
            model.objects.filter(**{dataset_path: OuterRef("pk")})
            .order_by()
            .values(dataset_path)
            .annotate(n=Count("pk"))
            .values("n"),
            output_field=IntegerField(),
        ),
        Value(0),
    )


def dataset_list_with_counts() -> QuerySet[Dataset]:
    """Datasets with counts of posts, summaries, comparisons and human/AI labels (one query)."""
    from ..models import AILabel, Post

    return Dataset.objects.annotate(
        n_posts=_count_by_dataset(Post, "dataset"),
        n_summaries=_count_by_dataset(Summary, "post__dataset"),
        n_comparisons=_count_by_dataset(Comparison, "post__dataset"),
        n_human_labels=_count_by_dataset(HumanLabel, "comparison__post__dataset"),
        n_ai_labels=_count_by_dataset(AILabel, "comparison__post__dataset"),
    ).order_by("name")


def dataset_first(*, order_by: str = "pk") -> Dataset | None:
    """The first dataset in this order (a form's initial choice); None when there is none."""
    return Dataset.objects.order_by(order_by).first()
