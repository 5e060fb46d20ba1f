"""Local transformers backend: soft labels from a causal LM, computing each token once.

The prompts of a labeler share a long prefix (preamble + exemplars), and the two orders of a
comparison share the post as well. `LocalBackend.last_logprobs` therefore:

1. runs the shared prefix once (batch 1) and keeps it as a `DynamicCache`, reused across calls;
2. runs one row per comparison on top of it: the post once, then the tail of each order (the two
   summaries and the ending), with a 4-D attention mask so that each tail sees the prefix, the
   post and itself but not the other order's tail, and position ids that restart after the post
   for each tail. Rows are length-sorted and left-padded into batches; logits are computed only
   at the last token of each tail (`logits_to_keep` as a boolean mask). On CPU the rows' attention
   skips the key blocks that mask hides (`attention.py`), and GPT-2's GELU runs as a faster form
   of the same function.

Shared parts are found as longest common prefixes of the *token ids* of the full prompts, so the
tokens fed are exactly those of the plain full-prompt forward pass (a test checks the soft labels
agree within 1e-4 in fp32).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import math
import sys
from typing import NamedTuple, Sequence

from . import attention
from .base import Generated, Prompt, Scored, Usage
from .tokens import answer_token_ids, rating_token_ids


def common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    if not seqs:
        return 0
    first, n = seqs[0], min(len(s) for s in seqs)
    for s in seqs[1:]:
        i = 0
        while i < n and s[i] == first[i]:
            i += 1
        n = i
    return n


_SQRT_8_OVER_PI = 2 * math.sqrt(2 / math.pi)


def gelu_tanh(x):
    """The tanh GELU, 0.5 x (1 + tanh(z)) with z = sqrt(2/pi) (x + 0.044715 x^3), written as
    x * sigmoid(2z) (the same function) in three in-place passes: PyTorch's own tanh GELU is slower
    on CPU. Elsewhere (CUDA, bf16) PyTorch's fused kernel, which also computes in fp32 inside."""
    import torch

    if x.device.type != "cpu" or x.dtype != torch.float32:
        return torch.nn.functional.gelu(x, approximate="tanh")
    t = torch.addcmul(x, x * x, x, value=0.044715)
    return t.mul_(_SQRT_8_OVER_PI).sigmoid_().mul_(x)


