"""Sampling: a trained policy writes one summary per post (the paper's TL;DR prompt format), or one
reply per dialogue (the conversation, then `Assistant:`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import common
from .common import ranged


@dataclass
class SamplingConfig:
    model: str = ""
    """The policy checkpoint (a save_pretrained folder or a Hugging Face name)."""
    temperature: float = ranged(0.0, min=0.0, max=10.0)
    """0 decodes greedily (deterministic evaluation samples); the paper samples at 0.9 during RL."""
    max_new_tokens: int = ranged(64, min=1, max=4_096)
    """Longest summary, in tokens."""
    max_prompt_length: int = ranged(512, min=8, max=32_768)
    """Prompt tokens; the post is shortened to fit."""
    batch_size: int = ranged(16, min=1, max=4_096)
    """Posts per generate() call."""
    seed: int = ranged(0, min=0, max=2**32 - 1)
    """Seed of sampling when temperature > 0."""


def generate_summaries(config: SamplingConfig, posts: list[dict], *,
                       on_progress: Callable[[int, int], None] | None = None,
                       should_stop: Callable[[], bool] | None = None) -> list[str]:
    """One summary per post ({subreddit, title, post}), stripped; may be empty if the model stops at once."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(config.model, dtype=dtype).to(device).eval()
    common.set_seed(config.seed)
    out: list[str] = []
    for i in range(0, len(posts), config.batch_size):
        if should_stop and should_stop():
            break
        chunk = posts[i:i + config.batch_size]
        texts = [common.fit_record_prompt(tokenizer, p, config.max_prompt_length) for p in chunk]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        kwargs = {"do_sample": True, "temperature": config.temperature, "top_k": 0} if config.temperature > 0 \
            else {"do_sample": False}
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=config.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id, **kwargs)
        out.extend(s.strip() for s in tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True))
        if on_progress:
            on_progress(len(out), len(posts))
    return out
