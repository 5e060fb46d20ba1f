"""Hyperparameters of each run kind: the algorithm's config dataclass plus the data selection.

A run stores one flat dict (`TrainingRun.hyperparameters`); `split_params` turns it back into the
algorithm config and the data parameters, rejecting unknown keys and values outside the ranges
declared beside each field (`training.ml.common.ranged`) with a message naming the field.
`check_base_checkpoint` is the rule for a run's base checkpoint (never an arbitrary server path).

No Django here: the services pass in what comes from settings (ARTIFACT_ROOT, the process limit).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from .ml.common import ConfigValueError, config_from_dict, field_docs, field_limits, ranged
from .ml.reward import RewardConfig
from .ml.rl import RLConfig
from .ml.sampling import SamplingConfig
from .ml.sft import SFTConfig


@dataclass
class DataParams:
    eval_fraction: float = ranged(0.2, min=0.0, max=0.95)
    """Share of posts held out (split by post): RM accuracy is measured on their human labels; sampling uses them."""
    max_examples: int = ranged(0, min=0, max=100_000_000)
    """Train on at most this many examples / pairs / prompts (0: all)."""
    n_posts: int = ranged(64, min=1, max=1_000_000)
    """Sampling: held-out posts to write summaries for."""
    compare_with: str = ranged("", max_len=10_000)
    """Sampling: comma-separated policy names to compare against (empty: every other policy with a summary of the post)."""
    policy_name: str = ranged("", max_len=200)
    """SFT / RL: name of the Policy the trained model writes as (empty: derived from the run)."""
    hybrid_campaign: str = ranged("", max_len=200)
    """Reward, hybrid labels: take human labels only on this campaign's pairs (e.g. one routed from AI uncertainty); empty: every human label."""
    show_samples: int = ranged(4, min=0, max=64)
    """SFT / RL: held-out posts the trained policy summarizes at the end, shown on the run's page beside the reference (0: none)."""
    num_processes: int = ranged(1, min=1, max=1_024)
    """Processes (one per GPU) under `accelerate launch`; 1 trains inside the worker process. The
    services also cap it at settings.TRAINING_MAX_PROCESSES (the GPUs of one worker machine)."""


ALGORITHM_CONFIGS = {"sft": SFTConfig, "reward": RewardConfig, "rl": RLConfig, "sample": SamplingConfig}
DATA_FIELDS = {
    "sft": ["eval_fraction", "max_examples", "policy_name", "show_samples", "num_processes"],
    "reward": ["eval_fraction", "max_examples", "num_processes", "hybrid_campaign"],
    "rl": ["eval_fraction", "max_examples", "policy_name", "show_samples", "num_processes"],
    "sample": ["eval_fraction", "n_posts", "compare_with"],
}
HIDDEN = {"model"}  # set from the run's base checkpoint


def param_specs(kind: str) -> list[dict]:
    """Name, default, type and help of every hyperparameter of a kind (for forms and the CLI)."""
    cls = ALGORITHM_CONFIGS[kind]
    specs = []
    for source, names in ((cls, None), (DataParams, DATA_FIELDS[kind])):
        docs, defaults = field_docs(source), source()
        for f in dataclasses.fields(source):
            if f.name in HIDDEN or (names is not None and f.name not in names):
                continue
            specs.append({"name": f.name, "default": getattr(defaults, f.name), "help": docs.get(f.name, ""),
                          "group": "data" if source is DataParams else "algorithm",
                          "limits": field_limits(source).get(f.name, {})})
    return specs


TASK_DEFAULTS: dict[str, dict[str, dict]] = {
    "dialogue": {"reward": {"batch_size": 32}},
    "harmless": {"reward": {"batch_size": 32}},
}
"""Defaults that depend on the dataset's task: the paper trains dialogue (HH) reward models with
batch 32 (128 for summarization, the config's own default)."""


