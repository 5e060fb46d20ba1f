"""Filling the stored facts of comparisons (policies, lengths, overlap counts; see
`labeling.models.Comparison`) where they are still NULL.

Every ORM path fills them on write (`Comparison.save`, `Comparison.objects.bulk_create`, edits of
a summary or post); this is the safety net for rows written around the ORM (raw SQL, COPY), which
benchmarks and bulk loaders call after loading and a dashboard worker may call before a refresh.
A partial index on the missing rows makes the call cheap when there is nothing to fill.
"""
from __future__ import annotations

from collections.abc import Iterable

from ..models import FACTS_MISSING, Comparison


def comparison_facts_fill(*, comparison_ids: Iterable[int] | None = None, batch_size: int = 5000) -> int:
    """Compute and store the facts of the comparisons (all, or those in `comparison_ids`) whose
    facts are NULL, `batch_size` rows per query and transaction; returns how many were filled."""
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size!r}")
    qs = Comparison.objects.filter(FACTS_MISSING)
    if comparison_ids is not None:
        ids = sorted({int(pk) for pk in comparison_ids})
        if not ids:
            return 0
        qs = qs.filter(pk__in=ids)
    return qs.facts_recompute(batch_size=int(batch_size))