@functools.cache
def keep_freed_memory() -> None:
    """Ask glibc's malloc to keep freed memory (up to 1 GiB) instead of returning it to the system.

    On CPU a forward pass allocates and frees tens of MB per layer; with the default settings glibc
    hands big blocks back and the next pass faults every page in again (~8,000 page faults per
    scored comparison, a few % of the time). Process-wide, once; does nothing off glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 << 20)  # blocks up to 32 MiB from the heap, not mmap
        libc.mallopt(m_trim_threshold, 1 << 30)
    except (OSError, AttributeError):
        pass


class _Rows(NamedTuple):
    """One scoring batch, packed by `LocalBackend._pack_rows` (torch tensors of shape rows x width)."""

    ids: object
    pos: object
    seg: object  # -1 pad, 0 post, k tail k
    keep: object  # True at the last column of each tail: the logits computed
    layout: attention.RowLayout
    slots: list  # (group, sequence) of each kept column, in order


class LocalBackend:
    """A Hugging Face causal LM (name or local path), on CUDA in bf16 where present, else CPU fp32."""

    def __init__(self, model: str | None = None, *, model_obj=None, tokenizer=None, device: str | None = None,
                 dtype=None, use_chat_template: bool = False, batch_size: int = 8,
                 torch_threads: int | None = None, attn_implementation: str | None = None,
                 row_attention: bool | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None:
            dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        elif isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        if model_obj is None and model is None:
            raise ValueError("LocalBackend needs a model name/path or a model object")
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
        kwargs = {"dtype": dtype}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        self.model = model_obj if model_obj is not None else AutoModelForCausalLM.from_pretrained(model, **kwargs)
        self.model.to(self.device).eval()
        self.use_chat_template = use_chat_template
        self.batch_size = max(1, int(batch_size))
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (self.tokenizer.eos_token_id or 0)
        self.usage = Usage()
        self._prefix_ids: tuple[int, ...] | None = None
        self._prefix_kv = None  # list of (keys, values) per layer, batch 1
        self._answer_cache: dict = {}
        cfg = self.model.config.get_text_config() if hasattr(self.model.config, "get_text_config") else self.model.config
        self.max_positions = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
        # Scoring rows skip the key blocks their mask hides (`attention.py`): on CPU, where the flash
        # kernel returns the log-sum-exps the merge needs, and for models on SDPA or eager attention.
        if row_attention is None:
            row_attention = self.device == "cpu"
        self.row_attention = bool(row_attention) and self._attn_name() in ("sdpa", "eager")
        if self.device == "cpu":
            keep_freed_memory()

    def _attn_name(self):
        return getattr(self.model.config, "_attn_implementation", None)

    @contextlib.contextmanager
    def _scoring_attention(self, layout):
        """Run the model under row attention for `layout` (restoring the configured attention)."""
        if not self.row_attention:
            yield
            return
        config, before = self.model.config, self._attn_name()
        config._attn_implementation = attention.register()
        try:
            with attention.row_layout(layout):
                yield
        finally:
            config._attn_implementation = before

    # --- tokens -----------------------------------------------------------------------------

    def render(self, prompt: Prompt) -> str:
        if not self.use_chat_template:
            return prompt.text
        chat = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt.body}], tokenize=False, add_generation_prompt=True
        )
        return chat + prompt.tail.lstrip()

    def encode(self, prompt: Prompt) -> list[int]:
        # A chat template already holds the special tokens it needs.
        return list(self.tokenizer(self.render(prompt), add_special_tokens=not self.use_chat_template)["input_ids"])

    def count_tokens(self, prompt: Prompt) -> int:
        return len(self.encode(prompt))

    # --- the cache ----------------------------------------------------------------------------

    def _cache(self, kv, index=None):
        """A fresh DynamicCache over `kv` (rows picked by `index`, or a batch-1 cache expanded).

        The layers hold views where possible (`expand` for a batch-1 prefix): the forward pass's
        own `update` (a `torch.cat`) then makes the one copy it needs, not two.
        """
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        if kv is None:
            return cache
        if index is not None:
            if kv[0][0].shape[0] == 1:
                kv = [(k.expand(len(index), -1, -1, -1), v.expand(len(index), -1, -1, -1)) for k, v in kv]
            elif not (len(index) == kv[0][0].shape[0] and bool((index == self.torch.arange(len(index), device=index.device)).all())):
                kv = [(k.index_select(0, index), v.index_select(0, index)) for k, v in kv]
        from transformers.cache_utils import DynamicLayer

        if len(cache.layers) != len(kv) or any(type(layer) is not DynamicLayer for layer in cache.layers):
            return DynamicCache(ddp_cache_data=kv, config=self.model.config)  # e.g. sliding-window layers
        for layer, (k, v) in zip(cache.layers, kv):
            layer.lazy_initialization(k, v)
            layer.keys, layer.values = k, v
        return cache

    @contextlib.contextmanager
    def _fused_activations(self):
        """GPT-2's `gelu_new` (the tanh GELU written as seven elementwise ops) as `gelu_tanh` while
        we score: the same function up to float rounding (~5e-7), and several times faster on CPU.
        Instance-level `forward`, removed afterwards: the model object is left as it was."""
        from transformers.activations import FastGELUActivation, NewGELUActivation

        swapped = [m for m in self.model.modules()
                   if type(m) in (NewGELUActivation, FastGELUActivation) and "forward" not in vars(m)]
        for m in swapped:
            m.forward = gelu_tanh
        try:
            yield
        finally:
            for m in swapped:
                del m.forward

    @staticmethod
    def _kv(cache) -> list:
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _forward(self, ids, mask, positions, kv, index, *, logits: bool):
        cache = self._cache(kv, index)
        net = self.model if logits else self.model.base_model
        kwargs = {"logits_to_keep": 1} if logits else {}
        # transformers 5.x names the argument `cache` (`past_key_values` is deprecated).
        kwargs[self._cache_kwarg(net)] = cache
        out = net(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **kwargs)
        real = int(mask[:, -ids.shape[1]:].sum())
        self.usage.computed += real
        self.usage.padded += ids.numel() - real
        return out, self._kv(cache)

    @staticmethod
    def _cache_kwarg(net) -> str:
        import inspect

        return "cache" if "cache" in inspect.signature(net.forward).parameters else "past_key_values"

    def _prefix(self, ids: list[int]):
        if tuple(ids) != self._prefix_ids:
            torch = self.torch
            self._prefix_kv = None
            if ids:
                t = torch.tensor([ids], device=self.device)
                _, self._prefix_kv = self._forward(
                    t, torch.ones_like(t), torch.arange(len(ids), device=self.device)[None], None, None, logits=False
                )
            self._prefix_ids = tuple(ids)
        return self._prefix_kv

    def _left_pad(self, segs: Sequence[Sequence[int]], starts: Sequence[int]):
        """Left-padded ids, their mask, and positions continuing from each row's start."""
        torch = self.torch
        width = max(len(s) for s in segs)
        ids = torch.full((len(segs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(segs), width), dtype=torch.long)
        pos = torch.zeros((len(segs), width), dtype=torch.long)
        for r, (s, start) in enumerate(zip(segs, starts)):
            if s:
                ids[r, width - len(s):] = torch.tensor(s)
                mask[r, width - len(s):] = 1
                pos[r, width - len(s):] = torch.arange(start, start + len(s))
            pos[r, : width - len(s)] = start
        return ids.to(self.device), mask.to(self.device), pos.to(self.device)

    def last_logprobs(self, groups: Sequence[Sequence[Sequence[int]]], shared: Sequence[int] | None = None):
        """Log-softmax of the next-token logits after each sequence, grouped like the input.

        All sequences share `shared` (or their common prefix when `shared` is None): it is run
        once and kept as a cache. A group's sequences (the two orders of a comparison) share
        their common prefix (the post): one row per group holds that part once, followed by each
        sequence's own tail; a 4-D attention mask lets a tail see the prefix, the post and
        itself but not the other tails, and position ids restart after the post for each tail.
        Rows are length-sorted and left-padded into batches; only the logits at the end of each
        tail are computed.
        """
        torch = self.torch
        flat = [s for g in groups for s in g]
        if not flat:
            return []
        if any(len(s) == 0 for s in flat):
            raise ValueError("cannot score an empty prompt")
        refs = flat + ([list(shared)] if shared is not None else [])
        lp = min(common_prefix_len(refs), min(len(s) for s in flat) - 1)
        with torch.inference_mode(), self._fused_activations():
            prefix_kv = self._prefix(flat[0][:lp])
        post_len = [min(common_prefix_len(g), min(len(s) for s in g) - 1) - lp for g in groups]
        row_len = [post_len[i] + sum(len(s) - lp - post_len[i] for s in g) for i, g in enumerate(groups)]
        order = sorted(range(len(groups)), key=lambda i: row_len[i])
        out: list[list] = [[None] * len(g) for g in groups]
        dtype = next(self.model.parameters()).dtype
        with torch.inference_mode(), self._fused_activations():
            for b in range(0, len(order), self.batch_size):
                batch = order[b: b + self.batch_size]
                rows = self._pack_rows(groups, batch, lp, post_len, row_len)
                logp = self._score_rows(rows, prefix_kv, lp, dtype)
                for r, (i, j) in enumerate(rows.slots):
                    out[i][j] = logp[r]
        return out

    def _pack_rows(self, groups, batch: list[int], lp: int, post_len: list[int], row_len: list[int]) -> _Rows:
        """One left-padded row per group of `batch`: the post once, then each sequence's tail, with
        the positions, segments (-1 pad, 0 post, k tail k) and the column ending each tail."""
        torch = self.torch
        width = max(row_len[i] for i in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        pos = torch.zeros((len(batch), width), dtype=torch.long)
        seg = torch.full((len(batch), width), -1, dtype=torch.long)  # -1 pad, 0 post, k tail k
        keep = torch.zeros((len(batch), width), dtype=torch.bool)
        layout = attention.RowLayout(prefix=lp, kv_len=lp + width)
        slots = []
        for r, i in enumerate(batch):
            g, pl = groups[i], post_len[i]
            col = width - row_len[i]
            post = g[0][lp: lp + pl]
            ids[r, col: col + pl] = torch.tensor(post, dtype=torch.long)
            pos[r, col: col + pl] = torch.arange(lp, lp + pl)
            seg[r, col: col + pl] = 0
            first, tail_cols = col, []
            col += pl
            for j, s in enumerate(g):
                tail = s[lp + pl:]
                ids[r, col: col + len(tail)] = torch.tensor(tail, dtype=torch.long)
                pos[r, col: col + len(tail)] = torch.arange(lp + pl, lp + pl + len(tail))
                seg[r, col: col + len(tail)] = j + 1
                tail_cols.append((col, col + len(tail)))
                col += len(tail)
                keep[r, col - 1] = True
                slots.append((i, j))
            layout.add_row(first, first + pl, tail_cols)
        return _Rows(ids, pos, seg, keep, layout, slots)

    def _score_rows(self, rows: _Rows, prefix_kv, lp: int, dtype):
        """Log-softmax at each tail's last column, one row per slot, under the 4-D mask: a tail
        sees the prefix, its post and itself, never another tail."""
        torch = self.torch
        ids, pos, seg, keep = rows.ids, rows.pos, rows.seg, rows.keep
        n, width = ids.shape
        sq, sk = seg[:, :, None], seg[:, None, :]
        causal = torch.ones((width, width), dtype=torch.bool).tril()
        allowed = causal & (sk >= 0) & ((sk == 0) | (sk == sq))
        allowed |= torch.eye(width, dtype=torch.bool) & (sq == -1)  # a pad sees itself: no empty row
        allowed = torch.cat([torch.ones((n, width, lp), dtype=torch.bool), allowed], dim=-1)
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
        cache = self._cache(prefix_kv, torch.arange(n)) if prefix_kv else self._cache(None)
        with self._scoring_attention(rows.layout):
            res = self.model(
                input_ids=ids.to(self.device), attention_mask=mask[:, None].to(self.device),
                position_ids=pos.to(self.device), use_cache=True, logits_to_keep=keep.to(self.device),
                **{self._cache_kwarg(self.model): cache},
            )
        real = int((seg >= 0).sum())
        self.usage.computed += real
        self.usage.padded += ids.numel() - real
        logits = res.logits.reshape(-1, res.logits.shape[-1])
        if logits.shape[0] != len(rows.slots):
            raise RuntimeError(f"{type(self.model).__name__} ignored logits_to_keep as a boolean mask")
        return torch.log_softmax(logits.float(), dim=-1)

    # --- the public API -----------------------------------------------------------------------

    def _answer_ids(self, answers: Sequence[str], context: str) -> list[int]:
        key = (tuple(answers), context)
        if key not in self._answer_cache:
            self._answer_cache[key] = answer_token_ids(self.tokenizer, answers, context)
        return self._answer_cache[key]

    def score(self, groups: Sequence[Sequence[Prompt]], answers: Sequence[str] = ("1", "2"),
              context: str = "Preferred Summary=", shared_prefix: str | None = None) -> list[list[Scored]]:
        """Soft labels: softmax over the answers' log-probabilities after each prompt."""
        torch = self.torch
        ids = self._answer_ids(answers, context)
        seqs = [[self.encode(p) for p in g] for g in groups]
        shared = self.encode(Prompt(shared_prefix)) if shared_prefix is not None else None
        limit = self.max_positions
        too_long = {i for i, g in enumerate(seqs) if limit and max(len(s) for s in g) > limit}
        fit = [i for i in range(len(seqs)) if i not in too_long]
        fit_logps = iter(self.last_logprobs([seqs[i] for i in fit], shared))
        logps = [None if i in too_long else next(fit_logps) for i in range(len(seqs))]
        out = []
        for g_seqs, g_logps in zip(seqs, logps):
            if g_logps is None:
                n = max(len(s) for s in g_seqs)
                out.append([Scored(None, prompt_tokens=len(s), error=(
                    f"prompt of {n} tokens exceeds the model's {limit} positions")) for s in g_seqs])
                continue
            row = []
            for s, lp in zip(g_seqs, g_logps):
                probs = torch.softmax(lp[ids], dim=-1).tolist()
                row.append(Scored(probs=probs, prompt_tokens=len(s)))
            out.append(row)
        return out

    def rate(self, prompts: Sequence[Prompt], context: str = "Score=") -> list[Scored]:
        """Direct RLAIF: normalized P(1..10) after each rating prompt (a split "10" read in two steps)."""
        torch = self.torch
        key = ("rating", context)
        if key not in self._answer_cache:
            self._answer_cache[key] = rating_token_ids(self.tokenizer, context)
        spell = self._answer_cache[key]
        seqs = [self.encode(p) for p in prompts]
        two_step = {s: t for s, t in spell.items() if len(t) > 1}
        groups = [[s] + [s + t[:-1] for t in two_step.values()] for s in seqs]
        logps = self.last_logprobs(groups)
        out = []
        for s, g in zip(seqs, logps):
            p = torch.exp(g[0])
            mass = {score: float(p[t[0]]) for score, t in spell.items() if len(t) == 1}
            for k, (score, t) in enumerate(two_step.items()):
                cont = float(torch.exp(g[k + 1][t[-1]]))
                joint = float(p[t[0]]) * cont
                mass[score] = joint
                # The first token alone (e.g. "1") means that score only when not continued.
                for other, ot in spell.items():
                    if len(ot) == 1 and ot[0] == t[0]:
                        mass[other] -= joint
            total = sum(mass.values())
            probs = [mass[i] / total for i in range(1, 11)]
            out.append(Scored(probs=probs, prompt_tokens=len(s)))
        return out

    def generate(self, prompts: Sequence[Prompt], *, n: int = 1, temperature: float = 0.0, top_k: int = 40,
                 max_new_tokens: int = 512, seed: int | None = None, stop: Sequence[str] = (),
                 shared_prefix: str | None = None) -> list[list[Generated]]:
        """Rationales: greedy when temperature is 0, else n samples at temperature with top-k.

        The part all prompts share (`shared_prefix`, else their common token prefix: the preamble
        and exemplars) is run once and kept as the same cache scoring uses; each batch then feeds
        only its rows' own tokens, padded between the prefix and the row. A row ends at the end of
        turn, or as soon as its text holds one of `stop` (cut there: a rationale never runs on into
        its own `Preferred Summary=k`).
        """
        torch = self.torch
        if seed is not None:
            torch.manual_seed(seed)
        seqs = [self.encode(p) for p in prompts]
        if not seqs:
            return []
        refs = seqs + ([self.encode(Prompt(shared_prefix))] if shared_prefix is not None else [])
        lp = min(common_prefix_len(refs), min(len(s) for s in seqs) - 1)
        sample = temperature > 0
        per = n if sample else 1
        out: list[list[Generated]] = []
        with torch.inference_mode(), self._fused_activations():
            prefix_kv = self._prefix(seqs[0][:lp]) if lp > 0 else None
            for b in range(0, len(seqs), max(1, self.batch_size // per)):
                chunk = seqs[b: b + max(1, self.batch_size // per)]
                rows = [s for s in chunk for _ in range(per)]
                texts = self._decode_rows(rows, lp, prefix_kv, sample=sample, temperature=temperature, top_k=top_k,
                                          max_new_tokens=max_new_tokens, stop=tuple(stop))
                for r, s in enumerate(chunk):
                    row = [Generated(text=t, completion_tokens=k, prompt_tokens=len(s))
                           for t, k in texts[r * per: (r + 1) * per]]
                    out.append(row * n if not sample and n > 1 else row)
        return out

    def _decode_rows(self, rows: Sequence[Sequence[int]], lp: int, prefix_kv, *, sample: bool, temperature: float,
                     top_k: int, max_new_tokens: int, stop: tuple[str, ...]) -> list[tuple[str, int]]:
        """Decode rows that share their first `lp` tokens (cached in prefix_kv) to their ends."""
        torch = self.torch
        tails = [s[lp:] for s in rows]
        width = max(len(t) for t in tails)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), lp + width), dtype=torch.long)
        mask[:, :lp] = 1
        pos = torch.zeros((len(rows), width), dtype=torch.long)
        for r, t in enumerate(tails):
            ids[r, width - len(t):] = torch.tensor(t, dtype=torch.long)
            mask[r, lp + width - len(t):] = 1
            pos[r, width - len(t):] = torch.arange(lp, lp + len(t))
        ids, mask, pos = ids.to(self.device), mask.to(self.device), pos.to(self.device)
        cache = self._cache(prefix_kv, torch.arange(len(rows), device=self.device)) if prefix_kv else self._cache(None)
        kw = self._cache_kwarg(self.model)
        stops = {i for i in (self.tokenizer.eos_token_id, self.pad_id) if i is not None}
        new: list[list[int]] = [[] for _ in rows]
        live = torch.ones(len(rows), dtype=torch.bool)
        last = pos[:, -1]
        for _ in range(max_new_tokens):
            res = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                             logits_to_keep=1, **{kw: cache})
            self.usage.computed += int(live.sum()) if ids.shape[1] == 1 else int(mask[:, lp:].sum())
            logits = res.logits[:, -1].float()
            if sample:
                logits = logits / temperature
                if top_k:
                    kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1)[:, 0]
            else:
                nxt = logits.argmax(dim=-1)
            for r in range(len(rows)):
                if not live[r]:
                    continue
                tok = int(nxt[r])
                if tok in stops:
                    live[r] = False
                    continue
                new[r].append(tok)
                if stop and any(x in self.tokenizer.decode(new[r][-12:]) for x in stop):
                    live[r] = False
            if not bool(live.any()):
                break
            last = last + 1
            ids, pos = nxt[:, None].to(self.device), last[:, None].to(self.device)
            mask = torch.cat([mask, live[:, None].to(mask)], dim=1)
        out = []
        for toks in new:
            text = self.tokenizer.decode(toks, skip_special_tokens=True)
            for x in stop:
                if x in text:
                    text = text[: text.index(x)]
            self.usage.generated += len(toks)
            out.append((text, len(toks)))
        return out
