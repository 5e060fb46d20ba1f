"""Hyperparameters of each run kind: the algorithm's config dataclass plus the data selection.

A run stores one flat dict (`TrainingRun.hyperparameters`); `split_params` turns it back into the
algorithm config and the data parameters, rejecting unknown keys with a message naming them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .ml.common import config_from_dict, field_docs
from .ml.reward import RewardConfig
from .ml.rl import RLConfig
from .ml.sampling import SamplingConfig
from .ml.sft import SFTConfig


@dataclass
class DataParams:
    eval_fraction: float = 0.2
    """Share of posts held out (split by post): RM accuracy is measured on their human labels; sampling uses them."""
    max_examples: int = 0
    """Train on at most this many examples / pairs / prompts (0: all)."""
    n_posts: int = 64
    """Sampling: held-out posts to write summaries for."""
    compare_with: str = ""
    """Sampling: comma-separated policy names to compare against (empty: every other policy with a summary of the post)."""
    policy_name: str = ""
    """SFT / RL: name of the Policy the trained model writes as (empty: derived from the run)."""
    num_processes: int = 1
    """Processes (one per GPU) under `accelerate launch`; 1 trains inside the worker process."""


ALGORITHM_CONFIGS = {"sft": SFTConfig, "reward": RewardConfig, "rl": RLConfig, "sample": SamplingConfig}
DATA_FIELDS = {
    "sft": ["eval_fraction", "max_examples", "policy_name", "num_processes"],
    "reward": ["eval_fraction", "max_examples", "num_processes"],
    "rl": ["eval_fraction", "max_examples", "policy_name", "num_processes"],
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
                          "group": "data" if source is DataParams else "algorithm"})
    return specs


def defaults(kind: str) -> dict:
    return {s["name"]: s["default"] for s in param_specs(kind)}


def split_params(kind: str, values: dict, *, model: str = ""):
    """(algorithm config, DataParams) from a run's flat hyperparameters."""
    if kind not in ALGORITHM_CONFIGS:
        raise ValueError(f"kind must be one of {sorted(ALGORITHM_CONFIGS)}, got {kind!r}")
    allowed = {s["name"] for s in param_specs(kind)}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"hyperparameters: unknown field(s) {unknown} for a {kind} run; known: {sorted(allowed)}")
    cls = ALGORITHM_CONFIGS[kind]
    algo_names = {f.name for f in dataclasses.fields(cls)}
    algo = config_from_dict(cls, {k: v for k, v in values.items() if k in algo_names})
    algo.model = model
    data = config_from_dict(DataParams, {k: v for k, v in values.items() if k not in algo_names})
    return algo, data
