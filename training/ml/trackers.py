"""Experiment trackers for training runs through accelerate's tracker classes: TensorBoard,
Weights & Biases and MLflow. No Django.

Off by default: the runner opens the trackers named in the `TRAINING_TRACKERS` setting (e.g.
"tensorboard,mlflow"), and only those whose package is installed on the worker (the project does
not depend on them). Each tracker is configured the way its package usually is: TensorBoard and
MLflow write under `logging_dir` (MLflow honours MLFLOW_TRACKING_URI instead when set), W&B reads
WANDB_API_KEY / WANDB_MODE from the environment. A tracker that cannot start or log is dropped with
a note in the run's log; it never fails the run.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

logger = logging.getLogger(__name__)

PROJECT = "rlaif-studio"


def _tensorboard(run_name: str, logging_dir: Path):
    from accelerate.tracking import TensorBoardTracker

    return TensorBoardTracker(run_name, str(logging_dir / "tensorboard"))


def _wandb(run_name: str, logging_dir: Path):
    from accelerate.tracking import WandBTracker

    return WandBTracker(PROJECT, name=run_name, dir=str(logging_dir))


def _mlflow(run_name: str, logging_dir: Path):
    from accelerate.tracking import MLflowTracker

    return MLflowTracker(experiment_name=PROJECT, logging_dir=str(logging_dir / "mlruns"), run_name=run_name)


def _installed(name: str) -> bool:
    from accelerate.utils import is_mlflow_available, is_tensorboard_available, is_wandb_available

    return {"tensorboard": is_tensorboard_available, "wandb": is_wandb_available,
            "mlflow": is_mlflow_available}[name]()


#: name -> (is it installed?, factory(run_name, logging_dir) -> an accelerate GeneralTracker)
REGISTRY: dict[str, tuple[Callable[[], bool], Callable]] = {
    name: (lambda name=name: _installed(name), factory)
    for name, factory in (("tensorboard", _tensorboard), ("wandb", _wandb), ("mlflow", _mlflow))
}


def parse_names(value: str | Iterable[str]) -> list[str]:
    """"tensorboard, mlflow" or a list -> ["tensorboard", "mlflow"] (lower case, no blanks, no repeats)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return list(dict.fromkeys(s.strip().lower() for s in items if s and s.strip()))


class Trackers:
    """The open trackers of one run: `log` numeric metrics by step, `finish` at the end."""

    def __init__(self, trackers: list, notes: list[str]):
        self.trackers = trackers
        self.notes = notes

    @property
    def names(self) -> list[str]:
        return [getattr(t, "name", type(t).__name__) for t in self.trackers]

    def _each(self, what: str, call: Callable) -> None:
        for t in list(self.trackers):
            try:
                call(t)
            except Exception as exc:  # a tracker's failure must not fail the training run
                logger.warning("tracker %s failed to %s: %s", getattr(t, "name", t), what, exc)
                self.notes.append(f"tracker {getattr(t, 'name', t)} stopped: could not {what} ({type(exc).__name__})")
                self.trackers.remove(t)

    def log(self, metrics: dict, step: int) -> None:
        values = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if values:
            self._each("log", lambda t: t.log(values, step=step))

    def finish(self) -> None:
        self._each("finish", lambda t: t.finish())


def open_trackers(names: Iterable[str], *, run_name: str, logging_dir: str | Path, config: dict) -> Trackers:
    """Start the named trackers that are installed; `notes` say which were skipped and why."""
    opened, notes = [], []
    for name in parse_names(names):
        if name not in REGISTRY:
            notes.append(f"tracker {name!r} is unknown (known: {', '.join(REGISTRY)}); skipped")
            continue
        available, factory = REGISTRY[name]
        if not available():
            notes.append(f"tracker {name} is not installed on this worker; skipped")
            continue
        try:
            tracker = factory(run_name, Path(logging_dir))
            tracker.start()
            tracker.store_init_configuration({k: v for k, v in config.items() if isinstance(v, (int, float, str, bool))})
        except Exception as exc:
            logger.warning("tracker %s could not start: %s", name, exc)
            notes.append(f"tracker {name} could not start ({type(exc).__name__}); skipped")
            continue
        opened.append(tracker)
    return Trackers(opened, notes)
