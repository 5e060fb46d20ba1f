"""Reads for hybrid labeling: trust signals of a config's labels, the ranking routing picks from,
the picks of a routed campaign, and the merged "hybrid" label set (human label where there is one,
the AI soft label elsewhere, with the provenance of each pair).

Reads never write: a label without a stored trust row (written before the signals existed and not
backfilled yet) has its signals computed on the fly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from django.db.models import QuerySet

from ..judges import trust
from ..models import AILabel, AILabelTrust, Campaign, Comparison, Dataset, HumanLabel, LabelerConfig, RoutingPick


def config_signals(*, config: LabelerConfig, comparison_ids=None, dataset: Dataset | None = None
                   ) -> dict[int, tuple[AILabel, trust.TrustSignals]]:
    """comparison id -> (label, signals) for the labels of `config` (on a dataset or given comparisons)."""
    labels = AILabel.objects.filter(config=config)
    if dataset is not None:
        labels = labels.filter(comparison__post__dataset=dataset)
    if comparison_ids is not None:
        labels = labels.filter(comparison_id__in=list(comparison_ids))
    labels = list(labels.only("id", "comparison_id", "config_id", "p_a", "p_a_ab", "p_a_ba", "error"))
    stored = {t.label_id: t for t in AILabelTrust.objects.filter(label_id__in=[lb.pk for lb in labels])}
    missing = [lb.comparison_id for lb in labels if lb.pk not in stored]
    computed: dict[int, trust.TrustSignals] = {}
    if missing:
        rows = AILabel.objects.filter(comparison_id__in=missing).values_list(
            "id", "comparison_id", "config_id", "p_a", "p_a_ab", "p_a_ba")
        computed = trust.signals_for_rows(rows)
    out = {}
    for lb in labels:
        t = stored.get(lb.pk)
        if t is not None:
            s = trust.TrustSignals(p_a=lb.p_a, margin=t.margin, consistent=t.consistent, order_gap=t.order_gap,
                                   n_other_configs=t.n_other_configs, config_agreement=t.config_agreement,
                                   sample_spread=t.sample_spread)
        else:
            s = computed[lb.pk]
        out[lb.comparison_id] = (lb, s)
    return out


@dataclass(frozen=True)
class RankedPair:
    comparison_id: int
    risk: float | None  # None: no usable AI label (ranked first)
    reason: str
    p_a: float | None


def uncertainty_ranking(*, dataset: Dataset, config: LabelerConfig, criterion: str = "margin",
                        weights: trust.Weights | None = None, exclude_human_labeled: bool = False,
                        comparison_ids=None) -> list[RankedPair]:
    """The dataset's comparisons (or those of `comparison_ids`) from least to most trustworthy AI
    label of `config` (ties by id)."""
    comps = Comparison.objects.filter(post__dataset=dataset)
    if comparison_ids is not None:
        comps = comps.filter(pk__in=list(comparison_ids))
    if exclude_human_labeled:
        comps = comps.exclude(pk__in=HumanLabel.objects.values("comparison_id"))
    ids = list(comps.order_by("pk").values_list("pk", flat=True))
    sig = config_signals(config=config, dataset=dataset)
    ranked = []
    for cid in ids:
        label, s = sig.get(cid, (None, None))
        r = trust.risk(s, criterion, weights)
        if label is None:
            why = f"no label of {config.name}"
        else:
            why = trust.reason(s, criterion, weights, error=label.error[:200])
        ranked.append(RankedPair(cid, None if math.isinf(r) else r, why, s.p_a if s else None))
    ranked.sort(key=lambda p: (-(math.inf if p.risk is None else p.risk), p.comparison_id))
    return ranked


def routing_picks(*, campaign: Campaign) -> QuerySet[RoutingPick]:
    """Why each pair of a routed campaign was picked (staff only)."""
    return RoutingPick.objects.filter(campaign=campaign).select_related("config", "comparison").order_by("rank")


def routed_campaigns() -> QuerySet[Campaign]:
    return (Campaign.objects.filter(routing_picks__isnull=False).distinct()
            .select_related("dataset").order_by("-created_at"))


# --- the hybrid label source ----------------------------------------------------------------------


@dataclass
class HybridLabel:
    comparison_id: int
    p_a: float
    source: str  # "human" or "ai"
    n_human: int = 0
    human_label_ids: list[int] = field(default_factory=list)
    ai_label_id: int | None = None


def hybrid_labels(*, dataset: Dataset, config: LabelerConfig, human_comparison_ids=None) -> list[HybridLabel]:
    """One label per comparison of `dataset`, in comparison id order: the human vote where there
    are human labels (p(A) = share of humans preferring A), else `config`'s AI soft label; pairs
    with neither are left out.  `human_comparison_ids` limits the human side to those pairs (a
    routed campaign's), so a hybrid set at a given human budget can be built on fully labelled data.
    """
    humans = HumanLabel.objects.filter(comparison__post__dataset=dataset)
    if human_comparison_ids is not None:
        humans = humans.filter(comparison_id__in=list(human_comparison_ids))
    votes: dict[int, list] = {}
    for label_id, cid, choice in humans.order_by("pk").values_list("id", "comparison_id", "choice"):
        votes.setdefault(cid, []).append((label_id, choice))
    out = {cid: HybridLabel(cid, sum(1 - c for _, c in v) / len(v), "human", len(v), [i for i, _ in v])
           for cid, v in votes.items()}
    ai = (AILabel.objects.filter(config=config, comparison__post__dataset=dataset, p_a__isnull=False)
          .values_list("id", "comparison_id", "p_a"))
    for label_id, cid, p_a in ai:
        if cid not in out:
            out[cid] = HybridLabel(cid, float(p_a), "ai", ai_label_id=label_id)
    return [out[k] for k in sorted(out)]


def campaign_comparison_ids(campaign: Campaign) -> list[int]:
    return list(campaign.items.values_list("comparison_id", flat=True))
