"""Runs one TrainingRun in this process: claims it, builds its data from the labels, calls the ML
loop with hooks that record progress, honour cancel requests and keep a heartbeat, and stores
what it produced. Called by the Celery task (queue "gpu") and by `manage.py train`.

Each execution holds the run under a token: its heartbeat thread (rlaif_site.jobs.Heartbeat)
moves the run's heartbeat only while the token is still the run's, so a worker that the sweeper
gave up on (and whose run another worker now continues) notices, stops, and writes nothing more.
"""
from __future__ import annotations

import functools
import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from django.conf import settings

from rlaif_site import jobs

from . import params as run_params
from . import selectors, services
from .ml.common import Hooks, TrainResult
from .models import LabelSource, RunKind, RunPhase, RunStatus, TrainingRun

logger = logging.getLogger(__name__)

WRITE_EVERY_S = 1.0
CANCEL_POLL_S = 1.0

StepCallback = Callable[[int, int, dict], None]


class _Recorder:
    """Keeps the run's metrics and log in memory and writes them at most once a second."""

    def __init__(self, run: TrainingRun, on_step: StepCallback | None, token: str = ""):
        ckpt_step = (run.summary or {}).get("checkpoint_step", 0) if run.checkpoint_path else 0
        # Steps after the checkpoint are redone on resume: drop their old metrics.
        self.metrics = [m for m in (run.metrics or []) if m.get("step", 0) <= ckpt_step]
        self.log = run.log
        self.run_id = run.pk
        self.step, self.total = run.step, run.total_steps
        self.on_step = on_step
        self._last_write = self._last_cancel_check = 0.0
        self._cancel = False
        self.token = token
        self.phase = run.phase
        self.trackers = None
        self.tracker_config = {"kind": run.kind, "label_source": run.label_source, **(run.hyperparameters or {})}
        self.after_last_phase = RunPhase.EVALUATING if run.kind == RunKind.REWARD else RunPhase.SAVING
        self.heartbeat = jobs.Heartbeat(lambda: services.training_run_heartbeat(run_id=self.run_id, token=token or None),
                                        name=f"heartbeat-run-{run.pk}")

    @property
    def lost(self) -> bool:
        """The run is no longer this execution's (the sweeper re-queued it after missed heartbeats)."""
        return self.heartbeat.lost

    def __enter__(self):
        self.heartbeat.__enter__()
        if settings.TRAINING_TRACKERS:  # off by default: no tracker package is even imported
            from .ml.trackers import open_trackers

            self.trackers = open_trackers(settings.TRAINING_TRACKERS, run_name=f"run-{self.run_id}",
                                          logging_dir=settings.TRAINING_TRACKER_DIR, config=self.tracker_config)
            for note in self.trackers.notes:
                self.line(note)
            if self.trackers.names:
                self.line(f"logging to {', '.join(self.trackers.names)}")
        return self

    def __exit__(self, *exc):
        if self.trackers is not None:
            self.trackers.finish()
        self.heartbeat.__exit__(*exc)

    def line(self, text: str) -> None:
        self.log += f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} {text}\n"

    def set_phase(self, phase: str) -> None:
        """Write the run's phase when it changes (queued, loading model, running, evaluating, saving)."""
        if phase != self.phase:
            self.phase = phase
            services.training_run_phase_set(run_id=self.run_id, phase=phase, token=self.token or None)

    def on_log(self, step: int, total: int, metrics: dict) -> None:
        self.step, self.total = step, total
        # After the last step the loop evaluates (reward models) and saves without logging again.
        self.set_phase(RunPhase.RUNNING if step < total else self.after_last_phase)
        if self.trackers is not None:
            self.trackers.log(metrics, step)
        row = {"step": step, **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}}
        self.metrics.append(row)
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
        self.line(f"step {step}/{total} {shown}")
        if self.on_step:
            self.on_step(step, total, metrics)
        if time.monotonic() - self._last_write >= WRITE_EVERY_S or step >= total:
            self.flush()

    def flush(self) -> None:
        services.training_run_progress_set(run_id=self.run_id, step=self.step, total=self.total, metrics=self.metrics, log=self.log,
                              token=self.token or None)
        self._last_write = time.monotonic()

    def should_stop(self) -> bool:
        if self.lost:
            return True
        if time.monotonic() - self._last_cancel_check >= CANCEL_POLL_S:
            self._last_cancel_check = time.monotonic()
            self._cancel = selectors.training_run_cancel_requested(run_id=self.run_id)
        return self._cancel

    def on_checkpoint(self, path: str, step: int) -> None:
        self.line(f"checkpoint at step {step}: {path}")
        self.flush()
        services.training_run_checkpoint_set(run_id=self.run_id, path=path, step=step, token=self.token or None)

    def hooks(self) -> Hooks:
        return Hooks(on_log=self.on_log, should_stop=self.should_stop, on_checkpoint=self.on_checkpoint)


