"""Writes of the training app: create, cancel, resume and fail runs; record progress; store the
artifacts a run produces (with provenance back to the labels) and the summaries a policy writes.

Every write is a keyword-only function under `transaction.atomic`; runs are enqueued on commit.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any, Sequence

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from rlaif_site import jobs
from labeling.models import Campaign, Comparison, Dataset, LabelerConfig, Policy, PolicyKind, Summary, text_digest
from . import params as run_params
from . import selectors
from .models import LabelSource, ModelArtifact, RunKind, RunPhase, RunStatus, TrainingRun

logger = logging.getLogger(__name__)


LOG_MAX_CHARS = 200_000


# --- base artifacts -----------------------------------------------------------------------------


@transaction.atomic
def base_artifact_register(*, name: str, path: str | Path) -> tuple[ModelArtifact, bool]:
    """Register a pretrained checkpoint as a base artifact (idempotent by name; the path is kept
    relative to ARTIFACT_ROOT when it lies inside it). Returns (artifact, created)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ValidationError({"path": f"{path.name}: not a Hugging Face checkpoint (no config.json)"})
    stored = _relative(path)
    artifact, created = ModelArtifact.objects.get_or_create(
        name=name, defaults={"kind": ModelArtifact.Kind.BASE, "path": stored})
    if not created and artifact.path != stored:
        artifact.path = stored
        artifact.save(update_fields=["path"])
    return artifact, created


# --- creating runs ------------------------------------------------------------------------------


def _by_id_or_name(model, value, *, field: str, what: str):
    """A row given as itself, its id or its name (None for empty); a missing one is a ValidationError on field."""
    if value in (None, ""):
        return None
    if isinstance(value, model):
        return value
    text = str(value).removeprefix("artifact:") if model is ModelArtifact else str(value)
    found = (model.objects.filter(pk=text) if text.isdigit() else model.objects.filter(name=text)).first()
    if found is None:
        raise ValidationError({field: f"no {what} {value!r}"})
    return found


def _dataset(value) -> Dataset | None:
    return _by_id_or_name(Dataset, value, field="dataset", what="dataset")


def _artifact(value, field: str) -> ModelArtifact | None:
    return _by_id_or_name(ModelArtifact, value, field=field, what="model artifact")


def _labeler_config(value) -> LabelerConfig | None:
    return _by_id_or_name(LabelerConfig, value, field="labeler_config", what="labeler config")


def _enqueue(run_id: int) -> None:
    from .tasks import run_training

    run_training.apply_async(args=[run_id], queue="gpu")


def _check_base(kind: str, base_artifact: Any, base_checkpoint: str) -> tuple[ModelArtifact | None, str]:
    """The run's base as (artifact or None, stored base_checkpoint)."""
    base = _artifact(base_artifact, "base_artifact")
    if base is None and base_checkpoint.startswith("artifact:"):
        base = _artifact(base_checkpoint, "base_checkpoint")
    if base is None and not base_checkpoint:
        base = selectors.default_base_artifact(kind)
        if base is None:
            raise ValidationError({"base_checkpoint": "give a base checkpoint or artifact (none to default to)"})
    if base is not None:
        return base, f"artifact:{base.pk}"
    try:
        return None, run_params.check_base_checkpoint(base_checkpoint, artifact_root=settings.ARTIFACT_ROOT)
    except ValueError as exc:
        raise ValidationError({"base_checkpoint": str(exc)}) from exc


def _check_reward_source(label_source: str, labeler_config, hp: dict) -> str:
    label_source = label_source or LabelSource.HUMAN
    if label_source not in (LabelSource.HUMAN, LabelSource.AI, LabelSource.HYBRID):
        raise ValidationError({"label_source": "a reward model trains on human, AI or hybrid labels"})
    if label_source in (LabelSource.AI, LabelSource.HYBRID) and labeler_config is None:
        what = "AI" if label_source == LabelSource.AI else "Hybrid"
        raise ValidationError({"labeler_config": f"{what} labels need a labeler config"})
    if hp.get("hybrid_campaign") and label_source != LabelSource.HYBRID:
        raise ValidationError({"hyperparameters": "hybrid_campaign applies to --source hybrid only"})
    if hp.get("hybrid_campaign") and not Campaign.objects.filter(name=hp["hybrid_campaign"]).exists():
        raise ValidationError({"hyperparameters": f"hybrid_campaign: no campaign {hp['hybrid_campaign']!r}"})
    return label_source


