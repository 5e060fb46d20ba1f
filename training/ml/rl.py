"""RL from a reward function: REINFORCE with a baseline and a KL penalty to the SFT policy.

The paper's objective, per sampled summary y of post x:

    R(x, y) = (1 - beta) * r(x, y) - beta * sum_t [log pi(y_t | .) - log pi_SFT(y_t | .)]

and the policy-gradient loss -(R - b) * log pi(y | x), with the reward given once at the end
(gamma = 1). The paper's baseline is a learned value model; we use the leave-one-out mean of the
other samples of the same post (RLOO, Ahmadian et al. 2024), which needs no second network,
or the batch mean when one sample per post is drawn. The reward function is passed in by the
caller (a trained reward model, or the AI labeler's 1-10 score for direct RLAIF), so this file
knows nothing of where rewards come from. Dropout is off in both models, and both run under the
same precision: accelerate's `prepare` wraps the policy's forward in autocast (bf16 on a GPU), so
the reference, which is not prepared (it has no gradients to synchronize), runs its forward under
`accelerator.autocast()` too; KL is then exactly 0 at step 0. Prompts are the TL;DR prompt, or for
a dialogue (HH) the conversation then `Assistant:`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from . import common
from .common import Hooks, TrainingDataError, TrainResult, ranged

if TYPE_CHECKING:  # annotations only: torch is imported inside the functions that use it
    import torch

RewardFn = Callable[[Sequence[dict], Sequence[str]], Sequence[float]]
"""(post records, sampled summaries) -> one scalar reward per summary."""


@dataclass
class RLConfig:
    model: str = ""
    """The SFT policy: initial policy and the frozen KL reference."""
    learning_rate: float = ranged(1e-5, gt=0, max=1.0)
    """The paper's RL learning rate."""
    epochs: int = ranged(8, min=1, max=100)
    """Passes over the prompts (the paper's 8)."""
    batch_size: int = ranged(128, min=1, max=65_536)
    """Prompts per optimizer step (the paper's 128)."""
    samples_per_prompt: int = ranged(2, min=1, max=64)
    """Summaries sampled per prompt; 2 or more gives the leave-one-out baseline."""
    micro_batch_size: int = ranged(16, min=1, max=65_536)
    """Sequences per generation / forward pass."""
    kl_beta: float = ranged(0.05, min=0.0, max=1.0)
    """beta in (1 - beta) * reward - beta * KL(policy || SFT): the paper's 0.05."""
    temperature: float = ranged(0.9, gt=0, max=10.0)
    """Sampling temperature during RL (the paper's 0.9)."""
    max_new_tokens: int = ranged(64, min=1, max=4_096)
    """Longest sampled summary, in tokens."""
    max_prompt_length: int = ranged(512, min=8, max=32_768)
    """Prompt tokens; the post is shortened to fit."""
    baseline: str = ranged("leave_one_out", choices=("leave_one_out", "batch_mean"))
    """leave_one_out (other samples of the same post) or batch_mean."""
    optimizer: str = ranged("adafactor", choices=("adamw", "adafactor"))
    """The paper's Adafactor; adamw also works."""
    max_grad_norm: float = ranged(1.0, gt=0, max=1e6)
    """Gradient clipping."""
    max_steps: int = ranged(0, min=0, max=10_000_000)
    """Stop after this many optimizer steps (0: run all epochs)."""
    checkpoint_every: int = ranged(20, min=1, max=10_000_000)
    """Write a resumable checkpoint every this many steps (and when stopped)."""
    seed: int = ranged(0, min=0, max=2**32 - 1)
    """Seed of the prompt order and of sampling."""
    precision: str = ranged("auto", choices=("auto", "bf16", "fp16", "no"))
    """auto (bf16 on a CUDA GPU, fp32 on CPU), bf16, fp16 or no."""


def _completion_mask(completion_ids: torch.Tensor, eos_id: int, pad_id: int) -> torch.Tensor:
    """1 up to and including the first eos of each row, 0 after it."""
    is_eos = completion_ids == eos_id
    after_eos = (is_eos.cumsum(dim=1) - is_eos.long()) > 0
    return (~after_eos).long()