def _base_path(run: TrainingRun) -> str:
    if run.base_artifact_id:
        return str(selectors.artifact_abspath(run.base_artifact))
    return run.base_checkpoint


def run_output_dir(run: TrainingRun) -> Path:
    return Path(settings.ARTIFACT_ROOT) / "runs" / f"run-{run.pk}"


def _claim(run_id: int, token: str, poll_s: float = 1.0) -> TrainingRun | None:
    """Claim the run, or take it over from a dead worker. While another worker's heartbeat is
    fresh (a redelivered copy of a task that is still running, or one whose worker just died),
    watch it: if it moves, that worker is alive and this copy drops out; if it goes stale, take over."""
    outcome, run = services.training_run_claim(run_id=run_id, token=token)
    if outcome != "busy":
        return run
    seen = selectors.training_run_heartbeat_at(run_id=run_id)
    deadline = time.monotonic() + jobs.stale_s() + 2 * jobs.heartbeat_s()
    while time.monotonic() < deadline:
        time.sleep(poll_s)
        now = selectors.training_run_heartbeat_at(run_id=run_id)
        if now != seen:
            logger.info("training run %s: its worker is alive (heartbeat moved); this copy of the task drops out", run_id)
            return None
        outcome, run = services.training_run_claim(run_id=run_id, token=token)
        if outcome != "busy":
            return run
    return None


def execute_run(run_id: int, *, on_step: StepCallback | None = None) -> str:
    """Run a queued run (or take over one whose worker died) to its end here; returns its final
    status, "skipped" when there is nothing to run here, "lost" when another worker took it over."""
    token = jobs.new_token()
    run = _claim(run_id, token)
    if run is None:
        return "skipped"
    run = selectors.training_run_get(run.pk)
    resume_from = run.checkpoint_path if run.checkpoint_path and Path(run.checkpoint_path).exists() else None
    recorder = _Recorder(run, on_step, token)
    try:
        with recorder:
            outcome = _dispatch(run, recorder, resume_from)
    except Exception as exc:  # the run records why; the worker stays up for the next job
        logger.exception("training run %s failed", run_id)
        if recorder.lost:
            return "lost"
        recorder.flush()
        services.training_run_fail(run_id=run_id, error=f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc(limit=8)}")
        return RunStatus.FAILED
    return outcome


@dataclass
class _Plan:
    """What an sft/reward/rl run trains on and how: `train_here(algo, records, out_dir, hooks=,
    resume_from=)` in this process, or `_launch` with `launch_extra` in several."""

    algorithm: str
    records: list[dict]
    train_here: Callable[..., TrainResult]
    launch_extra: dict = field(default_factory=dict)


def _dispatch(run: TrainingRun, rec: _Recorder, resume_from: str | None) -> str:
    base = _base_path(run)
    algo, data = run_params.split_params(run.kind, {k: v for k, v in run.hyperparameters.items()}, model=base)
    out_dir = run_output_dir(run)
    dataset = run.dataset
    rec.set_phase(RunPhase.LOADING)
    if run.kind == RunKind.SAMPLE:
        return _sample(run, rec, algo, data)
    planners = {RunKind.SFT: _plan_sft, RunKind.REWARD: _plan_reward, RunKind.RL: _plan_rl}
    if run.kind not in planners:  # pragma: no cover - kinds are validated on creation
        raise ValueError(f"unknown run kind {run.kind!r}")

    trained_on: dict = {"source": run.label_source, "dataset": dataset.name, "dataset_id": dataset.pk}
    plan = planners[run.kind](run, rec, data, base, trained_on)
    if data.num_processes > 1:
        result = _launch(plan.algorithm, algo, plan.records, out_dir, rec, data.num_processes, resume_from,
                         **plan.launch_extra)
    else:
        result = plan.train_here(algo, plan.records, out_dir, hooks=rec.hooks(), resume_from=resume_from)
    return _finish(run, rec, result, trained_on, data.policy_name if hasattr(data, "policy_name") else "")


def _plan_sft(run: TrainingRun, rec: _Recorder, data, base: str, trained_on: dict) -> _Plan:
    from .ml.sft import train_sft

    examples = selectors.sft_examples(dataset=run.dataset, eval_fraction=data.eval_fraction,
                                      max_examples=data.max_examples)
    rec.line(f"SFT on {len(examples)} reference summaries from {base}")
    trained_on["n_examples"] = len(examples)
    return _Plan("sft", examples, train_sft)