def _check_rl_source(label_source: str, labeler_config, reward_artifact) -> str:
    label_source = label_source or (LabelSource.DIRECT_AI if labeler_config and not reward_artifact
                                    else LabelSource.REWARD_MODEL)
    if label_source == LabelSource.REWARD_MODEL:
        if reward_artifact is None or reward_artifact.kind != ModelArtifact.Kind.REWARD:
            raise ValidationError({"reward_artifact": "RL against a reward model needs a reward-model artifact"})
    elif label_source == LabelSource.DIRECT_AI:
        if labeler_config is None:
            raise ValidationError({"labeler_config": "direct RLAIF needs an AI labeler config"})
    else:
        raise ValidationError({"label_source": "RL rewards come from a reward model or the AI labeler's score"})
    return label_source


def _check_label_source(kind: str, label_source: str, *, base, labeler_config, reward_artifact, hp: dict) -> str:
    """The run's label source (its kind's default when empty), refused when the kind cannot use it."""
    if kind == RunKind.SFT:
        label_source = label_source or LabelSource.REFERENCES
        if label_source != LabelSource.REFERENCES:
            raise ValidationError({"label_source": "SFT trains on reference summaries"})
    elif kind == RunKind.REWARD:
        label_source = _check_reward_source(label_source, labeler_config, hp)
    elif kind == RunKind.RL:
        label_source = _check_rl_source(label_source, labeler_config, reward_artifact)
    elif kind == RunKind.SAMPLE:
        if base is None or base.kind != ModelArtifact.Kind.POLICY or base.policy_id is None:
            raise ValidationError({"base_artifact": "sampling needs a policy artifact (one made by an SFT or RL run)"})
    return label_source


def training_run_check(*, kind: str, base_checkpoint: str = "", base_artifact: Any = None, dataset: Any = None,
                       label_source: str = "", labeler_config: Any = None, reward_artifact: Any = None,
                       hyperparameters: dict | None = None, **extra: Any) -> dict[str, Any]:
    """Check a run's settings without writing anything; returns the TrainingRun fields they give
    (objects resolved, the kind's default hyperparameters filled in). Arguments as for
    `training_run_create`. Raises ValidationError naming the field at fault."""
    if kind not in RunKind.values:
        raise ValidationError({"kind": f"kind must be one of {RunKind.values}, got {kind!r}"})
    if hyperparameters is not None and not isinstance(hyperparameters, dict):
        raise ValidationError({"hyperparameters": "hyperparameters must be an object of field: value"})
    hp = dict(hyperparameters or {})
    hp.update(extra)
    dataset = _dataset(dataset)
    if dataset is None:
        raise ValidationError({"dataset": "a dataset is required"})
    if dataset.archived_at is not None:
        raise ValidationError({"dataset": f"dataset {dataset.name!r} is archived; restore it in the admin to train on it"})
    base, base_checkpoint = _check_base(kind, base_artifact, base_checkpoint)
    labeler_config = _labeler_config(labeler_config)
    reward_artifact = _artifact(reward_artifact, "reward_artifact")
    label_source = _check_label_source(kind, label_source, base=base, labeler_config=labeler_config,
                                       reward_artifact=reward_artifact, hp=hp)
    try:
        run_params.split_params(kind, hp, max_processes=settings.TRAINING_MAX_PROCESSES)
    except ValueError as exc:
        raise ValidationError({"hyperparameters": str(exc)}) from exc
    full = run_params.defaults(kind, task=dataset.task)
    full.update(hp)
    return {"kind": kind, "base_checkpoint": base_checkpoint, "base_artifact": base, "dataset": dataset,
            "label_source": label_source, "labeler_config": labeler_config, "reward_artifact": reward_artifact,
            "hyperparameters": full}


@transaction.atomic
def training_run_create(*, kind: str, created_by=None, name: str = "", base_checkpoint: str = "",
                        base_artifact: Any = None, dataset: Any = None, label_source: str = "",
                        labeler_config: Any = None, reward_artifact: Any = None,
                        hyperparameters: dict | None = None, enqueue: bool = True, **extra: Any) -> TrainingRun:
    """Validate (`training_run_check`) and create a run, then queue it on `gpu` when the transaction commits.

    Extra keyword arguments are hyperparameters (e.g. `max_steps=3`). Objects may be given as
    instances, primary keys or names; `base_checkpoint` may be "artifact:<id>" or a Hugging Face
    name / local path. Raises ValidationError naming the field at fault.
    """
    fields = training_run_check(kind=kind, base_checkpoint=base_checkpoint, base_artifact=base_artifact,
                                dataset=dataset, label_source=label_source, labeler_config=labeler_config,
                                reward_artifact=reward_artifact, hyperparameters=hyperparameters, **extra)
    run = TrainingRun.objects.create(name=name, created_by=created_by,
                                     log=f"{timezone.now():%Y-%m-%d %H:%M:%S} queued\n", **fields)
    if enqueue:
        transaction.on_commit(lambda: _enqueue(run.pk))
    return run