def sequence_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int,
                      completion_mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-token log-probabilities of the completion part (zeros where masked)."""
    import torch
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
    logits = logits[:, prompt_width - 1:-1].float() / temperature
    targets = input_ids[:, prompt_width:]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return logp * completion_mask


def baseline_of(rewards: torch.Tensor, k: int, kind: str) -> torch.Tensor:
    """Baselines for rewards laid out as [prompt0 sample0..k-1, prompt1 ...]."""
    import torch
    if kind == "leave_one_out" and k > 1:
        grouped = rewards.view(-1, k)
        return ((grouped.sum(dim=1, keepdim=True) - grouped) / (k - 1)).reshape(-1)
    if kind in ("leave_one_out", "batch_mean"):
        return torch.full_like(rewards, rewards.mean().item())
    raise ValueError(f"baseline must be 'leave_one_out' or 'batch_mean', got {kind!r}")


def _check_prompts(prompts: list[dict]) -> None:
    if not prompts:
        raise TrainingDataError("RL: no prompts (no posts in the selected data)")
    for i, p in enumerate(prompts):
        if not isinstance(p.get("post"), str) or not p["post"].strip():
            raise TrainingDataError(f"RL prompt {i}: field 'post' is missing or empty")


def _load_models(config: RLConfig, resume_from: str | None):
    """(tokenizer padding on the left, policy, frozen reference, optimizer, step to start from)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resume_from or config.model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    policy = AutoModelForCausalLM.from_pretrained(resume_from or config.model)
    reference = AutoModelForCausalLM.from_pretrained(config.model)
    policy.eval()  # dropout off: the gradient still flows, and KL(policy||ref) is 0 at step 0
    reference.eval().requires_grad_(False)
    optimizer = common.make_optimizer(config.optimizer, policy.parameters(), config.learning_rate)
    start_step = 0
    if resume_from:
        state = common.load_trainer_state(resume_from)
        optimizer.load_state_dict(state["optimizer"])
        start_step = state["step"]
    return tokenizer, policy, reference, optimizer, start_step


def _sample(config: RLConfig, tokenizer, gen_model, texts: list[str], rows: list[int], device) -> tuple[list, list[str]]:
    """Sample one summary per row, in micro-batches. Returns the chunks (row indices, prompt +
    completion ids, attention mask, prompt width, completion mask) and the decoded summaries."""
    import torch

    chunks = []
    for m in range(0, len(rows), config.micro_batch_size):
        idx = rows[m:m + config.micro_batch_size]
        enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {key: v.to(device) for key, v in enc.items()}
        with torch.no_grad():
            out = gen_model.generate(**enc, do_sample=True, temperature=config.temperature, top_k=0, top_p=1.0,
                                     max_new_tokens=config.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                     eos_token_id=tokenizer.eos_token_id)
        width = enc["input_ids"].shape[1]
        completion = out[:, width:]
        cmask = _completion_mask(completion, tokenizer.eos_token_id, tokenizer.pad_token_id)
        completion = torch.where(cmask.bool(), completion, torch.full_like(completion, tokenizer.pad_token_id))
        attn = torch.cat([enc["attention_mask"], cmask], dim=1)
        chunks.append((idx, torch.cat([enc["input_ids"], completion], dim=1), attn, width, cmask))
    summaries = []
    for _, seq, _, width, cmask in chunks:
        summaries.extend(tokenizer.batch_decode(seq[:, width:] * cmask + tokenizer.pad_token_id * (1 - cmask),
                                                skip_special_tokens=True))
    return chunks, [s.strip() for s in summaries]


def _score(reward_fn: RewardFn, records: list[dict], summaries: list[str]) -> torch.Tensor:
    import torch

    rewards = torch.tensor([float(r) for r in reward_fn(records, summaries)])
    if rewards.shape[0] != len(records):
        raise ValueError(f"reward function returned {rewards.shape[0]} rewards for {len(records)} summaries")
    return rewards


def _kl_to_reference(config: RLConfig, accelerator, policy, reference, chunks: list) -> torch.Tensor:
    """sum_t [log pi(y_t | .) - log pi_SFT(y_t | .)] per sampled sequence, without gradients."""
    import torch

    kls = []
    with torch.no_grad():
        for _, seq, attn, width, cmask in chunks:
            # the same autocast for both: the prepared policy's forward already runs under it
            with accelerator.autocast():
                ref_lp = sequence_logprobs(reference, seq, attn, width, cmask, config.temperature)
                pol_lp = sequence_logprobs(policy, seq, attn, width, cmask, config.temperature)
            kls.append((pol_lp - ref_lp).sum(dim=1).cpu())
    return torch.cat(kls)


