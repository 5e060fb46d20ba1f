"""What the three training loops share: hooks, devices, optimizers, checkpoints, prompt format.

No Django here. The loops call `Hooks` so that the caller (a Celery task, the `train` command, a
test) sees progress, can ask for a cooperative stop, and learns where the last resumable
checkpoint is. Checkpoints are plain `save_pretrained` folders plus a `trainer_state.pt` file
(optimizer, step, RNG), so a checkpoint is also a loadable Hugging Face model.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import math
import random
import shutil
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from labeling import formats


STATE_FILE = "trainer_state.pt"


def no_grad(fn: Callable) -> Callable:
    """`torch.no_grad()` as a decorator that imports torch only when called.

    torch is imported inside functions throughout training/ml so that importing a config
    dataclass (the Django forms and services do) does not load torch into every web process.
    """
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


@dataclass
class Hooks:
    """Callbacks a loop calls; all optional."""

    on_log: Callable[[int, int, dict], None] = _noop
    """Called after each optimizer step with (step, total_steps, metrics of that step)."""
    should_stop: Callable[[], bool] = lambda: False
    """Polled after each step; True stops the loop cooperatively (after a checkpoint is saved)."""
    on_checkpoint: Callable[[str, int], None] = _noop
    """Called with (checkpoint folder, step) after each resumable checkpoint is written."""


@dataclass
class TrainResult:
    status: str
    """"done" or "stopped" (cooperative stop)."""
    step: int
    total_steps: int
    output_dir: str | None = None
    """The final save_pretrained folder (None when stopped)."""
    checkpoint_dir: str | None = None
    summary: dict = field(default_factory=dict)
    """Final figures, e.g. held-out accuracy."""


class TrainingDataError(ValueError):
    """The data handed to a loop cannot be trained on (empty, malformed); the message says why."""


# --- allowed values of config fields ----------------------------------------------------------


def ranged(default: Any, *, min: float | None = None, max: float | None = None, gt: float | None = None,
           choices: tuple | list | None = None, max_len: int | None = None) -> Any:
    """A config dataclass field whose allowed values are declared beside it.

    `min` / `max` are inclusive bounds, `gt` an exclusive lower bound (e.g. a learning rate that
    must be positive), `choices` the only values a string field takes, `max_len` the longest string
    (no NUL character is ever allowed in a string field). `check_ranges` (called by
    `config_from_dict`, hence by every path that builds a config from user input: the run form,
    the admin, `manage.py train --set`, the services and `training.ml.launch`) enforces them:

        batch_size: int = ranged(128, min=1, max=65_536)
        '''Examples per optimizer step.'''

    Write the attribute docstring under the field as usual; `field_docs` still finds it.
    """
    limits = {k: v for k, v in (("min", min), ("max", max), ("gt", gt), ("max_len", max_len)) if v is not None}
    if choices is not None:
        limits["choices"] = tuple(choices)
    return field(default=default, metadata={"limits": limits})


def field_limits(cls: type) -> dict[str, dict]:
    """{field name: its declared limits} for the fields of a config dataclass declared with `ranged`."""
    return {f.name: dict(f.metadata["limits"]) for f in dataclasses.fields(cls) if "limits" in f.metadata}


class ConfigValueError(ValueError):
    """A config value outside its declared range; `field` names the field at fault."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def check_value(name: str, value: Any, limits: dict, *, where: str = "hyperparameters") -> None:
    """Raise ConfigValueError (naming the field) when `value` is outside `limits` (see `ranged`)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ConfigValueError(f"{where}: {name} must not contain a NUL character", field=name)
        if "max_len" in limits and len(value) > limits["max_len"]:
            raise ConfigValueError(f"{where}: {name} must be at most {limits['max_len']} characters, got {len(value)}",
                                   field=name)
    if "choices" in limits:
        if value not in limits["choices"]:
            raise ConfigValueError(f"{where}: {name} must be one of {list(limits['choices'])}, got {value!r}", field=name)
        return
    if isinstance(value, str):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigValueError(f"{where}: {name} must be a finite number, got {value!r}", field=name)
    if "gt" in limits and not value > limits["gt"]:
        raise ConfigValueError(f"{where}: {name} must be greater than {limits['gt']}, got {value!r}", field=name)
    if "min" in limits and value < limits["min"]:
        raise ConfigValueError(f"{where}: {name} must be at least {limits['min']}, got {value!r}", field=name)
    if "max" in limits and value > limits["max"]:
        raise ConfigValueError(f"{where}: {name} must be at most {limits['max']:,}, got {value!r}", field=name)


def check_ranges(config: Any, *, where: str = "hyperparameters") -> None:
    """Check every `ranged` field of a config dataclass instance; the first bad one raises ConfigValueError."""
    for name, limits in field_limits(type(config)).items():
        check_value(name, getattr(config, name), limits, where=where)


# --- config docs -----------------------------------------------------------------------------


def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass (the string literal under each field)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                    docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def config_from_dict(cls: type, values: dict | None, *, where: str = "hyperparameters") -> Any:
    """Build a config dataclass from a dict, rejecting unknown keys, casting to the field types and
    checking the declared ranges (`ranged`); errors are ValueErrors whose message names the field."""
    values = dict(values or {})
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown} for {cls.__name__}; known: {sorted(known)}")
    kwargs = {}
    defaults = cls()
    for name, raw in values.items():
        default = getattr(defaults, name)
        try:
            if isinstance(default, bool):
                kwargs[name] = raw if isinstance(raw, bool) else str(raw).lower() in {"1", "true", "yes", "on"}
            elif isinstance(default, int) and not isinstance(default, bool):
                kwargs[name] = int(raw)
            elif isinstance(default, float):
                kwargs[name] = float(raw)
            elif isinstance(default, str) and not isinstance(raw, str):
                raise TypeError(name)
            else:
                kwargs[name] = raw
        except (TypeError, ValueError, OverflowError) as exc:
            raise ConfigValueError(f"{where}: field {name!r} of {cls.__name__} expects {type(default).__name__}, "
                                   f"got {raw!r}", field=name) from exc
    config = cls(**kwargs)
    check_ranges(config, where=where)
    return config


# --- devices, seeds, optimizers -------------------------------------------------------------


def make_accelerator(precision: str = "auto"):
    """An accelerate.Accelerator: bf16 on a CUDA GPU that supports it, fp32 on CPU.

    Run under `accelerate launch` for several GPUs; in a single process this is a thin wrapper.
    """
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    # The state is a process-wide singleton; reset it so runs with other precisions can follow.
    AcceleratorState._reset_state(reset_partial_state=False)
    # cpu=True lets accelerate see a torchrun-launched CPU job as multi-process (gloo).
    return Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available())


def shard(batch_idx: list[int], accelerator) -> list[int]:
    """This process's share of a batch under `accelerate launch` (the whole batch in one process)."""
    if accelerator.num_processes == 1:
        return batch_idx
    return batch_idx[accelerator.process_index::accelerator.num_processes] or batch_idx[:1]