# --- user actions -------------------------------------------------------------------------------


def _append_log(run: TrainingRun, line: str) -> None:
    run.log = (run.log + f"{timezone.now():%Y-%m-%d %H:%M:%S} {line}\n")[-LOG_MAX_CHARS:]


@transaction.atomic
def training_run_cancel(*, run_id: int) -> TrainingRun:
    """Cancel a queued run now; ask a running one to stop after its current step (it checkpoints)."""
    run = TrainingRun.objects.select_for_update().get(pk=run_id)
    if run.status == RunStatus.QUEUED:
        run.status, run.finished_at = RunStatus.CANCELLED, timezone.now()
        _append_log(run, "cancelled before it started")
    elif run.status == RunStatus.RUNNING:
        run.cancel_requested = True
        _append_log(run, "cancel requested; stopping after the current step")
    else:
        raise ValidationError(f"run {run.pk} is {run.status}; only queued or running runs can be cancelled")
    run.save()
    return run


def _from_where(run: TrainingRun) -> str:
    step = selectors.training_run_checkpoint_step(run)
    return f"the checkpoint saved at step {step}" if step is not None else "the beginning (no checkpoint was saved yet)"


@transaction.atomic
def training_run_resume(*, run_id: int) -> TrainingRun:
    """Queue a failed or cancelled run again; it continues from its last checkpoint (or from the start)."""
    run = TrainingRun.objects.select_for_update().get(pk=run_id)
    if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
        raise ValidationError(f"run {run.pk} is {run.status}; only failed or cancelled runs can be resumed")
    if run.checkpoint_path and not Path(run.checkpoint_path).exists():
        _append_log(run, f"checkpoint {run.checkpoint_path} is gone; restarting from the beginning")
        run.checkpoint_path = ""
    run.status, run.cancel_requested, run.finished_at = RunStatus.QUEUED, False, None
    run.recoveries, run.lease_token = 0, ""
    _append_log(run, f"resume queued (from {_from_where(run)}); previous error: {run.error or 'none'}")
    run.error = ""
    run.save()
    transaction.on_commit(lambda: _enqueue(run.pk))
    return run


def training_runs_recover_stale(*, older_than_s: float | None = None, max_recoveries: int | None = None) -> int:
    """The sweeper of training runs: a running run whose heartbeat is older than `older_than_s`
    (JOB_STALE_S) lost its worker. It is queued again from its last checkpoint, at most
    `max_recoveries` (JOB_MAX_RECOVERIES) times, then marked failed with the reason. Returns the
    number of runs handled."""
    n = 0
    with transaction.atomic():
        qs = jobs.lost_rows(TrainingRun.objects.filter(status=RunStatus.RUNNING), older_than_s=older_than_s,
                            started_field="started_at")
        for run in qs:
            beat = f"{run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC" if run.heartbeat_at else "never"
            _recover(run, f"no heartbeat since {beat}", max_recoveries)
            n += 1
    return n


def _recover(run: TrainingRun, why: str, max_recoveries: int | None = None, *, requeue: bool = True) -> bool:
    """A run whose worker was lost (call under its row lock): queued again from its last checkpoint
    (or, with requeue=False, left for the caller to take over), unless it was lost more than
    `max_recoveries` times: then it fails, naming the checkpoint step really saved. True when it goes on."""
    limit = jobs.max_recoveries() if max_recoveries is None else max_recoveries
    run.recoveries += 1
    run.lease_token = ""
    if run.recoveries > limit:
        run.status, run.finished_at = RunStatus.FAILED, timezone.now()
        run.error = (f"The worker running this run was lost {jobs.times(run.recoveries)} (last: {why}). "
                     f"Resume continues from {_from_where(run)}.")
        _append_log(run, run.error)
        run.save()
        return False
    _append_log(run, f"worker lost ({why}); {'queued again' if requeue else 'taken over'} from {_from_where(run)} "
                     f"(recovery {run.recoveries} of {limit})")
    if requeue:
        run.status = RunStatus.QUEUED
        transaction.on_commit(lambda: _enqueue(run.pk))
    run.save()
    return True


