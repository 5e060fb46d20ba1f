"""Fixtures of the AI labeler tests: backends on the tiny offline GPT-2 (built once per session)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_backend(tiny_models):
    from labeling.judges.local import LocalBackend

    return LocalBackend(str(tiny_models["causal_lm"]), batch_size=3, device="cpu")


@pytest.fixture
def fresh_backend(tiny_models):
    from labeling.judges.local import LocalBackend

    def make(sharpen: float = 1.0, **kwargs):
        kwargs.setdefault("batch_size", 3)
        backend = LocalBackend(str(tiny_models["causal_lm"]), device="cpu", **kwargs)
        if sharpen != 1.0:
            # Random weights at GPT-2's init scale barely react to the prompt (p(1) moves by 1e-5);
            # scaled matrices make the label depend on the prompt, so comparisons can fail.
            import torch

            with torch.no_grad():
                for name, p in backend.model.named_parameters():
                    if name.endswith("weight") and p.dim() == 2:
                        p.mul_(sharpen)
        return backend

    return make