def _reward_pairs(run: TrainingRun, data, trained_on: dict) -> list[dict]:
    """The pairs a reward model trains on, from the run's label source; notes their provenance in `trained_on`."""
    dataset = run.dataset
    if run.label_source == LabelSource.AI:
        pairs = selectors.ai_pairs(dataset=dataset, labeler_config=run.labeler_config,
                                   eval_fraction=data.eval_fraction)
        trained_on.update(labeler_config=run.labeler_config.name, labeler_config_id=run.labeler_config_id,
                          ai_label_ids=[p["label_id"] for p in pairs[: data.max_examples or None]])
    elif run.label_source == LabelSource.HYBRID:
        pairs = selectors.hybrid_pairs(dataset=dataset, labeler_config=run.labeler_config,
                                       eval_fraction=data.eval_fraction, human_campaign=data.hybrid_campaign)
        used = pairs[: data.max_examples or None]
        trained_on.update(labeler_config=run.labeler_config.name, labeler_config_id=run.labeler_config_id,
                          hybrid_campaign=data.hybrid_campaign,
                          n_human_pairs=sum(p["provenance"] == "human" for p in used),
                          n_ai_pairs=sum(p["provenance"] == "ai" for p in used))
    else:
        pairs = selectors.human_pairs(dataset=dataset, held_out=False, eval_fraction=data.eval_fraction)
        trained_on["human_label_ids"] = [p["label_id"] for p in pairs[: data.max_examples or None]]
    return pairs[: data.max_examples or None]


def _plan_reward(run: TrainingRun, rec: _Recorder, data, base: str, trained_on: dict) -> _Plan:
    from .ml.reward import train_reward

    eval_pairs = selectors.human_pairs(dataset=run.dataset, held_out=True, eval_fraction=data.eval_fraction)
    pairs = _reward_pairs(run, data, trained_on)
    trained_on.update(n_pairs=len(pairs), eval_fraction=data.eval_fraction)
    rec.line(f"reward model on {len(pairs)} {run.label_source} pairs, {len(eval_pairs)} held-out human labels, from {base}")
    return _Plan("reward", pairs, functools.partial(train_reward, eval_pairs=eval_pairs),
                 launch_extra={"eval_data": eval_pairs})


def _rl_reward_fn(run: TrainingRun, data, trained_on: dict):
    """The RL reward: the labeler's score (direct RLAIF) or a reward model (None when the launched
    processes load it themselves)."""
    if run.label_source == LabelSource.DIRECT_AI:
        if data.num_processes > 1:
            raise ValueError("num_processes: direct RLAIF scores with the labeler inside the worker; use 1")
        trained_on.update(labeler_config=run.labeler_config.name, labeler_config_id=run.labeler_config_id)
        return services.direct_rlaif_reward_fn(run.labeler_config)
    from .ml.reward import RewardScorer

    reward_fn = None if data.num_processes > 1 else RewardScorer(str(selectors.artifact_abspath(run.reward_artifact)))
    trained_on.update(reward_artifact=run.reward_artifact.name, reward_artifact_id=run.reward_artifact_id,
                      reward_trained_on=run.reward_artifact.trained_on)
    return reward_fn


def _plan_rl(run: TrainingRun, rec: _Recorder, data, base: str, trained_on: dict) -> _Plan:
    from .ml.rl import train_rl

    prompts = selectors.posts_for(dataset=run.dataset, held_out=False, eval_fraction=data.eval_fraction,
                                  limit=data.max_examples)
    reward_fn = _rl_reward_fn(run, data, trained_on)
    trained_on["n_prompts"] = len(prompts)
    rec.line(f"RL on {len(prompts)} posts from {base}, reward: {run.label_source}")
    launch_extra = ({"reward_model": str(selectors.artifact_abspath(run.reward_artifact))}
                    if data.num_processes > 1 else {})

    def train_here(algo, records: list[dict], out_dir: Path, **kwargs) -> TrainResult:
        return train_rl(algo, records, reward_fn, out_dir, **kwargs)

    return _Plan("rl", prompts, train_here, launch_extra)