# --- worker-side writes -------------------------------------------------------------------------


@transaction.atomic
def training_run_claim(*, run_id: int, token: str = "") -> tuple[str, TrainingRun | None]:
    """Give the run to the execution `token`: ("claimed", run) for a queued run; ("taken_over", run)
    for a run still marked running whose heartbeat is stale (its worker died and the task was
    redelivered: this execution goes on from the last checkpoint); ("busy", None) while another
    worker's heartbeat is fresh; ("over", None) when there is nothing to run (done, cancelled, failed).
    """
    run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
    if run is None:
        logger.warning("training run %s does not exist", run_id)
        return "over", None
    now = timezone.now()
    if run.status == RunStatus.RUNNING:
        if run.heartbeat_at is not None and run.heartbeat_at >= now - timedelta(seconds=jobs.stale_s()):
            return "busy", None
        beat = f"{run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC" if run.heartbeat_at else "never"
        if not _recover(run, f"no heartbeat since {beat}; its task was redelivered", requeue=False):
            return "over", None
        run.lease_token, run.heartbeat_at = token, now
        run.save()
        return "taken_over", run
    if run.status != RunStatus.QUEUED:
        return "over", None
    run.status, run.heartbeat_at, run.lease_token = RunStatus.RUNNING, now, token
    run.started_at = run.started_at or now
    _append_log(run, "started" if not run.checkpoint_path else f"resumed from {_from_where(run)}")
    run.save()
    return "claimed", run


def _owned(run_id: int, token: str | None):
    qs = TrainingRun.objects.filter(pk=run_id)
    return qs.filter(lease_token=token) if token else qs


def training_run_heartbeat(*, run_id: int, token: str | None = None) -> bool:
    """Move the run's heartbeat; False when the run is no longer this execution's (or not running)."""
    return _owned(run_id, token).filter(status=RunStatus.RUNNING).update(heartbeat_at=timezone.now()) > 0


def training_run_progress_set(*, run_id: int, step: int, total: int, metrics: list[dict], log: str,
                 token: str | None = None) -> None:
    _owned(run_id, token).update(
        step=step, total_steps=total, progress=min(1.0, step / total) if total else 0.0, metrics=metrics,
        log=log[-LOG_MAX_CHARS:], heartbeat_at=timezone.now(),
    )


def training_run_phase_set(*, run_id: int, phase: str, token: str | None = None) -> None:
    """Record where a running run is (loading model, running, evaluating, saving) for its page."""
    if phase not in RunPhase.values:
        raise ValueError(f"phase: must be one of {RunPhase.values}, got {phase!r}")
    _owned(run_id, token).filter(status=RunStatus.RUNNING).update(phase=phase, heartbeat_at=timezone.now())


def training_run_checkpoint_set(*, run_id: int, path: str, step: int, token: str | None = None) -> None:
    """Record a checkpoint written to disk, with its step, in one write (the step a recovery names)."""
    _owned(run_id, token).update(checkpoint_path=path, summary={"checkpoint_step": step}, heartbeat_at=timezone.now())


@transaction.atomic
def training_run_fail(*, run_id: int, error: str) -> None:
    run = TrainingRun.objects.select_for_update().get(pk=run_id)
    run.status, run.error, run.finished_at = RunStatus.FAILED, error, timezone.now()
    _append_log(run, f"failed: {error.splitlines()[-1] if error else ''}")
    run.save()


@transaction.atomic
def training_run_stop(*, run_id: int, step: int) -> None:
    run = TrainingRun.objects.select_for_update().get(pk=run_id)
    run.status, run.finished_at, run.cancel_requested = RunStatus.CANCELLED, timezone.now(), False
    _append_log(run, f"cancelled at step {step}; resumable from {run.checkpoint_path}")
    run.save()


def _relative(path: str | Path) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path(settings.ARTIFACT_ROOT).resolve()))
    except ValueError:
        return str(path)


def _policy_kind(run: TrainingRun) -> str:
    if run.kind == RunKind.SFT:
        return PolicyKind.SFT
    if run.label_source == LabelSource.DIRECT_AI:
        return PolicyKind.DIRECT_RLAIF
    source = (run.reward_artifact.trained_on or {}).get("source") if run.reward_artifact else None
    return PolicyKind.RLAIF if source == LabelSource.AI else PolicyKind.RLHF