def main_process_hooks(hooks: Hooks, accelerator) -> Hooks:
    """Hooks that only the main process runs; its stop decision is broadcast to every process."""
    if accelerator.num_processes == 1:
        return hooks
    from accelerate.utils import broadcast_object_list

    def should_stop() -> bool:
        flag = [hooks.should_stop() if accelerator.is_main_process else False]
        broadcast_object_list(flag)
        return bool(flag[0])

    def on_log(*args) -> None:
        if accelerator.is_main_process:
            hooks.on_log(*args)

    def on_checkpoint(*args) -> None:
        if accelerator.is_main_process:
            hooks.on_checkpoint(*args)

    return Hooks(on_log=on_log, should_stop=should_stop, on_checkpoint=on_checkpoint)


def set_seed(seed: int) -> None:
    import torch
    random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0):
    import torch
    if name == "adamw":
        # fused: one kernel per step for all parameters (CPU and CUDA), as the Trainer's default adamw_torch_fused
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(params, lr=lr, scale_parameter=False, relative_step=False, warmup_init=False,
                         weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'adamw' or 'adafactor', got {name!r}")


LR_SCHEDULERS = ("linear", "cosine", "constant")


def make_scheduler(name: str, optimizer, *, warmup_steps: int, total_steps: int):
    """transformers' learning-rate schedule `name` over total_steps optimizer steps.

    "linear" (the Trainer's, hence TRL's, default) warms up for warmup_steps, then decays to 0 at
    the last step; "constant" keeps the rate after the warm-up. Call `.step()` after each
    optimizer step; the state goes into checkpoints, so a resumed run continues the same curve.
    """
    from transformers import get_scheduler

    if name not in LR_SCHEDULERS:
        raise ValueError(f"lr_scheduler must be one of {list(LR_SCHEDULERS)}, got {name!r}")
    kind = "constant_with_warmup" if name == "constant" else name
    return get_scheduler(kind, optimizer, num_warmup_steps=warmup_steps, num_training_steps=max(1, total_steps))


def prepare_training(model, config: Any, *, total_steps: int, resume_from: str | None):
    """Dropout off (if the config says so), train mode, the config's optimizer and LR schedule, and the
    optimizer/scheduler/RNG state of a checkpoint to resume from: (optimizer, scheduler, start step)."""
    import torch

    if config.disable_dropout:
        disable_dropout(model)
    model.train()
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.learning_rate, config.weight_decay)
    scheduler = make_scheduler(config.lr_scheduler, optimizer, warmup_steps=config.warmup_steps,
                               total_steps=total_steps)
    if not resume_from:
        return optimizer, scheduler, 0
    state = load_trainer_state(resume_from)
    optimizer.load_state_dict(state["optimizer"])
    if state.get("scheduler"):
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    return optimizer, scheduler, state["step"]


def disable_dropout(model) -> int:
    """Set the probability of every dropout module to 0 (TRL's `disable_dropout_in_model`); returns
    how many there were. The attention kernels read `module.p`, so attention dropout goes too."""
    import torch

    n = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
            n += 1
    return n


