"""Row attention (`labeling.judges.attention`): the same output as SDPA under the full 4-D mask of
a scoring batch (left padding, a cached prefix or none, an empty post), and the local backend
really runs it on CPU."""
from __future__ import annotations

import pytest
import torch

from labeling.judges import attention
from labeling.judges import prompts
from labeling.judges.base import Prompt
from labeling.judges.labeler import LabelerSpec, label_pairs
from tests.ai.test_local_backend import _plain_p1, _tldr_pairs


def _batch(prefix: int, rows: list[tuple[int, list[int]]], heads: int = 4, dim: int = 16, groups: int = 1):
    """Random q/k/v for rows given as (post length, [tail lengths]), left-padded to one width, with
    the mask the backend builds and the matching layout."""
    width = max(p + sum(t) for p, t in rows)
    seg = torch.full((len(rows), width), -1)
    layout = attention.RowLayout(prefix=prefix, kv_len=prefix + width)
    for r, (post, tails) in enumerate(rows):
        col = width - post - sum(tails)
        first = col
        seg[r, col: col + post] = 0
        col += post
        spans = []
        for j, t in enumerate(tails):
            seg[r, col: col + t] = j + 1
            spans.append((col, col + t))
            col += t
        layout.add_row(first, first + post, spans)
    sq, sk = seg[:, :, None], seg[:, None, :]
    allowed = torch.ones((width, width), dtype=torch.bool).tril() & (sk >= 0) & ((sk == 0) | (sk == sq))
    allowed |= torch.eye(width, dtype=torch.bool) & (sq == -1)
    allowed = torch.cat([torch.ones((len(rows), width, prefix), dtype=torch.bool), allowed], dim=-1)
    mask = torch.zeros(allowed.shape).masked_fill_(~allowed, torch.finfo(torch.float32).min)[:, None]
    q = torch.randn(len(rows), heads, width, dim)
    k = torch.randn(len(rows), heads // groups, prefix + width, dim)
    v = torch.randn(len(rows), heads // groups, prefix + width, dim)
    return q, k, v, mask, layout, seg


class _Module:
    is_causal = True

    def __init__(self, groups: int = 1):
        self.num_key_value_groups = groups


@pytest.mark.parametrize("prefix,rows,groups", [
    (37, [(20, [7, 9]), (5, [3, 4]), (30, [12, 11])], 1),  # padded batch under a prefix
    (0, [(20, [7, 9]), (0, [3, 4])], 1),                    # no prefix; a row with no post
    (11, [(9, [6, 5])], 2),                                 # grouped keys/values (GQA)
    (8, [(0, [5]), (6, [4])], 1),                           # one tail per row (direct rating)
])
def test_row_attention_equals_sdpa_under_the_full_mask(prefix, rows, groups):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    torch.manual_seed(0)
    q, k, v, mask, layout, seg = _batch(prefix, rows, groups=groups)
    module = _Module(groups)
    want = sdpa_attention_forward(module, q, k, v, mask, scaling=0.25)[0]
    with attention.row_layout(layout):
        got = attention.row_attention_forward(module, q, k, v, mask, scaling=0.25)[0]
    real = seg >= 0
    assert got.shape == want.shape
    assert (got - want)[real].abs().max() < 1e-5
    # Without a layout (e.g. generation) it is SDPA itself.
    assert torch.equal(attention.row_attention_forward(module, q, k, v, mask, scaling=0.25)[0], want)


def test_backend_scores_with_row_attention_on_cpu(fresh_backend, monkeypatch):
    calls = []
    flash = attention._flash
    monkeypatch.setattr(attention, "_flash", lambda *a, **kw: calls.append(1) or flash(*a, **kw))
    backend = fresh_backend(sharpen=6.0, batch_size=2)
    assert backend.row_attention
    before = backend.model.config._attn_implementation
    pairs = _tldr_pairs(3)
    results = label_pairs(backend, LabelerSpec(), pairs)
    assert calls, "the rows were scored by SDPA, not by row attention"
    assert backend.model.config._attn_implementation == before
    style = LabelerSpec().style
    for pair, r in zip(pairs, results):
        ab = Prompt(prompts.prompt_prefix(style, []) + prompts.sample_block(style, pair.text, pair.summary_a, pair.summary_b),
                    "\n\nPreferred Summary=")
        assert r.p_a_ab == pytest.approx(_plain_p1(backend, ab), abs=1e-4)
    # Switched off, the backend leaves the model's own attention alone.
    calls.clear()
    off = fresh_backend(sharpen=6.0, batch_size=2, row_attention=False)
    label_pairs(off, LabelerSpec(), pairs[:1])
    assert not calls
