"""Fixtures of the hybrid-labeling tests: a small dataset with human labels and two labeler configs,
and a fake backend whose self-consistency samples differ (so their spread is known)."""
from __future__ import annotations

import pytest

from labeling.judges.base import Generated, Scored, Usage
from labeling.models import AILabel, Comparison, Dataset, HumanLabel, LabelerConfig, Policy, Post, Summary


class SampleBackend:
    """Scores 0.8 for "1" in A-first order and 0.7 for A in B-first order on the first rationale,
    0.2 less on the second: p(A) samples 0.75 and 0.55, mean 0.65, spread 0.1."""

    def __init__(self):
        self.usage = Usage()

    def count_tokens(self, prompt) -> int:
        return len(prompt.text.split())

    def generate(self, prompts, *, n=1, **kwargs):
        return [[Generated(text=f"because {j}", completion_tokens=2) for j in range(n)] for _ in prompts]

    def score(self, groups, answers, context, shared_prefix=None):
        out = []
        for group in groups:
            shift = 0.2 if "because 1" in group[0].tail else 0.0
            row = [Scored([0.8 - shift, 0.2 + shift], prompt_tokens=5)]
            if len(group) > 1:
                row.append(Scored([0.3 + shift, 0.7 - shift], prompt_tokens=5))
            out.append(row)
        return out


@pytest.fixture
def sample_backend():
    return SampleBackend()


def make_world(n: int = 8, name: str = "hy"):
    """`n` comparisons, one human label each (A preferred on even ones); config "cfg-a" labels all,
    with p(A) 0.9 on pairs 0-3 (right on the even ones), then 0.52, 0.45, 0.6 (orders disagree), and
    a failed label on the last; "cfg-b" labels pairs 0-3 with p(A) = 0.2."""
    ds = Dataset.objects.create(name=name)
    pol_x, pol_y = Policy.objects.create(name=f"{name}-x"), Policy.objects.create(name=f"{name}-y")
    cfg_a = LabelerConfig.objects.create(name=f"{name}-cfg-a", model="fake")
    cfg_b = LabelerConfig.objects.create(name=f"{name}-cfg-b", model="fake")
    comps = []
    for i in range(n):
        post = Post.objects.create(dataset=ds, external_id=f"{name}{i}", title=f"t{i}", text=f"post text {i}")
        sa = Summary.objects.create(post=post, policy=pol_x, text=f"summary x {i}")
        sb = Summary.objects.create(post=post, policy=pol_y, text=f"summary y {i}")
        c = Comparison.objects.create(post=post, summary_a=sa, summary_b=sb)
        HumanLabel.objects.create(comparison=c, worker_id="w1", choice=i % 2, confidence=2)
        comps.append(c)
    table = {4: (0.52, 0.52, 0.52), 5: (0.45, 0.45, 0.45), 6: (0.6, 0.7, 0.5)}
    for i, c in enumerate(comps):
        if i == n - 1:
            AILabel.objects.create(comparison=c, config=cfg_a, error="prompt too long")
            continue
        p, ab, ba = table.get(i, (0.9, 0.9, 0.9))
        AILabel.objects.create(comparison=c, config=cfg_a, p_a=p, p_a_ab=ab, p_a_ba=ba, consistent=(ab > .5) == (ba > .5))
        if i < 4:
            AILabel.objects.create(comparison=c, config=cfg_b, p_a=0.2, p_a_ab=0.2, p_a_ba=0.2, consistent=True)
    return {"dataset": ds, "cfg_a": cfg_a, "cfg_b": cfg_b, "comps": comps}


@pytest.fixture
def world(db):
    from labeling.services.routing import trust_signals_backfill

    w = make_world()
    trust_signals_backfill()
    return w


from tests.training.conftest import artifact_root, comparisons, refs, train_data  # noqa: E402,F401  (fixtures)
