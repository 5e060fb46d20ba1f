"""Supervised fine-tuning of a causal LM on posts and their reference summaries.

Each example is the paper's TL;DR prompt (`SUBREDDIT / TITLE / POST` then `TL;DR:`), or for a
dialogue (HH) the conversation so far then `Assistant:`, followed by " {summary}<eos>" (the
summary, or the assistant's reply); the loss is the next-token cross-entropy on those tokens only.
As for the reward model: dropout off and a linear learning-rate decay to 0 by default.
A plain accelerate loop (bf16 on CUDA, fp32 on CPU, several GPUs under `accelerate launch`)
with cooperative stop and resumable checkpoints; see `common.Hooks`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import common
from .common import Hooks, TrainingDataError, TrainResult, ranged

if TYPE_CHECKING:  # annotations only: torch is imported inside the functions that use it
    import torch


@dataclass
class SFTConfig:
    model: str = ""
    """Base causal LM: a Hugging Face name or a local save_pretrained folder."""
    learning_rate: float = ranged(5e-5, gt=0, max=1.0)
    """The paper gives no SFT settings; 5e-5 follows common TL;DR SFT recipes (Stiennon et al. 2020 scale)."""
    epochs: int = ranged(1, min=1, max=100)
    """Passes over the reference summaries (one, as Stiennon et al. 2020)."""
    batch_size: int = ranged(128, min=1, max=65_536)
    """Examples per optimizer step (the paper's batch size for its RL and RM runs)."""
    micro_batch_size: int = ranged(8, min=1, max=65_536)
    """Examples per forward pass; gradients are accumulated up to batch_size."""
    max_length: int = ranged(512, min=16, max=32_768)
    """Tokens of prompt plus summary; the post is shortened to fit."""
    max_summary_tokens: int = ranged(64, min=1, max=4_096)
    """Summary tokens kept (TL;DR summaries are short); the rest of max_length goes to the prompt."""
    optimizer: str = ranged("adamw", choices=("adamw", "adafactor"))
    """adamw or adafactor."""
    weight_decay: float = ranged(0.0, min=0.0, max=10.0)
    """Decoupled weight decay."""
    lr_scheduler: str = ranged("linear", choices=common.LR_SCHEDULERS)
    """Learning-rate schedule: linear (decays to 0 at the last step; the Trainer's and TRL's default), cosine or constant."""
    warmup_steps: int = ranged(0, min=0, max=10_000_000)
    """Steps of linear warm-up from 0 before the schedule (TRL's default: 0)."""
    disable_dropout: bool = True
    """Train with every dropout probability at 0. Fine-tuning a pretrained LM for one epoch does
    not overfit; with dropout on the policy that RL starts from would not be the one whose
    log-probabilities the KL penalty measures (the summarize-from-feedback reproductions of
    Huang et al. 2024 turn it off for SFT, RM and RL)."""
    max_grad_norm: float = ranged(1.0, gt=0, max=1e6)
    """Gradient clipping."""
    max_steps: int = ranged(0, min=0, max=10_000_000)
    """Stop after this many optimizer steps (0: run all epochs)."""
    checkpoint_every: int = ranged(50, min=1, max=10_000_000)
    """Write a resumable checkpoint every this many steps (and when stopped)."""
    seed: int = ranged(0, min=0, max=2**32 - 1)
    """Seed of the data order and of the initialization of new heads."""
    precision: str = ranged("auto", choices=("auto", "bf16", "fp16", "no"))
    """auto (bf16 on a CUDA GPU, fp32 on CPU), bf16, fp16 or no."""


def _encode(tokenizer, ex: dict, cfg: SFTConfig) -> tuple[list[int], list[int]]:
    summary_ids = tokenizer(" " + ex["summary"].strip(), add_special_tokens=False)["input_ids"][: cfg.max_summary_tokens]
    summary_ids = summary_ids + [tokenizer.eos_token_id]
    prompt = common.fit_record_prompt(tokenizer, ex, cfg.max_length - len(summary_ids))
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"][-(cfg.max_length - len(summary_ids)):]
    return prompt_ids, summary_ids


def _collate(encoded: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    import torch
    width = max(len(p) + len(s) for p, s in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), -100, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, (p, s) in enumerate(encoded):
        seq = p + s
        ids[i, : len(seq)] = torch.tensor(seq)
        labels[i, len(p): len(seq)] = torch.tensor(s)
        mask[i, : len(seq)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _summed_loss(model, batch) -> tuple[torch.Tensor, int]:
    """Sum (not mean) of the token losses, so micro-batches add up to the batch mean exactly."""
    import torch
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    shift_logits, shift_labels = logits[:, :-1].float(), batch["labels"][:, 1:]
    loss = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1), ignore_index=-100, reduction="sum"
    )
    return loss, int((shift_labels != -100).sum())


def reference_loss(model_path: str, examples: list[dict], config: SFTConfig) -> float:
    """Mean token loss of the examples' summaries under a model (e.g. held-out references, before
    and after SFT), with the prompt format and truncation training uses."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path).eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for ex in examples:
            loss, n = _summed_loss(model, _collate([_encode(tokenizer, ex, config)], tokenizer.pad_token_id))
            total, count = total + float(loss), count + n
    return total / max(count, 1)


def validate_examples(examples: list[dict]) -> None:
    if not examples:
        raise TrainingDataError("SFT: no examples (no reference summaries in the selected data)")
    for i, ex in enumerate(examples):
        for key in ("post", "summary"):
            if not isinstance(ex.get(key), str) or not ex[key].strip():
                raise TrainingDataError(f"SFT example {i}: field {key!r} is missing or empty")


def _load_for_training(config: SFTConfig, resume_from: str | None, total: int):
    """(tokenizer, model in train mode, optimizer, scheduler, step to start from)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resume_from or config.model
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(source)
    optimizer, scheduler, start_step = common.prepare_training(model, config, total_steps=total,
                                                               resume_from=resume_from)
    return tokenizer, model, optimizer, scheduler, start_step


def _accumulate_gradients(config: SFTConfig, accelerator, model, pad_id: int, encoded: list,
                          mine: list[int]) -> tuple[float, int]:
    """Backward of the summed token loss over this process's examples divided by their summary
    tokens (so micro-batching does not change the gradient); returns (summed loss, summary tokens)."""
    n_tokens = sum(len(encoded[i][1]) for i in mine)
    loss_sum = 0.0
    for m in range(0, len(mine), config.micro_batch_size):
        micro = _collate([encoded[i] for i in mine[m:m + config.micro_batch_size]], pad_id)
        micro = {k: v.to(accelerator.device) for k, v in micro.items()}
        with accelerator.autocast():
            loss, _ = _summed_loss(model, micro)
        accelerator.backward(loss / n_tokens)
        loss_sum += loss.item()
    return loss_sum, n_tokens


def train_sft(config: SFTConfig, examples: list[dict], output_dir: str | Path, *, hooks: Hooks | None = None,
              resume_from: str | None = None) -> TrainResult:
    """Fine-tune config.model on examples ({subreddit, title, post, summary}); save to output_dir/final."""
    hooks = hooks or Hooks()
    validate_examples(examples)
    output_dir = Path(output_dir)
    ckpt_dir = output_dir / "checkpoint"
    # 1. model, optimizer and schedule (restored from the checkpoint when resuming)
    common.set_seed(config.seed)
    accelerator = common.make_accelerator(config.precision)
    total = common.total_steps(len(examples), config.batch_size, config.epochs, config.max_steps)
    tokenizer, model, optimizer, scheduler, start_step = _load_for_training(config, resume_from, total)
    metrics_extra: dict = {}
    model, optimizer = accelerator.prepare(model, optimizer)
    hooks = common.main_process_hooks(hooks, accelerator)
    # 2. tokenize once
    encoded = [_encode(tokenizer, ex, config) for ex in examples]
    plan = common.batches(len(encoded), config.batch_size, config.epochs, config.seed)
    step = start_step
    for batch_idx in plan[start_step:total]:
        # 3. one optimizer step over the batch
        t0 = time.perf_counter()
        optimizer.zero_grad()
        lr = scheduler.get_last_lr()[0]
        mine = common.shard(batch_idx, accelerator)
        loss_sum, n_tokens = _accumulate_gradients(config, accelerator, model, tokenizer.pad_token_id, encoded, mine)
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        step += 1
        # 4. log, checkpoint, stop when asked
        elapsed = time.perf_counter() - t0
        all_tokens = sum(len(encoded[i][0]) + len(encoded[i][1]) for i in batch_idx)
        hooks.on_log(step, total, {"loss": loss_sum / n_tokens, "grad_norm": float(grad_norm),
                                   "tokens_per_s": all_tokens / elapsed, "lr": lr})
        stop = hooks.should_stop()
        if stop or step % config.checkpoint_every == 0:
            common.save_checkpoint(ckpt_dir, model=model, tokenizer=tokenizer, optimizer=optimizer, step=step,
                                   accelerator=accelerator, extra=metrics_extra, scheduler=scheduler)
            hooks.on_checkpoint(str(ckpt_dir), step)
        if stop:
            return TrainResult("stopped", step, total, checkpoint_dir=str(ckpt_dir))
    # 5. save
    final = common.save_final(output_dir / "final", model=model, tokenizer=tokenizer, accelerator=accelerator,
                              info={"algorithm": "sft", "config": asdict(config), "examples": len(examples)})
    return TrainResult("done", step, total, output_dir=final, summary={"examples": len(examples), "steps": step,
                                                                   "processes": accelerator.num_processes})
