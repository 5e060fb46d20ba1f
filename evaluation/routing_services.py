"""Writes of the Routing dashboard: a routing report launches, through the training services, three
reward-model runs at one human budget -- hybrid labels (humans on the training pairs routed from AI
uncertainty, the AI soft labels elsewhere), human labels only, AI labels only -- all evaluated on the
same held-out human labels (the split by post of `training.selectors`)."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from labeling.judges import trust
from labeling.models import Campaign, Comparison, Dataset, HumanLabel, LabelerConfig
from labeling.services.assignments import CampaignError
from labeling.services.routing import routing_campaign_create
from training import params as run_params
from training.models import LabelSource, RunKind
from training.selectors import post_is_held_out
from training.services import training_run_create

from .models import RoutingReport


def _get(model, value, field: str):
    if isinstance(value, model):
        return value
    text = str(value or "")
    found = model.objects.filter(name=text).first() or (
        model.objects.filter(pk=int(text)).first() if text.isdigit() else None)
    if found is None:
        raise ValidationError({field: f"no {model._meta.verbose_name} {text!r}"})
    return found


@transaction.atomic
def routing_report_create(*, dataset, config, budget: float, criterion: str = "margin",
                          weights: trust.Weights | None = None, base: str = "", hyperparameters: dict | None = None,
                          created_by=None, enqueue: bool = True) -> RoutingReport:
    """Route `budget` (a share, 0 < budget < 1) of the dataset's human-labelled training pairs to
    humans by `criterion`, and queue three reward-model runs with the same base and hyperparameters.

    Raises ValidationError naming the field at fault; nothing is written then.
    """
    try:
        budget = float(budget)
    except (TypeError, ValueError):
        raise ValidationError({"budget": f"must be a number between 0 and 1, got {budget!r}"}) from None
    if not 0.0 < budget < 1.0:
        raise ValidationError({"budget": f"must be a share strictly between 0 and 1 (e.g. 0.3), got {budget}"})
    if criterion not in trust.CRITERIA:
        raise ValidationError({"criterion": f"must be one of {sorted(trust.CRITERIA)}, got {criterion!r}"})
    dataset = _get(Dataset, dataset, "dataset")
    config = _get(LabelerConfig, config, "config")
    hp = dict(hyperparameters or {})
    if "hybrid_campaign" in hp:
        raise ValidationError({"hyperparameters": "hybrid_campaign is set by the report itself"})
    try:
        _, data = run_params.split_params(RunKind.REWARD, hp)
    except ValueError as exc:
        raise ValidationError({"hyperparameters": str(exc)}) from exc
    labelled = (Comparison.objects.filter(post__dataset=dataset, pk__in=HumanLabel.objects.values("comparison_id"))
                .values_list("pk", "post__content_sha256"))
    train_ids = [pk for pk, digest in labelled if not post_is_held_out(digest, data.eval_fraction)]
    if not train_ids:
        raise ValidationError({"dataset": f"{dataset.name}: no human-labelled comparisons on the training posts"})
    k = max(1, round(budget * len(train_ids)))
    n = RoutingReport.objects.count() + 1
    short = config.name[:100]  # campaign and run names hold 200 characters
    name = f"routing report {n}: {short} {budget:.0%} by {criterion}"
    while Campaign.objects.filter(name=name).exists():
        n += 1
        name = f"routing report {n}: {short} {budget:.0%} by {criterion}"
    try:
        campaign = routing_campaign_create(name=name, dataset=dataset, config=config, budget=k, criterion=criterion,
                                           weights=weights, exclude_human_labeled=False, candidates=train_ids,
                                           created_by=created_by)
    except CampaignError as exc:
        raise ValidationError(str(exc)) from exc
    campaign.is_active = False  # the human labels exist already: nobody is asked to rate these
    campaign.save(update_fields=["is_active"])
    common = dict(kind=RunKind.REWARD, dataset=dataset, created_by=created_by, enqueue=enqueue)
    if base:  # an artifact name or artifact:<id>; a path or Hugging Face id goes as a checkpoint
        common["base_checkpoint" if "/" in base else "base_artifact"] = base
    runs = {}
    for key, source, extra in (("hybrid", LabelSource.HYBRID, {"hybrid_campaign": name}),
                               ("human", LabelSource.HUMAN, {}), ("ai", LabelSource.AI, {})):
        runs[key] = training_run_create(
            name=f"{name}: {key}", label_source=source,
            labeler_config=config if source != LabelSource.HUMAN else None,
            hyperparameters={**hp, **extra}, **common)
    return RoutingReport.objects.create(
        dataset=dataset, config=config, budget=budget, criterion=criterion, campaign=campaign,
        hybrid_run=runs["hybrid"], human_run=runs["human"], ai_run=runs["ai"], created_by=created_by)
