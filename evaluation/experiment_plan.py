"""The paper in miniature: presets of the RLAIF-versus-RLHF experiment and the figures to compare with.

Plain data, no Django. A preset names every size of the loop (how many comparisons each labeler
config labels, the reward-model, SFT, RL and sampling settings); `evaluation/experiments.py` runs
it as ordinary AI labeling jobs and training runs. The figures of Lee et al. 2023 that the report
puts beside ours are here too.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Preset:
    """Sizes of one experiment. Every step is an ordinary job or run of the app."""

    name: str
    """The name `run_experiment --preset` takes."""
    description: str
    """One line shown on the new-experiment page."""
    dataset: str = "tldr"
    """Dataset whose human comparisons and reference summaries the loop uses."""
    eval_fraction: float = 0.3
    """Share of posts held out (by post digest, as every training run splits): reward-model
    accuracy is measured and policies are sampled on held-out posts only."""
    labeler_configs: tuple[str, ...] = ()
    """Labeler configs that label the same training-side comparisons (paper, Tables 2 and 4)."""
    n_label: dict[str, int] = field(default_factory=dict)
    """Comparisons each config labels (the first N of the training side, in id order)."""
    judge_config: str = ""
    """The AI labeler that judges the policies head to head (paper, Table 1)."""
    rm_base: str = "minilm-l6 (pretrained encoder)"
    """Base artifact of both reward models."""
    rm_params: dict = field(default_factory=dict)
    """Reward-model hyperparameters (both RMs; max_examples is set to the RLAIF RM's label count)."""
    policy_base: str = "smollm2-135m-instruct"
    """Base artifact of the SFT policy."""
    sft_params: dict = field(default_factory=dict)
    rl_params: dict = field(default_factory=dict)
    """REINFORCE with the KL penalty to SFT, against each reward model."""
    direct_rlaif: bool = True
    """Also train a policy with the judge config's 1-10 rating as the reward (direct RLAIF)."""
    direct_params: dict = field(default_factory=dict)
    n_eval_posts: int = 24
    """Held-out posts every policy summarizes for the win rates."""
    sample_params: dict = field(default_factory=dict)
    n_show: int = 5
    """Sampled summaries the report shows per policy (the same posts for each)."""

    def sizes(self) -> dict:
        """Everything that sets the run time, for printing and the page."""
        return asdict(self)


PRESETS: dict[str, Preset] = {
    "tldr-mini": Preset(
        name="tldr-mini",
        description=("The whole loop on the shipped TL;DR data with SmolLM2-135M-Instruct on a 2-core CPU "
                     "(18 min measured on a quiet machine)."),
        labeler_configs=("smollm2-base-0shot", "smollm2-detailed-2shot", "smollm2-detailed-cot-0shot",
                         "smollm2-detailed-cot-sc4"),
        n_label={"smollm2-base-0shot": 64, "smollm2-detailed-2shot": 32, "smollm2-detailed-cot-0shot": 12,
                 "smollm2-detailed-cot-sc4": 4},
        judge_config="smollm2-base-0shot",
        rm_params={"epochs": 2, "batch_size": 16, "micro_batch_size": 16, "max_length": 384,
                   "learning_rate": 5e-5},
        sft_params={"max_steps": 12, "batch_size": 8, "micro_batch_size": 4, "max_length": 256,
                    "max_summary_tokens": 48, "learning_rate": 1e-4, "max_examples": 400},
        rl_params={"max_steps": 4, "batch_size": 8, "max_new_tokens": 32, "max_prompt_length": 224,
                   "max_examples": 64},
        direct_params={"max_steps": 3, "batch_size": 8, "max_new_tokens": 32, "max_prompt_length": 224,
                       "max_examples": 64},
        n_eval_posts=16,
        sample_params={"max_new_tokens": 48, "max_prompt_length": 256, "batch_size": 8},
    ),
    "tldr-gpu": Preset(
        name="tldr-gpu",
        description="A larger run for a GPU worker: every shipped comparison labelled, paper-sized batches.",
        labeler_configs=("smollm2-base-0shot", "smollm2-detailed-2shot", "smollm2-detailed-cot-0shot",
                         "smollm2-detailed-cot-sc4"),
        n_label={"smollm2-base-0shot": 100_000, "smollm2-detailed-2shot": 100_000,
                 "smollm2-detailed-cot-0shot": 400, "smollm2-detailed-cot-sc4": 200},
        judge_config="smollm2-base-0shot",
        rm_params={"epochs": 2, "batch_size": 32, "micro_batch_size": 32, "max_length": 1024, "learning_rate": 5e-5},
        sft_params={"epochs": 1, "batch_size": 32, "micro_batch_size": 16, "max_length": 512, "learning_rate": 5e-5},
        rl_params={"max_steps": 200, "batch_size": 32, "max_new_tokens": 64, "max_prompt_length": 512},
        direct_params={"max_steps": 100, "batch_size": 32, "max_new_tokens": 64, "max_prompt_length": 512},
        n_eval_posts=256,
        sample_params={"max_new_tokens": 64, "max_prompt_length": 512, "batch_size": 32},
    ),
    "tiny": Preset(
        name="tiny",
        description="A smoke run of the whole loop on the random-weight tiny models (a minute; its figures are noise).",
        eval_fraction=0.1,
        labeler_configs=("tiny-local",), n_label={"tiny-local": 24}, judge_config="tiny-local",
        policy_base="tiny-gpt2",
        rm_params={"epochs": 1, "batch_size": 8, "micro_batch_size": 8, "max_length": 128},
        sft_params={"max_steps": 2, "batch_size": 4, "micro_batch_size": 4, "max_length": 128, "max_examples": 16},
        rl_params={"max_steps": 1, "batch_size": 4, "max_new_tokens": 8, "max_prompt_length": 96, "max_examples": 8},
        direct_params={"max_steps": 1, "batch_size": 4, "max_new_tokens": 8, "max_prompt_length": 96,
                       "max_examples": 8},
        n_eval_posts=6, n_show=2,
        sample_params={"max_new_tokens": 8, "max_prompt_length": 96, "batch_size": 6},
    ),
}


def preset_get(name: str) -> Preset:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r} (have: {', '.join(PRESETS)})")
    return PRESETS[name]


# --- the paper's figures (Lee et al. 2023), in % -------------------------------------------------

PAPER_POSITION_BIAS = {"PaLM 2 L": 18, "PaLM 2 S": 21, "PaLM 2 XS": 56}
PAPER_RM_ACCURACY = {"human": 79.3, "ai": 74.2}  # summarization, Table 3 shape
# (policy X, policy Y) -> (win rate of X, length-corrected), summarization, human judges.
PAPER_WIN_RATES = {
    ("rlaif", "sft"): (71, 59),
    ("rlhf", "sft"): (73, 61),
    ("rlaif", "rlhf"): (50, 47),
    ("direct", "sft"): (74, 65),
    ("direct", "rlaif"): (60, 56),
}
