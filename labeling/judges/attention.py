"""Row attention for `LocalBackend.last_logprobs`: the masked attention of a scoring row, minus the
key blocks that the mask hides entirely.

A scoring row holds (after the shared prefix kept in the KV cache) the post once and then the
tail of each order. Every query of the row may see the prefix and the post (the post's own
queries causally); a tail's query sees, beyond that, only its own tail, causally. One masked
attention over all keys (what SDPA does with our 4-D mask) also computes each query against the
tails' keys, most of which the mask hides: in the 0-shot prompt that is about a third of the
attention work. Here a row is computed as

- one masked attention of all the row's queries against the prefix and post keys;
- for each tail, its queries against its own keys (causal, square: no mask needed);

and the two partial results of a tail query are merged exactly with their log-sum-exps, as flash
attention merges key blocks. On CPU both parts are PyTorch's flash kernel
(`_scaled_dot_product_flash_attention_for_cpu`, which returns the log-sum-exp).

The backend sets the layout of the batch with `row_layout(...)` around the forward pass under the
registered attention name `ROW_ATTENTION`; without a layout, on other devices, or for features this
function does not handle, it falls back to transformers' SDPA attention with the full mask.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field

import torch

ROW_ATTENTION = "rlaif_rows"

_LAYOUT: contextvars.ContextVar = contextvars.ContextVar("rlaif_row_layout", default=None)


@dataclass
class RowLayout:
    """Where the parts of each scoring row of a batch are.

    `rows[r]` = (first, post_end, tails): columns [first, post_end) hold the post (preceded by left
    padding), then the tails at columns (start, end). Keys count the `prefix` cached tokens first.
    """

    prefix: int
    kv_len: int
    rows: list[tuple[int, int, list[tuple[int, int]]]] = field(default_factory=list)

    def add_row(self, first: int, post_end: int, tails: list[tuple[int, int]]) -> None:
        self.rows.append((first, post_end, tails))


@contextlib.contextmanager
def row_layout(layout: RowLayout):
    token = _LAYOUT.set(layout)
    try:
        yield layout
    finally:
        _LAYOUT.reset(token)


def _flash(q, k, v, scale: float, *, causal: bool = False, mask=None):
    """Softmax attention of q (1, H, L, D) over k, v (1, H, S, D): output (1, H, L, D) and the
    log-sum-exp of the scores (1, H, L), both fp32 for the merge."""
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0.0, causal, attn_mask=mask, scale=scale)
    return out.float(), lse.float()


def row_attention_forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """An `AttentionInterface` function: row attention when a layout is set (CPU), else SDPA."""
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    layout = _LAYOUT.get()
    unsupported = (dropout or kwargs.get("sliding_window") or kwargs.get("softcap") is not None
                   or kwargs.get("position_bias") is not None or kwargs.get("s_aux") is not None
                   or getattr(module, "is_causal", True) is False or query.device.type != "cpu"
                   or attention_mask is None or attention_mask.dim() != 4)
    if (layout is None or unsupported or query.shape[0] != len(layout.rows)
            or key.shape[2] != layout.kv_len):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    b, h, length, _ = query.shape
    lp = layout.prefix
    out = torch.zeros((b, length, h, value.shape[-1]), dtype=query.dtype, device=query.device)
    for r, (first, post_end, tails) in enumerate(layout.rows):
        end = tails[-1][1] if tails else post_end
        seen = lp + post_end  # keys every query of the row may see: prefix + (padding) + post
        q, k, v = query[r:r + 1], key[r:r + 1], value[r:r + 1]
        acc = acc_lse = None
        if lp or post_end > first:
            mask = attention_mask[r:r + 1, :, first:end, :seen]
            acc, acc_lse = _flash(q[:, :, first:end], k[:, :, :seen], v[:, :, :seen], scale,
                                  mask=mask.to(query.dtype) if mask.dtype != torch.bool else mask)
        for t0, t1 in tails:
            o, lse = _flash(q[:, :, t0:t1], k[:, :, lp + t0: lp + t1], v[:, :, lp + t0: lp + t1], scale, causal=True)
            if acc is None:  # nothing before the tails: its own keys are all a tail query sees
                out[r, t0:t1] = o[0].transpose(0, 1)
                continue
            a, a_lse = acc[:, :, t0 - first: t1 - first], acc_lse[:, :, t0 - first: t1 - first]
            new = torch.logaddexp(a_lse, lse)
            a.mul_(torch.exp(a_lse - new)[..., None]).add_(o.mul_(torch.exp(lse - new)[..., None]))
        if acc is not None:
            out[r, first:end] = acc[0].transpose(0, 1)
    return out, None


def register() -> str:
    """Register `ROW_ATTENTION` with transformers (attention and mask interfaces); returns the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ROW_ATTENTION, row_attention_forward)
    AttentionMaskInterface.register(ROW_ATTENTION, sdpa_mask)
    return ROW_ATTENTION
