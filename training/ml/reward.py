"""Reward model: a scalar head on a checkpoint, trained on preference pairs with soft labels.

Loss (the paper's): cross-entropy between softmax(r_A, r_B) and the label (p, 1 - p), where p is
the AI labeler's p(A) for AI labels and 1 or 0 for human labels:

    loss = -[p * log sigma(r_A - r_B) + (1 - p) * log sigma(r_B - r_A)]

TRL's RewardTrainer only takes hard (chosen, rejected) pairs, hence this loop; with hard labels
it computes what TRL computes, with TRL's defaults: dropout off, the learning rate decayed
linearly to 0 without warm-up, AdamW, grad-norm clip 1.0, the same sequence-classification head
(`AutoModelForSequenceClassification`, one output: BERT-like encoders pool the first token, causal
LMs the last non-pad one). Both texts of a pair go through the model in the same forward pass;
a batch's pairs are grouped into micro-batches of similar length (fewer pad tokens than padding
the whole batch to its longest text, as TRL does; the gradient is the same), and token ids are
kept as compact int32 arrays. Inputs are `prompt + " " + response` (the TL;DR prompt, or the
dialogue context then `Assistant:` for HH), cut to max_length by shortening the post (TL;DR) or
the oldest turns (dialogue), never the response; TRL instead drops pairs longer than its
max_length. Accuracy is reported on held-out human labels,
for all of them and for the high-confidence subset (confidence 1, 2, 8, 9), beside the two trivial
baselines ("prefer the longer summary", "prefer the one sharing more distinct words with the post").
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from labeling import formats

from . import common
from .common import Hooks, TrainingDataError, TrainResult, ranged

if TYPE_CHECKING:  # annotations only: torch is imported inside the functions that use it
    import torch

HIGH_CONFIDENCE = formats.HIGH_CONFIDENCE


@dataclass
class RewardConfig:
    model: str = ""
    """Backbone checkpoint (e.g. the MiniLM encoder, or an SFT policy); a new scalar head is added."""
    learning_rate: float = ranged(1e-5, gt=0, max=1.0)
    """The paper's reward-model learning rate."""
    epochs: int = ranged(2, min=1, max=100)
    """The paper trains 2-3 epochs."""
    batch_size: int = ranged(128, min=1, max=65_536)
    """Pairs per optimizer step (the paper's 128 for summarization)."""
    micro_batch_size: int = ranged(4, min=1, max=65_536)
    """Pairs per forward pass (pairs of similar length go together); gradients are accumulated up to
    batch_size, so this bounds memory without changing the result."""
    max_length: int = ranged(1152, min=16, max=32_768)
    """Tokens per (post, summary) input, the paper's 1,152; capped at the backbone's own limit."""
    optimizer: str = ranged("adamw", choices=("adamw", "adafactor"))
    """adamw or adafactor."""
    weight_decay: float = ranged(0.0, min=0.0, max=10.0)
    """Decoupled weight decay."""
    lr_scheduler: str = ranged("linear", choices=common.LR_SCHEDULERS)
    """Learning-rate schedule: linear (decays to 0 at the last step; TRL's default), cosine or constant."""
    warmup_steps: int = ranged(0, min=0, max=10_000_000)
    """Steps of linear warm-up from 0 before the schedule (TRL's default: 0)."""
    disable_dropout: bool = True
    """Train with every dropout probability at 0, as TRL's RewardTrainer does by default: dropout
    makes r_A and r_B noisy, and the pairwise loss only sees their difference."""
    max_grad_norm: float = ranged(1.0, gt=0, max=1e6)
    """Gradient clipping."""
    max_steps: int = ranged(0, min=0, max=10_000_000)
    """Stop after this many optimizer steps (0: run all epochs)."""
    checkpoint_every: int = ranged(50, min=1, max=10_000_000)
    """Write a resumable checkpoint every this many steps (and when stopped)."""
    eval_batch_size: int = ranged(32, min=1, max=65_536)
    """Pairs per forward pass when scoring held-out pairs."""
    seed: int = ranged(0, min=0, max=2**32 - 1)
    """Seed of the data order and of the new head."""
    precision: str = ranged("auto", choices=("auto", "bf16", "fp16", "no"))
    """auto (bf16 on a CUDA GPU, fp32 on CPU), bf16, fp16 or no."""