def defaults(kind: str, task: str | None = None) -> dict:
    """Every hyperparameter of a kind with its default, for a dataset of `task` when given."""
    out = {s["name"]: s["default"] for s in param_specs(kind)}
    out.update(TASK_DEFAULTS.get(task or "", {}).get(kind, {}))
    return out


def task_default_note(kind: str, name: str) -> str:
    """", 32 on dialogue datasets"-style note for a field whose default depends on the task ("" if none)."""
    notes = [f"{values[kind][name]!r} on {task} datasets" for task, values in TASK_DEFAULTS.items()
             if name in values.get(kind, {})]
    return "; ".join(notes)


def split_params(kind: str, values: dict, *, model: str = "", max_processes: int | None = None):
    """(algorithm config, DataParams) from a run's flat hyperparameters.

    Raises ValueError naming the field: an unknown key, a value of the wrong type, or one outside
    its declared range (ConfigValueError, whose `field` is the field's name). `max_processes`
    caps `num_processes` (the services pass settings.TRAINING_MAX_PROCESSES).
    """
    if kind not in ALGORITHM_CONFIGS:
        raise ValueError(f"kind must be one of {sorted(ALGORITHM_CONFIGS)}, got {kind!r}")
    if not isinstance(values, dict):
        raise ValueError(f"hyperparameters must be an object of field: value, got {type(values).__name__}")
    allowed = {s["name"] for s in param_specs(kind)}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"hyperparameters: unknown field(s) {unknown} for a {kind} run; known: {sorted(allowed)}")
    cls = ALGORITHM_CONFIGS[kind]
    algo_names = {f.name for f in dataclasses.fields(cls)}
    algo = config_from_dict(cls, {k: v for k, v in values.items() if k in algo_names})
    algo.model = model
    data = config_from_dict(DataParams, {k: v for k, v in values.items() if k not in algo_names})
    if max_processes is not None and data.num_processes > max_processes:
        raise ConfigValueError(f"hyperparameters: num_processes must be at most {max_processes} (the GPUs of one "
                               f"worker machine, settings.TRAINING_MAX_PROCESSES), got {data.num_processes}",
                               field="num_processes")
    return algo, data


HF_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?$")
"""A Hugging Face model id: `name` or `org/name` (letters, digits, `-`, `_`, `.`; no `..`)."""


def check_base_checkpoint(value: str, *, artifact_root: str | Path) -> str:
    """The base checkpoint as stored, or ValueError saying why it is refused.

    Allowed: a Hugging Face model id (`org/name`), or an absolute path that lies inside
    `artifact_root` once symlinks and `..` are resolved. Anything else (`/etc`, `../../..`, `~`,
    a relative path that exists next to the process) could make a worker load or list an
    arbitrary server folder, so it is refused. Registered artifacts are given as "artifact:<id>"
    and looked up by the services, not here.
    """
    value = (value or "").strip()
    if not value:
        raise ValueError("base_checkpoint: give a registered artifact, a path inside ARTIFACT_ROOT or a Hugging Face id")
    if "\x00" in value or len(value) > 500:
        raise ValueError("base_checkpoint: at most 500 characters and no NUL character")
    root = Path(artifact_root).resolve()
    if value.startswith("/"):
        resolved = Path(value).resolve()
        if resolved != root and root not in resolved.parents:
            raise ValueError(f"base_checkpoint: {value!r} is outside ARTIFACT_ROOT; give a registered artifact, "
                             "a path inside ARTIFACT_ROOT or a Hugging Face model id (org/name)")
        return str(resolved)
    if HF_MODEL_ID.match(value) and ".." not in value:
        # transformers loads a local folder first when one of that name exists in the working directory
        local = Path(value).resolve()
        if Path(value).exists() and local != root and root not in local.parents:
            raise ValueError(f"base_checkpoint: {value!r} names a folder on this server outside ARTIFACT_ROOT")
        return value
    raise ValueError(f"base_checkpoint: {value!r} is neither a Hugging Face model id (org/name) nor an absolute "
                     "path inside ARTIFACT_ROOT")
