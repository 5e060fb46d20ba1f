"""The RLAIF-versus-RLHF experiment as one resumable driver over ordinary jobs and runs.

`experiment_run` walks the steps of a preset (`experiment_plan.py`) in order:

1. `label:<config>`  an AI labeling job per labeler config on the same training-side comparisons;
2. `rm:human`, `rm:ai`  reward models from human labels and from the best config's soft labels;
3. `sft`  SFT of the base policy on the reference summaries;
4. `rl:rlhf`, `rl:rlaif`, `rl:direct`  REINFORCE + KL against each reward model, and direct RLAIF;
5. `sample:<policy>`  each policy summarizes the same held-out posts (new comparisons between them);
6. `judge`  the judge config labels those comparisons;
7. `report`  every figure beside the paper's and the trivial judges' (`experiment_report.py`).

Each step is an ordinary AI labeling job or training run (the pages already show them), recorded
in `Experiment.steps` as soon as it is created. Running the driver again, in any process, skips
finished steps, runs a queued or interrupted one here (or waits while a live worker has it), so an
experiment survives a worker restart: the job sweeper queues a stale experiment again.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from django.db import transaction
from django.utils import timezone

from labeling.models import Comparison, Dataset, JobStatus, LabelerConfig
from labeling.services import ai_labeling
from rlaif_site import jobs
from training import runner
from training import services as training_services
from training.models import ModelArtifact, RunStatus, TrainingRun
from training.selectors import post_is_held_out

from .experiment_plan import Preset, preset_get
from .models import Experiment

log = logging.getLogger(__name__)
POLICIES = ("sft", "rlhf", "rlaif", "direct")
StepCallback = Callable[[Experiment, str], None]


class ExperimentError(RuntimeError):
    """A step failed or cannot start; the experiment records the message."""


# --- creating ---------------------------------------------------------------------------------------


def experiment_check(*, preset: str) -> Preset:
    """Refuse a preset whose inputs are missing, naming what to install or import."""
    try:
        plan = preset_get(preset)
    except KeyError as exc:
        raise ExperimentError(str(exc)) from exc
    if not Dataset.objects.filter(name=plan.dataset).exists():
        raise ExperimentError(f"no dataset {plan.dataset!r}: run `python manage.py demo_setup` (or import it)")
    missing = [n for n in (*plan.labeler_configs, plan.judge_config) if not LabelerConfig.objects.filter(name=n).exists()]
    missing += [n for n in (plan.rm_base, plan.policy_base) if not ModelArtifact.objects.filter(name=n).exists()]
    if missing:
        raise ExperimentError(f"missing {', '.join(sorted(set(missing)))}: run `python manage.py install_models`")
    return plan


def experiment_create(*, preset: str, created_by=None, name: str = "", enqueue: bool = True) -> Experiment:
    plan = experiment_check(preset=preset)
    with transaction.atomic():
        exp = Experiment.objects.create(name=name or f"{plan.name} {timezone.now():%Y-%m-%d %H:%M}",
                                        preset=plan.name, sizes=plan.sizes(), created_by=created_by)
        if enqueue:
            transaction.on_commit(lambda: experiment_enqueue(experiment_id=exp.pk))
    return exp


def experiment_enqueue(*, experiment_id: int) -> None:
    from .tasks import run_experiment

    run_experiment.apply_async(args=[experiment_id], queue="gpu")


# --- state --------------------------------------------------------------------------------------


def _save(exp: Experiment, **fields) -> None:
    for k, v in fields.items():
        setattr(exp, k, v)
    Experiment.objects.filter(pk=exp.pk).update(**fields)


def _record(exp: Experiment, step: str, kind: str, obj_id: int) -> None:
    steps = dict(exp.steps)
    steps[step] = {"kind": kind, "id": obj_id, **{k: v for k, v in steps.get(step, {}).items() if k == "seconds"}}
    _save(exp, steps=steps)


def _beat(experiment_id: int) -> bool:
    n = Experiment.objects.filter(pk=experiment_id, status=Experiment.Status.RUNNING).update(
        heartbeat_at=timezone.now())
    return n > 0


def step_names(plan: Preset) -> list[str]:
    names = [f"label:{c}" for c in plan.labeler_configs] + ["rm:human", "rm:ai", "sft", "rl:rlhf", "rl:rlaif"]
    if plan.direct_rlaif:
        names.append("rl:direct")
    names += [f"sample:{p}" for p in policies(plan)] + ["judge", "report"]
    return names


def policies(plan: Preset) -> list[str]:
    return [p for p in POLICIES if p != "direct" or plan.direct_rlaif]


def policy_name(exp: Experiment, policy: str) -> str:
    return f"exp{exp.pk}-{policy}"


# --- the driver -----------------------------------------------------------------------------------


def _claim(experiment_id: int) -> tuple[Experiment, bool]:
    """Take the experiment to drive it here: (experiment, True), or (experiment, False) when it is
    finished or a live driver (fresh heartbeat) has it."""
    with transaction.atomic():
        exp = Experiment.objects.select_for_update().get(pk=experiment_id)
        if exp.status in (Experiment.Status.DONE, Experiment.Status.FAILED):
            return exp, False
        fresh = exp.heartbeat_at and (timezone.now() - exp.heartbeat_at).total_seconds() < jobs.stale_s()
        if exp.status == Experiment.Status.RUNNING and fresh:
            return exp, False
        _save(exp, status=Experiment.Status.RUNNING, started_at=exp.started_at or timezone.now(),
              heartbeat_at=timezone.now(), error="")
    return exp, True


def experiment_run(*, experiment_id: int, on_step: StepCallback | None = None) -> Experiment:
    """Run (or go on with) an experiment here until it is done or a step fails."""
    exp, mine = _claim(experiment_id)
    if not mine:
        return exp
    plan = preset_get(exp.preset)
    with jobs.Heartbeat(lambda: _beat(exp.pk), name=f"heartbeat-experiment-{exp.pk}"):
        try:
            for step in step_names(plan):
                if "seconds" in exp.steps.get(step, {}):
                    continue
                _save(exp, step=step)
                if on_step:
                    on_step(exp, step)
                t0 = time.monotonic()
                _run_step(exp, plan, step)
                exp.refresh_from_db()
                steps = dict(exp.steps)
                steps[step] = {**steps.get(step, {}), "seconds": round(time.monotonic() - t0, 1)}
                _save(exp, steps=steps)
        except Exception as exc:  # a step's failure ends the experiment with its reason
            log.exception("experiment %s failed at %s", exp.pk, exp.step)
            _save(exp, status=Experiment.Status.FAILED, error=f"{exp.step}: {exc}", finished_at=timezone.now())
            return exp
    _save(exp, status=Experiment.Status.DONE, step="", finished_at=timezone.now())
    return exp


def _run_step(exp: Experiment, plan: Preset, step: str) -> None:
    kind, _, key = step.partition(":")
    if kind == "report":
        from .experiment_report import experiment_report_build

        _save(exp, report=experiment_report_build(exp))
        return
    ref = exp.steps.get(step)
    if ref is None:
        maker = {"label": _make_label_job, "rm": _make_reward_run, "sft": _make_sft_run, "rl": _make_rl_run,
                 "sample": _make_sample_run, "judge": _make_judge_job}[kind]
        obj_kind, obj_id = maker(exp, plan, key)
        _record(exp, step, obj_kind, obj_id)
        ref = exp.steps[step]
    if ref["kind"] == "job":
        _await_job(ref["id"])
    else:
        _await_run(ref["id"])


def _await_job(job_id: int) -> None:
    while True:
        job = ai_labeling.ai_labeling_job_run(job_id=job_id)
        if job.status == JobStatus.DONE:
            return
        if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            errors = [e.get("error", e) if isinstance(e, dict) else e for e in (job.errors or [])]
            raise ExperimentError(f"AI labeling job {job_id} ended {job.status}: {errors[-1] if errors else ''}")
        time.sleep(5)  # chunks leased by other live workers: wait for them


def _await_run(run_id: int) -> None:
    while True:
        runner.execute_run(run_id)
        run = TrainingRun.objects.get(pk=run_id)
        if run.status == RunStatus.DONE:
            return
        if run.status in (RunStatus.FAILED, RunStatus.CANCELLED):
            raise ExperimentError(f"training run {run_id} ended {run.status}: {(run.error or '').splitlines()[:1]}")
        time.sleep(5)  # another live worker holds it


# --- the steps ----------------------------------------------------------------------------------------


def training_side_comparisons(plan: Preset) -> list[int]:
    """Human-labelled comparisons of the dataset on the training side of the split, in id order."""
    rows = (Comparison.objects.filter(post__dataset__name=plan.dataset, human_labels__isnull=False)
            .distinct().order_by("pk").values_list("pk", "post__content_sha256"))
    return [pk for pk, digest in rows if not post_is_held_out(digest, plan.eval_fraction)]


def _make_label_job(exp: Experiment, plan: Preset, config_name: str) -> tuple[str, int]:
    config = LabelerConfig.objects.get(name=config_name)
    ids = training_side_comparisons(plan)
    dataset = Dataset.objects.get(name=plan.dataset)
    if config.shots:
        ai_labeling.labeler_config_exemplars(config=config, dataset_ids=[dataset.pk],
                                             exclude_ids=ids[: plan.n_label.get(config_name, len(ids))])
        exemplar_ids = {e["comparison"] for e in config.exemplars or []}
        ids = [i for i in ids if i not in exemplar_ids]
    ids = ids[: plan.n_label.get(config_name, len(ids))]
    job = ai_labeling.ai_labeling_job_create(config=config, comparisons=ids, created_by=exp.created_by, enqueue=False)
    return "job", job.pk


def best_config(exp: Experiment, plan: Preset) -> str:
    """The config with the highest alignment among those that labelled the most comparisons."""
    from .experiment_report import config_alignment

    full = max(plan.n_label.values())
    rows = [config_alignment(exp, c) for c in plan.labeler_configs
            if plan.n_label.get(c) == full or len(plan.labeler_configs) == 1]
    rows = [r for r in rows if r["alignment"] is not None] or [config_alignment(exp, plan.labeler_configs[0])]
    return max(rows, key=lambda r: r["alignment"] or 0)["config"]


def _run(exp: Experiment, **kwargs) -> tuple[str, int]:
    run = training_services.training_run_create(created_by=exp.created_by, enqueue=False, **kwargs)
    return "run", run.pk


def _artifact_of(exp: Experiment, step: str) -> ModelArtifact:
    run = TrainingRun.objects.get(pk=exp.steps[step]["id"])
    artifact = run.artifacts.order_by("pk").first()
    if artifact is None:
        raise ExperimentError(f"{step}: run {run.pk} registered no artifact")
    return artifact


def _make_reward_run(exp: Experiment, plan: Preset, source: str) -> tuple[str, int]:
    """Both reward models see as many training pairs as the best config labelled (the RLHF one the
    first human labels of the training side, in the same id order)."""
    best = best_config(exp, plan)
    hp = {**plan.rm_params, "eval_fraction": plan.eval_fraction, "max_examples": plan.n_label[best]}
    extra = {"labeler_config": best} if source == "ai" else {}
    return _run(exp, kind="reward", name=f"exp{exp.pk} RM ({source} labels)", base_artifact=plan.rm_base,
                dataset=plan.dataset, label_source=source, hyperparameters=hp, **extra)


def _make_sft_run(exp: Experiment, plan: Preset, _key: str) -> tuple[str, int]:
    hp = {**plan.sft_params, "eval_fraction": plan.eval_fraction, "policy_name": policy_name(exp, "sft")}
    return _run(exp, kind="sft", name=f"exp{exp.pk} SFT", base_artifact=plan.policy_base, dataset=plan.dataset,
                label_source="references", hyperparameters=hp)


def _make_rl_run(exp: Experiment, plan: Preset, which: str) -> tuple[str, int]:
    sft = _artifact_of(exp, "sft")
    common = {"kind": "rl", "name": f"exp{exp.pk} RL ({which})", "base_artifact": sft.pk, "dataset": plan.dataset}
    if which == "direct":
        hp = {**plan.direct_params, "eval_fraction": plan.eval_fraction, "policy_name": policy_name(exp, which)}
        return _run(exp, label_source="direct_ai", labeler_config=plan.judge_config, hyperparameters=hp, **common)
    hp = {**plan.rl_params, "eval_fraction": plan.eval_fraction, "policy_name": policy_name(exp, which)}
    rm = _artifact_of(exp, "rm:human" if which == "rlhf" else "rm:ai")
    return _run(exp, label_source="reward_model", reward_artifact=rm.pk, hyperparameters=hp, **common)


def _make_sample_run(exp: Experiment, plan: Preset, policy: str) -> tuple[str, int]:
    source = {"sft": "sft", "rlhf": "rl:rlhf", "rlaif": "rl:rlaif", "direct": "rl:direct"}[policy]
    artifact = _artifact_of(exp, source)
    before = policies(plan)[: policies(plan).index(policy)]
    hp = {**plan.sample_params, "eval_fraction": plan.eval_fraction, "n_posts": plan.n_eval_posts,
          "compare_with": ",".join(policy_name(exp, p) for p in before) or policy_name(exp, policy)}
    return _run(exp, kind="sample", name=f"exp{exp.pk} sample ({policy})", base_artifact=artifact.pk,
                dataset=plan.dataset, hyperparameters=hp)


def policy_comparisons(exp: Experiment, plan: Preset):
    names = [policy_name(exp, p) for p in policies(plan)]
    return (Comparison.objects.filter(summary_a__policy__name__in=names, summary_b__policy__name__in=names)
            .order_by("pk"))


def _make_judge_job(exp: Experiment, plan: Preset, _key: str) -> tuple[str, int]:
    ids = list(policy_comparisons(exp, plan).values_list("pk", flat=True))
    if not ids:
        raise ExperimentError("the policies wrote no comparable summaries (every generation empty?)")
    config = LabelerConfig.objects.get(name=plan.judge_config)
    job = ai_labeling.ai_labeling_job_create(config=config, comparisons=ids, created_by=exp.created_by, enqueue=False)
    return "job", job.pk


def experiment_report_rebuild(*, experiment_id: int) -> Experiment:
    """Build a finished experiment's report again from its jobs and runs (after a fix of the report)."""
    from .experiment_report import experiment_report_build

    exp = Experiment.objects.get(pk=experiment_id)
    _save(exp, report=experiment_report_build(exp))
    return exp


# --- recovery (the job sweeper) ------------------------------------------------------------------------


def experiments_recover_stale(*, older_than_s: float | None = None, max_recoveries: int | None = None) -> int:
    """Queue again every running experiment whose driver stopped beating (its worker died)."""
    limit = jobs.recovery_limit(max_recoveries)
    n = 0
    with transaction.atomic():
        for exp in jobs.lost_rows(Experiment.objects.filter(status=Experiment.Status.RUNNING),
                                  older_than_s=older_than_s, started_field="started_at"):
            if exp.recoveries >= limit:
                _save(exp, status=Experiment.Status.FAILED, finished_at=timezone.now(),
                      error=f"{exp.step}: its worker stopped {exp.recoveries + 1} times; not queued again")
            else:
                _save(exp, status=Experiment.Status.QUEUED, recoveries=exp.recoveries + 1)
                transaction.on_commit(lambda pk=exp.pk: experiment_enqueue(experiment_id=pk))
            n += 1
    return n
