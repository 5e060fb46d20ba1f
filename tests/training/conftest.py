"""Fixtures of the training tests: a small dataset with references, human and AI labels, and
an ARTIFACT_ROOT of its own."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "data"


def load_jsonl(name: str, n: int) -> list[dict]:
    out = []
    with open(DATA / name, encoding="utf-8") as fh:
        for line in fh:
            out.append(json.loads(line))
            if len(out) >= n:
                break
    return out


@pytest.fixture(scope="session")
def refs() -> list[dict]:
    return load_jsonl("tldr_sft_reference_summaries.jsonl", 12)


@pytest.fixture(scope="session")
def comparisons() -> list[dict]:
    return load_jsonl("tldr_comparisons_sample.jsonl", 24)


@pytest.fixture
def artifact_root(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    return settings.ARTIFACT_ROOT


@pytest.fixture
def train_data(db, refs, comparisons, tiny_models, artifact_root):
    """Dataset 'tldr-test': posts with reference summaries, pairs with one human label each and a
    soft AI label each (from a noise labeler config), plus the tiny base artifacts."""
    from labeling.models import (AILabel, Comparison, Dataset, HumanLabel, LabelerConfig, Policy, PolicyKind,
                                 Post, Summary)
    from training.models import ModelArtifact

    ds = Dataset.objects.create(name="tldr-test")
    ref_policy = Policy.objects.create(name="ref", kind=PolicyKind.REFERENCE)
    other = Policy.objects.create(name="other", kind=PolicyKind.IMPORTED)
    for r in refs:
        post = Post.objects.create(dataset=ds, external_id=r["id"], subreddit=r["subreddit"], title=r["title"],
                                   text=r["post"])
        Summary.objects.create(post=post, policy=ref_policy, text=r["summary"], is_reference=True)
    config = LabelerConfig.objects.create(name="noise", model=str(tiny_models["causal_lm"]), is_noise=True)
    for i, c in enumerate(comparisons):
        post, _ = Post.objects.get_or_create(dataset=ds, external_id=c["post_id"], defaults={
            "subreddit": c["subreddit"], "title": c["title"], "text": c["post"]})
        a = Summary.objects.get_or_create(post=post, policy=other, text=c["summary_a"])[0]
        b = Summary.objects.get_or_create(post=post, policy=other, text=c["summary_b"])[0]
        if a.pk == b.pk:
            continue
        lo, hi = sorted([a, b], key=lambda s: s.pk)
        choice = c["choice"] if lo.pk == a.pk else 1 - c["choice"]
        comp = Comparison.objects.get_or_create(summary_a=lo, summary_b=hi, defaults={"post": post})[0]
        HumanLabel.objects.create(comparison=comp, worker_id=f"w{i}", choice=choice, confidence=c.get("confidence"))
        AILabel.objects.get_or_create(comparison=comp, config=config, defaults={"p_a": 0.8 if choice == 0 else 0.3})
    lm = ModelArtifact.objects.create(name="tiny-gpt2", kind="base", path=str(tiny_models["causal_lm"]))
    return {"dataset": ds, "config": config, "lm": lm, "ref_policy": ref_policy}


TINY = {"max_steps": 2, "batch_size": 4, "micro_batch_size": 4, "checkpoint_every": 1}


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """The tiny models gain nothing from threads, and on a shared 2-core machine threads thrash."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