def soft_label_loss(r_a: torch.Tensor, r_b: torch.Tensor, p_a: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy between softmax(r_A, r_B) and (p_a, 1 - p_a)."""
    import torch.nn.functional as F
    margin = r_a - r_b
    return -(p_a * F.logsigmoid(margin) + (1 - p_a) * F.logsigmoid(-margin)).mean()


# --- input encoding (shared with the benchmark so both trainers see the same token ids) -----------


def model_max_length(tokenizer, model_config, wanted: int) -> int:
    limits = [wanted]
    for attr in ("max_position_embeddings", "n_positions"):
        if getattr(model_config, attr, None):
            limits.append(int(getattr(model_config, attr)))
    if getattr(tokenizer, "model_max_length", None) and tokenizer.model_max_length < 10**9:
        limits.append(int(tokenizer.model_max_length))
    return min(limits)


def encode(tokenizer, ex: dict, summary: str, max_length: int) -> list[int]:
    """Token ids of `prompt + " " + summary` (TL;DR or dialogue prompt, by the record's task); the
    post (or the dialogue's oldest turns) is shortened so the summary always fits."""
    summary_ids = tokenizer(" " + summary.strip(), add_special_tokens=False)["input_ids"][: max_length // 2]
    n_special = len(tokenizer("", add_special_tokens=True)["input_ids"])
    budget = max(8, max_length - len(summary_ids) - n_special)
    prompt = common.fit_record_prompt(tokenizer, ex, budget)
    text = prompt + " " + summary.strip()
    return tokenizer(text, truncation=True, max_length=max_length)["input_ids"]


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int, side: str = "right") -> dict[str, torch.Tensor]:
    import torch
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        row = torch.as_tensor(s, dtype=torch.long)
        if side == "right":
            ids[i, : len(s)], mask[i, : len(s)] = row, 1
        else:
            ids[i, width - len(s):], mask[i, width - len(s):] = row, 1
    return {"input_ids": ids, "attention_mask": mask}


def micro_batches(idx: Sequence[int], lengths: Sequence[int], size: int) -> list[list[int]]:
    """`idx` cut into micro-batches of at most `size` pairs, grouped by length (longest first), so
    each forward pass pads to a length close to its own pairs'. The order inside a batch does not
    change the summed gradient."""
    ordered = sorted(idx, key=lambda i: -lengths[i])
    return [ordered[m:m + size] for m in range(0, len(ordered), size)]


def load_reward_model(path: str, *, new_head: bool = False):
    """(model, tokenizer) with one output; a causal-LM backbone gets its pad token set."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    kwargs = {"num_labels": 1}
    model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def validate_pairs(pairs: list[dict], *, what: str, need: str) -> None:
    if not pairs:
        raise TrainingDataError(f"reward model: no {what} pairs in the selected data")
    for i, ex in enumerate(pairs):
        for key in ("post", "summary_a", "summary_b"):
            if not isinstance(ex.get(key), str) or not ex[key].strip():
                raise TrainingDataError(f"reward model {what} pair {i}: field {key!r} is missing or empty")
        value = ex.get(need)
        if need == "p_a" and not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
            raise TrainingDataError(f"reward model {what} pair {i}: field 'p_a' must be in [0, 1], got {value!r}")
        if need == "choice" and value not in (0, 1):
            raise TrainingDataError(f"reward model {what} pair {i}: field 'choice' must be 0 or 1, got {value!r}")


@common.no_grad
def score_pairs(model, tokenizer, pairs: list[dict], max_length: int, batch_size: int = 32, device=None) -> list[float]:
    """r_A - r_B for each pair."""
    model.eval()
    device = device or next(model.parameters()).device
    seqs_a = [encode(tokenizer, ex, ex["summary_a"], max_length) for ex in pairs]
    seqs_b = [encode(tokenizer, ex, ex["summary_b"], max_length) for ex in pairs]
    lengths = [max(len(a), len(b)) for a, b in zip(seqs_a, seqs_b)]
    out = [0.0] * len(pairs)
    for idx in micro_batches(range(len(pairs)), lengths, batch_size):
        seqs = [seqs_a[i] for i in idx] + [seqs_b[i] for i in idx]
        batch = {k: v.to(device) for k, v in pad_batch(seqs, tokenizer.pad_token_id).items()}
        r = model(**batch).logits.squeeze(-1).float()
        for j, margin in enumerate((r[: len(idx)] - r[len(idx):]).tolist()):
            out[idx[j]] = margin
    return out


# --- the two trivial baselines -----------------------------------------------------------------


def baseline_margins(pairs: list[dict]) -> dict[str, list[float]]:
    """Margins (>0: prefer A) of the two trivial judges of `labeling.formats` ("longer summary",
    "more distinct words shared with the title and post")."""
    longer = [float(formats.longer_margin(ex["summary_a"], ex["summary_b"])) for ex in pairs]
    overlap = []
    for ex in pairs:
        source = formats.words(formats.overlap_source(ex.get("title", ""), ex["post"]))
        overlap.append(float(formats.overlap_margin(source, ex["summary_a"], ex["summary_b"])))
    return {"longer": longer, "overlap": overlap}


def accuracy(margins: Sequence[float], choices: Sequence[int]) -> float | None:
    """Share of pairs whose sign of margin matches the human choice (0 = A); ties count half."""
    if not choices:
        return None
    hits = sum(0.5 if m == 0 else float((m > 0) == (c == 0)) for m, c in zip(margins, choices))
    return hits / len(choices)


def evaluate(model, tokenizer, eval_pairs: list[dict], max_length: int, batch_size: int = 32) -> dict:
    """Held-out accuracy vs human labels (all and confidence 1/2/8/9) for the RM and both baselines."""
    if not eval_pairs:
        return {}
    margins = score_pairs(model, tokenizer, eval_pairs, max_length, batch_size)
    base = baseline_margins(eval_pairs)
    choices = [ex["choice"] for ex in eval_pairs]
    high = [i for i, ex in enumerate(eval_pairs) if formats.is_high_confidence(ex.get("confidence"))]
    result = {"eval_pairs": len(eval_pairs), "eval_pairs_high_confidence": len(high)}
    for name, m in [("rm", margins), ("longer_baseline", base["longer"]), ("overlap_baseline", base["overlap"])]:
        result[f"{name}_accuracy"] = accuracy(m, choices)
        result[f"{name}_accuracy_high_confidence"] = accuracy([m[i] for i in high], [choices[i] for i in high])
    return result


# --- training ---------------------------------------------------------------------------------


def _load_for_training(config: RewardConfig, resume_from: str | None, total: int):
    """(model in train mode, tokenizer, max length, optimizer, scheduler, step to start from)."""
    model, tokenizer = load_reward_model(resume_from or config.model)
    max_length = model_max_length(tokenizer, model.config, config.max_length)
    optimizer, scheduler, start_step = common.prepare_training(model, config, total_steps=total,
                                                               resume_from=resume_from)
    return model, tokenizer, max_length, optimizer, scheduler, start_step


def _encode_pairs(tokenizer, pairs: list[dict], max_length: int):
    """Both summaries of each pair as token arrays, each pair's longer length, and the soft labels p(A)."""
    import numpy as np
    import torch

    # int32 arrays: a Python list of ints costs ~9x the memory, and these live for the whole run
    enc_a = [np.asarray(encode(tokenizer, ex, ex["summary_a"], max_length), dtype=np.int32) for ex in pairs]
    enc_b = [np.asarray(encode(tokenizer, ex, ex["summary_b"], max_length), dtype=np.int32) for ex in pairs]
    pair_len = [max(len(a), len(b)) for a, b in zip(enc_a, enc_b)]
    labels = torch.tensor([float(ex["p_a"]) for ex in pairs])
    return enc_a, enc_b, pair_len, labels


def _accumulate_gradients(config: RewardConfig, accelerator, model, pad_id: int, encoded, mine: list[int]):
    """Backward of the soft-label loss over this process's pairs, in length-grouped micro-batches;
    returns (loss, pairs ranked as their label says)."""
    enc_a, enc_b, pair_len, labels = encoded
    loss_sum, hits = 0.0, 0.0
    for idx in micro_batches(mine, pair_len, config.micro_batch_size):
        batch = pad_batch([enc_a[i] for i in idx] + [enc_b[i] for i in idx], pad_id)
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        p_a = labels[idx].to(accelerator.device)
        with accelerator.autocast():
            r = model(**batch).logits.squeeze(-1).float()
        r_a, r_b = r[: len(idx)], r[len(idx):]
        loss = soft_label_loss(r_a, r_b, p_a) * len(idx) / len(mine)
        accelerator.backward(loss)
        loss_sum += loss.item()
        hits += float((((r_a - r_b) > 0).float() == (p_a > 0.5).float()).sum())
    return loss_sum, hits


def train_reward(config: RewardConfig, train_pairs: list[dict], output_dir: str | Path, *,
                 eval_pairs: list[dict] | None = None, hooks: Hooks | None = None,
                 resume_from: str | None = None) -> TrainResult:
    """Train on pairs ({subreddit, title, post, summary_a, summary_b, p_a}); evaluate on eval_pairs (with choice)."""
    hooks = hooks or Hooks()
    validate_pairs(train_pairs, what="training", need="p_a")
    if eval_pairs:
        validate_pairs(eval_pairs, what="held-out", need="choice")
    output_dir = Path(output_dir)
    ckpt_dir = output_dir / "checkpoint"
    # 1. model, optimizer and schedule (restored from the checkpoint when resuming)
    common.set_seed(config.seed)
    accelerator = common.make_accelerator(config.precision)
    total = common.total_steps(len(train_pairs), config.batch_size, config.epochs, config.max_steps)
    model, tokenizer, max_length, optimizer, scheduler, start_step = _load_for_training(config, resume_from, total)
    model, optimizer = accelerator.prepare(model, optimizer)
    hooks = common.main_process_hooks(hooks, accelerator)
    # 2. tokenize once
    encoded = _encode_pairs(tokenizer, train_pairs, max_length)
    plan = common.batches(len(train_pairs), config.batch_size, config.epochs, config.seed)
    step = start_step
    for batch_idx in plan[start_step:total]:
        # 3. one optimizer step over the batch
        t0 = time.perf_counter()
        model.train()
        optimizer.zero_grad()
        lr = scheduler.get_last_lr()[0]
        mine = common.shard(batch_idx, accelerator)
        loss_sum, hits = _accumulate_gradients(config, accelerator, model, tokenizer.pad_token_id, encoded, mine)
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        step += 1
        # 4. log, checkpoint, stop when asked
        elapsed = time.perf_counter() - t0
        hooks.on_log(step, total, {"loss": loss_sum, "accuracy": hits / len(mine), "grad_norm": float(grad_norm),
                                   "lr": lr, "pairs_per_s": len(batch_idx) / elapsed})
        stop = hooks.should_stop()
        if stop or step % config.checkpoint_every == 0:
            common.save_checkpoint(ckpt_dir, model=model, tokenizer=tokenizer, optimizer=optimizer, step=step,
                                   accelerator=accelerator, scheduler=scheduler)
            hooks.on_checkpoint(str(ckpt_dir), step)
        if stop:
            return TrainResult("stopped", step, total, checkpoint_dir=str(ckpt_dir))
    # 5. evaluate on held-out human labels and save
    summary = {"train_pairs": len(train_pairs), "steps": step, "max_length": max_length,
               "processes": accelerator.num_processes}
    if accelerator.is_main_process:
        summary.update(evaluate(accelerator.unwrap_model(model), tokenizer, eval_pairs or [], max_length,
                                config.eval_batch_size))
    final = common.save_final(output_dir / "final", model=model, tokenizer=tokenizer, accelerator=accelerator,
                              info={"algorithm": "reward", "config": asdict(config), "summary": summary})
    return TrainResult("done", step, total, output_dir=final, summary=summary)


class RewardScorer:
    """A trained reward model as a reward function: (records, summaries) -> rewards."""

    def __init__(self, path: str, *, max_length: int = 1152, batch_size: int = 32, device: str | None = None):
        import torch
        self.model, self.tokenizer = load_reward_model(path)
        self.max_length = model_max_length(self.tokenizer, self.model.config, max_length)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        self.batch_size = batch_size

    @common.no_grad
    def __call__(self, records: Sequence[dict], summaries: Sequence[str]) -> list[float]:
        out: list[float] = []
        for i in range(0, len(records), self.batch_size):
            seqs = [encode(self.tokenizer, r, s, self.max_length)
                    for r, s in zip(records[i:i + self.batch_size], summaries[i:i + self.batch_size])]
            batch = {k: v.to(self.device) for k, v in pad_batch(seqs, self.tokenizer.pad_token_id).items()}
            out.extend(self.model(**batch).logits.squeeze(-1).float().tolist())
        return out