def epoch_order(n: int, epoch: int, seed: int) -> list[int]:
    """A deterministic shuffle per epoch, so a resumed run sees the batches it had not seen."""
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def batches(n: int, batch_size: int, epochs: int, seed: int) -> list[list[int]]:
    """All batches of all epochs, in order (the last partial batch of an epoch is kept)."""
    out = []
    for epoch in range(epochs):
        order = epoch_order(n, epoch, seed)
        out.extend(order[i:i + batch_size] for i in range(0, n, batch_size))
    return out


def total_steps(n: int, batch_size: int, epochs: int, max_steps: int = 0) -> int:
    steps = epochs * math.ceil(n / batch_size)
    return min(steps, max_steps) if max_steps > 0 else steps


# --- checkpoints ----------------------------------------------------------------------------


def save_checkpoint(ckpt_dir: str | Path, *, model, tokenizer, optimizer, step: int, extra: dict | None = None,
                    accelerator=None, scheduler=None) -> str:
    """Write a resumable checkpoint atomically: a temp folder renamed over the previous one."""
    import torch
    ckpt_dir = Path(ckpt_dir)
    if accelerator is not None:
        accelerator.wait_for_everyone()
        if not accelerator.is_main_process:
            return str(ckpt_dir)
    tmp = ckpt_dir.with_name(ckpt_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    unwrapped = accelerator.unwrap_model(model) if accelerator is not None else model
    unwrapped.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    torch.save({"optimizer": optimizer.state_dict(), "step": step, "extra": extra or {},
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "torch_rng": torch.get_rng_state()}, tmp / STATE_FILE)
    old = ckpt_dir.with_name(ckpt_dir.name + ".old")
    if ckpt_dir.exists():
        if old.exists():
            shutil.rmtree(old)
        ckpt_dir.rename(old)
    tmp.rename(ckpt_dir)
    if old.exists():
        shutil.rmtree(old)
    return str(ckpt_dir)


def load_trainer_state(ckpt_dir: str | Path) -> dict:
    import torch
    path = Path(ckpt_dir) / STATE_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trainer state; is {ckpt_dir} a checkpoint written by this project?")
    return torch.load(path, map_location="cpu", weights_only=False)


def save_final(out_dir: str | Path, *, model, tokenizer, info: dict, accelerator=None) -> str:
    out_dir = Path(out_dir)
    if accelerator is not None:
        accelerator.wait_for_everyone()
        if not accelerator.is_main_process:
            return str(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    unwrapped = accelerator.unwrap_model(model) if accelerator is not None else model
    unwrapped.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / "rlaif_training.json").write_text(json.dumps(info, indent=2, default=str))
    return str(out_dir)


# --- the prompt format (the paper's TL;DR format) -------------------------------------------


format_prompt = formats.format_tldr_prompt  # `SUBREDDIT / TITLE / POST` then `TL;DR:`; one home: labeling.formats


def fit_prompt(tokenizer, subreddit: str, title: str, post: str, max_tokens: int) -> str:
    """The prompt, with the post shortened (from its end) so the whole prompt fits max_tokens."""
    prompt = format_prompt(subreddit, title, post)
    n = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    if n <= max_tokens:
        return prompt
    post_ids = tokenizer(post, add_special_tokens=False)["input_ids"]
    keep = max(0, len(post_ids) - (n - max_tokens) - 2)
    while True:
        short = tokenizer.decode(post_ids[:keep]).rstrip() + " …"
        prompt = format_prompt(subreddit, title, short)
        if keep == 0 or len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) <= max_tokens:
            return prompt
        keep = max(0, keep - 8)


def fit_dialogue_prompt(tokenizer, context: str, max_tokens: int) -> str:
    """The dialogue prompt (context, then `Assistant:`), with the oldest turns cut so it fits max_tokens.

    A dialogue is shortened from its start, not its end: the last human turn is what the reply answers.
    """
    prompt = formats.format_dialogue_prompt(context)
    n = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    if n <= max_tokens:
        return prompt
    ids = tokenizer(context.rstrip(), add_special_tokens=False)["input_ids"]
    keep = max(0, len(ids) - (n - max_tokens) - 2)
    while True:
        short = "… " + tokenizer.decode(ids[len(ids) - keep:] if keep else []).lstrip()
        prompt = formats.format_dialogue_prompt(short)
        if keep == 0 or len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) <= max_tokens:
            return prompt
        keep = max(0, keep - 8)


def fit_record_prompt(tokenizer, record: dict, max_tokens: int) -> str:
    """The policy prompt of a record ({subreddit, title, post}, optional task) fitted to max_tokens:
    the TL;DR prompt for a post, the dialogue prompt for an HH conversation (`labeling.formats`)."""
    subreddit, title = record.get("subreddit", "") or "", record.get("title", "") or ""
    task = record.get("task") or None
    if formats.is_dialogue_task(task) if task else formats.is_dialogue(subreddit, title):
        return fit_dialogue_prompt(tokenizer, record["post"], max_tokens)
    return fit_prompt(tokenizer, subreddit, title, record["post"], max_tokens)