def _launch(algorithm: str, algo, records: list[dict], out_dir: Path, rec: _Recorder, processes: int,
            resume_from: str | None, *, eval_data: list[dict] | None = None, reward_model: str = "") -> TrainResult:
    """Train in `processes` processes under `accelerate launch` (training.ml.launch), relaying its
    JSON events to the recorder; a cancel request becomes the STOP file the processes poll."""
    import dataclasses
    import json
    import subprocess
    import sys

    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    stop_file = out_dir / "STOP"
    stop_file.unlink(missing_ok=True)

    def dump(name: str, rows: list[dict]) -> str:
        path = out_dir / name
        path.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows), encoding="utf-8")
        return str(path)

    if torch.cuda.is_available():
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--dynamo_backend", "no", "--mixed_precision", "bf16"]
    else:  # accelerate launch runs CPU jobs in one process; torchrun starts them (accelerate then uses gloo)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    cmd += ["-m", "training.ml.launch", algorithm, "--config", json.dumps(dataclasses.asdict(algo)),
            "--data", dump("train.jsonl", records), "--output-dir", str(out_dir)]
    if eval_data:
        cmd += ["--eval-data", dump("eval.jsonl", eval_data)]
    if reward_model:
        cmd += ["--reward-model", reward_model]
    if resume_from:
        cmd += ["--resume-from", resume_from]
    rec.line(f"launching {processes} processes: {' '.join(cmd[1:4])} ... -m training.ml.launch {algorithm}")
    log_path = out_dir / "launch.log"  # stderr to a file: a full pipe would block the children
    with open(log_path, "w", encoding="utf-8") as log_file:
        proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE,
                                stderr=log_file, text=True)
    result = None
    for line in proc.stdout:  # noqa: SIM115 - the loop ends when every process has exited
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == "step":
            rec.on_log(event["step"], event["total"], event["metrics"])
            if rec.should_stop():
                stop_file.touch()
        elif event.get("event") == "checkpoint":
            rec.on_checkpoint(event["path"], event["step"])
        elif event.get("event") == "result":
            result = TrainResult(**{k: event[k] for k in ("status", "step", "total_steps", "output_dir",
                                                          "checkpoint_dir", "summary")})
    if proc.wait() != 0 or result is None:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"accelerate launch exited with {proc.returncode} (log {log_path}): {tail}")
    return result


def _finish(run: TrainingRun, rec: _Recorder, result: TrainResult, trained_on: dict, policy_name: str) -> str:
    if rec.lost:  # another worker owns the run now: its outcome is that worker's to write
        logger.warning("training run %s: lost to another worker at step %s; not recording this result", run.pk, result.step)
        return "lost"
    rec.flush()
    if result.status == "stopped":
        services.training_run_stop(run_id=run.pk, step=result.step)
        return RunStatus.CANCELLED
    summary = dict(result.summary, checkpoint_step=result.step)
    if run.kind in (RunKind.SFT, RunKind.RL) and result.output_dir:
        rec.set_phase(RunPhase.EVALUATING)
        summary["samples"] = _show_samples(run, result.output_dir)
    rec.set_phase(RunPhase.SAVING)
    services.training_run_finish(run_id=run.pk, output_dir=result.output_dir, summary=summary, trained_on=trained_on,
                        policy_name=policy_name)
    return RunStatus.DONE


def _show_samples(run: TrainingRun, model_dir: str) -> list[dict]:
    """A few held-out posts summarized greedily by the trained policy, with their reference summary."""
    from .ml.sampling import SamplingConfig, generate_summaries

    data = run_params.split_params(run.kind, dict(run.hyperparameters), model=model_dir)[1]
    if not data.show_samples:
        return []
    posts = selectors.posts_with_references(dataset=run.dataset, eval_fraction=data.eval_fraction,
                                            limit=data.show_samples)
    if not posts:
        return []
    texts = generate_summaries(SamplingConfig(model=model_dir, max_new_tokens=48, max_prompt_length=384,
                                              batch_size=len(posts)), posts)
    return [{"post_id": p["post_id"], "title": p["title"], "post": p["post"][:500], "reference": p["reference"],
             "sample": t} for p, t in zip(posts, texts)]


def _sample(run: TrainingRun, rec: _Recorder, algo, data) -> str:
    from .ml.sampling import generate_summaries

    posts = selectors.posts_for(dataset=run.dataset, held_out=True, eval_fraction=data.eval_fraction,
                                limit=data.n_posts)
    policy = run.base_artifact.policy
    rec.line(f"sampling {len(posts)} held-out posts with {policy} ({algo.model})")
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        rec.on_log(done, total, {"posts_per_s": done / (time.perf_counter() - t0)})

    texts = generate_summaries(algo, posts, on_progress=progress, should_stop=rec.should_stop)
    if rec.lost:
        return "lost"
    if rec.should_stop():
        rec.flush()
        services.training_run_stop(run_id=run.pk, step=rec.step)
        return RunStatus.CANCELLED
    compare_with = [n.strip() for n in data.compare_with.split(",") if n.strip()]
    rec.set_phase(RunPhase.SAVING)
    counts = services.policy_samples_write(policy=policy, posts=posts, texts=texts, compare_with=compare_with)
    rec.flush()
    services.training_run_finish(run_id=run.pk, output_dir="", summary=dict(counts, posts=len(posts), policy=policy.name),
                        trained_on={}, extra_log=f"wrote {counts}")
    return RunStatus.DONE
