"""Writes for hybrid labeling: the trust signals stored beside each AI label, and campaigns made
of the comparisons whose AI labels are least trustworthy ("route to humans what the AI gets wrong").

Trust signals are computed once, when a label is written (`trust_signals_update`, called by the AI
labeling job after each chunk) and by `trust_signals_backfill` for labels written before; adding
a config's label to a pair refreshes the other configs' agreement on that pair too.
"""
from __future__ import annotations

from typing import Iterable

from django.db import transaction

from ..judges import trust
from ..models import AILabel, AILabelTrust, Campaign, Dataset, LabelerConfig, RoutingPick
from ..selectors.trust import uncertainty_ranking
from .assignments import CampaignError, campaign_create

_FIELDS = ["margin", "consistent", "order_gap", "n_other_configs", "config_agreement", "sample_p_a", "sample_spread"]
_CHUNK = 2000


def trust_signals_update(*, comparison_ids: Iterable[int], samples: dict[tuple[int, int], list] | None = None) -> int:
    """(Re)compute the trust rows of every AI label of these comparisons; returns how many.

    `samples` maps (comparison id, config id) to the self-consistency samples' p(A) of a label just
    written; labels not in it keep the samples already stored.
    """
    ids = sorted(set(int(c) for c in comparison_ids))
    n = 0
    for start in range(0, len(ids), _CHUNK):
        n += _update_chunk(ids[start:start + _CHUNK], samples or {})
    return n


@transaction.atomic
def _update_chunk(ids: list[int], samples: dict) -> int:
    rows = list(AILabel.objects.filter(comparison_id__in=ids)
                .values_list("id", "comparison_id", "config_id", "p_a", "p_a_ab", "p_a_ba"))
    if not rows:
        return 0
    stored = dict(AILabelTrust.objects.filter(label_id__in=[r[0] for r in rows]).values_list("label_id", "sample_p_a"))
    by_label = {}
    for label_id, cid, config_id, *_ in rows:
        given = samples.get((cid, config_id))
        by_label[label_id] = [float(x) for x in (given if given is not None else stored.get(label_id) or [])]
    sig = trust.signals_for_rows(rows, by_label)
    objs = [
        AILabelTrust(label_id=label_id, margin=s.margin, consistent=s.consistent, order_gap=s.order_gap,
                     n_other_configs=s.n_other_configs, config_agreement=s.config_agreement,
                     sample_p_a=by_label[label_id], sample_spread=s.sample_spread)
        for label_id, s in sig.items()
    ]
    AILabelTrust.objects.bulk_create(objs, update_conflicts=True, unique_fields=["label"],
                                     update_fields=_FIELDS + ["updated_at"], batch_size=1000)
    return len(objs)


def trust_signals_backfill(*, config: LabelerConfig | None = None, missing_only: bool = False) -> int:
    """Trust rows for existing labels (of one config, or all); `missing_only` skips labels that have one."""
    labels = AILabel.objects.all()
    if config is not None:
        labels = labels.filter(config=config)
    if missing_only:
        labels = labels.filter(trust__isnull=True)
    return trust_signals_update(comparison_ids=labels.values_list("comparison_id", flat=True).distinct())


def _lookup(model, value, field: str):
    if isinstance(value, model):
        return value
    if value in (None, ""):
        raise CampaignError(f"{field}: required")
    text = str(value)
    found = model.objects.filter(name=text).first() or (
        model.objects.filter(pk=int(text)).first() if text.isdigit() else None)
    if found is None:
        raise CampaignError(f"{field}: no {model._meta.verbose_name} called {text!r}")
    return found


def routing_campaign_create(*, name: str, dataset, config, budget: int, criterion: str = "margin",
                            weights: trust.Weights | dict | None = None, annotators: Iterable = (),
                            overlap: int = 1, group=None, exclude_human_labeled: bool = True,
                            guidelines: str | None = None, created_by=None, lease_seconds: int = 600,
                            undo_seconds: int = 30, candidates: Iterable[int] | None = None) -> Campaign:
    """A campaign of the `budget` comparisons of `dataset` whose `config` labels are least
    trustworthy by `criterion`, each stored with the reason it was picked (RoutingPick).

    Pairs without a usable label of the config come first. `exclude_human_labeled` leaves out pairs
    that already have a human label; `candidates` limits the choice to those comparison ids. Raises
    CampaignError naming the field at fault.
    """
    try:
        budget = int(budget)
    except (TypeError, ValueError):
        raise CampaignError(f"budget: must be a whole number, got {budget!r}") from None
    if budget < 1:
        raise CampaignError(f"budget: must be at least 1, got {budget}")
    if criterion not in trust.CRITERIA:
        raise CampaignError(f"criterion: must be one of {sorted(trust.CRITERIA)}, got {criterion!r}")
    if isinstance(weights, dict):
        try:
            weights = trust.Weights(**{k: float(v) for k, v in weights.items()})
        except (TypeError, ValueError) as exc:
            raise CampaignError(f"weights: {exc}") from exc
    dataset = _lookup(Dataset, dataset, "dataset")
    config = _lookup(LabelerConfig, config, "config")
    if not AILabel.objects.filter(config=config, comparison__post__dataset=dataset).exists():
        raise CampaignError(f"config: {config.name!r} has labelled no comparison of dataset {dataset.name!r}")
    ranking = uncertainty_ranking(dataset=dataset, config=config, criterion=criterion, weights=weights,
                                  exclude_human_labeled=exclude_human_labeled, comparison_ids=candidates)
    if budget > len(ranking):
        raise CampaignError(f"budget: {budget} pairs asked for, but dataset {dataset.name!r} has only "
                            f"{len(ranking)} eligible comparisons")
    picks = ranking[:budget]
    with transaction.atomic():
        campaign = campaign_create(
            name=name, dataset=dataset, overlap=overlap, annotators=annotators,
            comparisons=[p.comparison_id for p in picks], gold_share=0.0, guidelines=guidelines,
            created_by=created_by, group=group, lease_seconds=lease_seconds, undo_seconds=undo_seconds,
        )
        RoutingPick.objects.bulk_create([
            RoutingPick(campaign=campaign, comparison_id=p.comparison_id, config=config, criterion=criterion,
                        rank=rank, risk=p.risk, reason=p.reason)
            for rank, p in enumerate(picks, start=1)
        ])
    return campaign