@transaction.atomic
def training_run_finish(*, run_id: int, output_dir: str, summary: dict, trained_on: dict, policy_name: str = "",
               extra_log: str = "") -> ModelArtifact | None:
    """Mark a run done; for sft/reward/rl runs, register its final checkpoint as an artifact."""
    run = TrainingRun.objects.select_for_update().get(pk=run_id)
    artifact = None
    if run.kind != RunKind.SAMPLE:
        policy = None
        if run.kind in (RunKind.SFT, RunKind.RL):
            kind = _policy_kind(run)
            policy, _ = Policy.objects.get_or_create(
                name=policy_name or f"{kind}-run{run.pk}",
                defaults={"kind": kind, "description": f"Written by training run {run.pk} ({run})."},
            )
        artifact = ModelArtifact.objects.create(
            name=f"{run.kind}-run{run.pk}" + (f" {run.name}" if run.name else ""),
            kind=ModelArtifact.Kind.REWARD if run.kind == RunKind.REWARD else ModelArtifact.Kind.POLICY,
            path=_relative(output_dir), run=run, policy=policy, trained_on=trained_on,
        )
        artifact.parents.set([a for a in (run.base_artifact, run.reward_artifact) if a is not None])
    run.status, run.progress, run.finished_at, run.summary = RunStatus.DONE, 1.0, timezone.now(), summary
    run.phase = RunPhase.DONE
    run.cancel_requested = False
    if extra_log:
        _append_log(run, extra_log)
    _append_log(run, "done" + (f": artifact {artifact.name} at {artifact.path}" if artifact else ""))
    run.save()
    return artifact


@transaction.atomic
def policy_samples_write(*, policy: Policy, posts: Sequence[dict], texts: Sequence[str],
                         compare_with: Sequence[str] = ()) -> dict:
    """Store one Summary per post for `policy` and a Comparison (canonical order) against every
    other policy's summary of that post (only the named policies when compare_with is given).
    Empty generations are skipped (a summary cannot be empty). Idempotent."""
    if len(posts) != len(texts):
        raise ValueError(f"{len(posts)} posts but {len(texts)} summaries")
    n_summaries = n_new_comparisons = n_empty = 0
    for post, text in zip(posts, texts):
        if not text.strip():
            n_empty += 1
            continue
        mine, _ = Summary.objects.get_or_create(
            post_id=post["post_id"], policy=policy, text_sha256=text_digest(text.strip()),
            defaults={"text": text.strip()},
        )
        n_summaries += 1
        others = Summary.objects.filter(post_id=post["post_id"]).exclude(policy=policy)
        if compare_with:
            others = others.filter(policy__name__in=list(compare_with))
        for other in others.only("pk"):
            a, b = sorted((mine.pk, other.pk))
            _, created = Comparison.objects.get_or_create(summary_a_id=a, summary_b_id=b,
                                                          defaults={"post_id": post["post_id"]})
            n_new_comparisons += created
    return {"summaries": n_summaries, "new_comparisons": n_new_comparisons, "empty_generations": n_empty}


# --- direct RLAIF: the AI labeler's 1-10 score as the RL reward ---------------------------------


def direct_rlaif_reward_fn(config: LabelerConfig):
    """A reward callable for direct RLAIF: the AI labeler rates each summary 1-10 and the reward is
    sum_i i * P(i) (P normalized over 1..10) rescaled to [-1, 1] -- `labeling.judges.labeler.rate_summaries`
    on the config's backend (`labeling.services.ai_labeling.backend_for`, loaded once per worker).
    The post is shortened (never the summary) to fit the config's max_prompt_tokens and the model.
    """
    from labeling.formats import labeler_text
    from labeling.judges.base import Prompt
    from labeling.judges.labeler import rate_summaries
    from labeling.judges.prompts import fit_text, rating_prompt
    from labeling.services.ai_labeling import backend_for

    backend = backend_for(config)
    model_config = getattr(getattr(backend, "model", None), "config", None)
    positions = getattr(model_config, "n_positions", None) or getattr(model_config, "max_position_embeddings", None)
    max_tokens = min(config.max_prompt_tokens, int(positions)) if positions else config.max_prompt_tokens

    def reward(records, summaries):
        items = []
        for record, summary in zip(records, summaries):
            text = labeler_text(record.get("subreddit", ""), record.get("title", ""), record["post"])
            text, _ = fit_text(lambda t, s=summary: [rating_prompt(t, s)], text,
                               lambda p: backend.count_tokens(Prompt(p)), max_tokens)
            items.append((text, summary))
        return rate_summaries(backend, items)

    return reward