def _policy_gradient(config: RLConfig, accelerator, policy, chunks: list, advantages: torch.Tensor,
                     n_rows: int) -> float:
    """Backward of -(A * log pi(y | x)) averaged over the rows, accumulated over micro-batches; returns the loss."""
    offset, loss_total = 0, 0.0
    for idx, seq, attn, width, cmask in chunks:
        adv = advantages[offset:offset + len(idx)].to(accelerator.device)
        offset += len(idx)
        with accelerator.autocast():
            lp = sequence_logprobs(policy, seq, attn, width, cmask, config.temperature)
        loss = -(adv * lp.sum(dim=1)).sum() / n_rows
        accelerator.backward(loss)
        loss_total += loss.item()
    return loss_total


def train_rl(config: RLConfig, prompts: list[dict], reward_fn: RewardFn, output_dir: str | Path, *,
             hooks: Hooks | None = None, resume_from: str | None = None) -> TrainResult:
    """Optimize config.model on prompts ({subreddit, title, post}) against reward_fn."""
    import torch

    hooks = hooks or Hooks()
    _check_prompts(prompts)
    output_dir = Path(output_dir)
    ckpt_dir = output_dir / "checkpoint"
    common.set_seed(config.seed)
    accelerator = common.make_accelerator(config.precision)
    tokenizer, policy, reference, optimizer, start_step = _load_models(config, resume_from)
    policy, optimizer = accelerator.prepare(policy, optimizer)
    reference.to(accelerator.device)
    hooks = common.main_process_hooks(hooks, accelerator)
    gen_model = accelerator.unwrap_model(policy)

    texts = [common.fit_record_prompt(tokenizer, p, config.max_prompt_length) for p in prompts]
    k = max(1, config.samples_per_prompt)
    plan = common.batches(len(prompts), config.batch_size, config.epochs, config.seed)
    total = common.total_steps(len(prompts), config.batch_size, config.epochs, config.max_steps)
    step = start_step
    for batch_idx in plan[start_step:total]:
        torch.manual_seed(config.seed * 7919 + step)
        t0 = time.perf_counter()
        rows = [i for i in common.shard(batch_idx, accelerator) for _ in range(k)]
        # 1. sample
        chunks, summaries = _sample(config, tokenizer, gen_model, texts, rows, accelerator.device)
        # 2. score
        rewards = _score(reward_fn, [prompts[i] for i in rows], summaries)
        # 3. KL to the reference (per sequence) and the shaped return
        optimizer.zero_grad()
        kl = _kl_to_reference(config, accelerator, policy, reference, chunks)
        returns = (1 - config.kl_beta) * rewards - config.kl_beta * kl
        advantages = returns - baseline_of(returns, k, config.baseline)
        # 4. policy gradient, accumulated over micro-batches
        loss_total = _policy_gradient(config, accelerator, policy, chunks, advantages, len(rows))
        grad_norm = accelerator.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
        optimizer.step()
        step += 1
        # 5. log, checkpoint, stop when asked
        elapsed = time.perf_counter() - t0
        lengths = torch.cat([c[4].sum(dim=1).float() for c in chunks])
        hooks.on_log(step, total, {
            "loss": loss_total, "reward": rewards.mean().item(), "kl": kl.mean().item(),
            "objective": returns.mean().item(), "grad_norm": float(grad_norm),
            "summary_tokens": lengths.mean().item(), "samples_per_s": len(rows) / elapsed,
        })
        stop = hooks.should_stop()
        if stop or step % config.checkpoint_every == 0:
            common.save_checkpoint(ckpt_dir, model=policy, tokenizer=tokenizer, optimizer=optimizer, step=step,
                                   accelerator=accelerator)
            hooks.on_checkpoint(str(ckpt_dir), step)
        if stop:
            return TrainResult("stopped", step, total, checkpoint_dir=str(ckpt_dir))
    final = common.save_final(output_dir / "final", model=policy, tokenizer=tokenizer, accelerator=accelerator,
                              info={"algorithm": "rl", "config": asdict(config), "prompts": len(prompts)})
    return TrainResult("done", step, total, output_dir=final, summary={"prompts": len(prompts), "steps": step,
                                                                   "processes": accelerator.num_processes})
