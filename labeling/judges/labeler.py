"""The labeling procedure of Lee et al. 2023 on top of any backend: both orders, position-bias
averaging, chain of thought, self-consistency, truncation of long posts; and direct 1-10 rating.

`label_pairs` returns one `PairResult` per input pair, never raising for a single bad pair: a
pair that cannot be scored carries `error` and no probability (never a silent 0.5).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Sequence

from . import prompts
from .base import Backend, JudgeError, Prompt


@dataclass(frozen=True)
class LabelerSpec:
    """How to label; mirrors the LabelerConfig model fields that matter to the method."""

    preamble: str = "base"
    task: str = "summarization"
    chain_of_thought: bool = False
    self_consistency_n: int = 1
    temperature: float = 0.0
    top_k: int = 40
    both_orders: bool = True
    max_prompt_tokens: int | None = 2048
    cot_max_tokens: int = 512
    seed: int = 0

    def __post_init__(self):
        if self.self_consistency_n < 1:
            raise ValueError("self_consistency_n must be >= 1")
        if self.self_consistency_n > 1 and not self.chain_of_thought:
            raise ValueError("self-consistency samples rationales: it needs chain_of_thought")
        if self.self_consistency_n > 1 and self.temperature <= 0:
            raise ValueError("self-consistency with n > 1 needs temperature > 0")

    @property
    def style(self) -> prompts.PromptStyle:
        return prompts.PromptStyle(self.preamble, self.task, self.chain_of_thought)


@dataclass(frozen=True)
class PairInput:
    key: object  # e.g. the comparison id
    text: str
    summary_a: str
    summary_b: str


@dataclass
class PairResult:
    key: object
    p_a: float | None = None
    p_a_ab: float | None = None
    p_a_ba: float | None = None
    consistent: bool | None = None
    rationales: list = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: bool = False
    error: str = ""
    score_method: str = ""  # how the answer probabilities were read (Scored.method; "+"-joined if several)
    p_a_samples: list = field(default_factory=list)  # per self-consistency sample (n > 1), orders averaged


def choose_exemplars(pool: Sequence[prompts.Exemplar], shots: int, selection: str = "fixed", seed: int = 0) -> list[prompts.Exemplar]:
    """`fixed`: the first `shots` of the pool; `random`: a sample drawn once with `seed`."""
    if shots <= 0:
        return []
    if len(pool) < shots:
        raise ValueError(f"{shots} exemplars asked for, only {len(pool)} labelled pairs available")
    if selection == "random":
        return random.Random(seed).sample(list(pool), shots)
    if selection != "fixed":
        raise ValueError(f"exemplar selection must be 'fixed' or 'random', got {selection!r}")
    return list(pool[:shots])


def _orders(spec: LabelerSpec, pair: PairInput, text: str) -> list[tuple[str, str]]:
    first = (pair.summary_a, pair.summary_b)
    return [first, (pair.summary_b, pair.summary_a)] if spec.both_orders else [first]


def _split(style: prompts.PromptStyle, prefix: str, text: str, first: str, second: str) -> Prompt:
    """The pair prompt as body (user turn) + tail (from the ending / CoT instruction on)."""
    ending = style.cot_instruction if style.chain_of_thought else style.ending
    return Prompt(prefix + prompts.sample_block(style, text, first, second), prompts.SEP + ending)


def _fitted_prompts(backend: Backend, spec: LabelerSpec, prefix: str, pairs: Sequence[PairInput],
                    results: list[PairResult]) -> tuple[list[list[Prompt]], list[int]]:
    """Each pair's prompts (one per order), its post cut to the token budget; a pair that cannot
    fit gets its error and is left out. Returns (prompt groups, index of each group's pair)."""
    style = spec.style
    groups: list[list[Prompt]] = []
    live: list[int] = []
    budget = spec.max_prompt_tokens
    if budget and style.chain_of_thought:
        budget -= spec.cot_max_tokens + 32  # room for the rationale (re-tokenized) and the ending
    for k, pair in enumerate(pairs):
        def build(t: str, pair=pair) -> list[Prompt]:
            return [_split(style, prefix, t, a, b) for a, b in _orders(spec, pair, t)]
        try:
            text, truncated = prompts.fit_text(build, pair.text, backend.count_tokens, budget)
        except (ValueError, JudgeError) as exc:
            results[k].error = str(exc)
            continue
        results[k].truncated = truncated
        groups.append(build(text))
        live.append(k)
    return groups, live


def _with_rationales(backend: Backend, spec: LabelerSpec, prefix: str, groups: list[list[Prompt]],
                     live: list[int], results: list[PairResult]) -> tuple[list[list[Prompt]], list[int]]:
    """Chain of thought: one rationale per order (or n sampled ones), recorded on the results;
    returns the scoring prompt groups (one per pair and sample) and each group's pair."""
    style = spec.style
    samples = spec.self_consistency_n
    flat = [p for g in groups for p in g]
    gens = backend.generate(
        flat, n=samples, temperature=spec.temperature, top_k=spec.top_k,
        max_new_tokens=spec.cot_max_tokens, seed=spec.seed, stop=prompts.cot_stop_sequences(style),
        shared_prefix=prefix,
    )
    it = iter(gens)
    scored_groups: list[list[Prompt]] = []
    owners: list[int] = []
    for k, g in zip(live, groups):
        per_order = [next(it) for _ in g]
        rationales = []
        for order_gens in per_order:
            results[k].completion_tokens += sum(x.completion_tokens for x in order_gens)
            gen_errors = [x.error for x in order_gens if x.error]
            if gen_errors:
                results[k].error = f"rationale generation failed: {gen_errors[0]}"
            rationales.append([x.text.strip() for x in order_gens])
        results[k].rationales = [
            {"order": "ab" if o == 0 else "ba", "samples": r} for o, r in enumerate(rationales)
        ]
        for s in range(samples):
            scored_groups.append([
                Prompt(prompt.body, prompts.cot_scoring_prompt(style, prompt.tail, order_gens[s].text))
                for order_gens, prompt in zip(per_order, g)
            ])
            owners.append(k)
    return scored_groups, owners


def _p_a_per_sample(owners: list[int], scores, results: list[PairResult]) -> dict[int, list[list[float]]]:
    """For each pair, p(A) per order for each scored sample; a row with an error marks its pair."""
    acc: dict[int, list[list[float]]] = {}
    for k, row in zip(owners, scores):
        errs = [s.error for s in row if s.error or s.probs is None]
        if errs:
            results[k].error = results[k].error or (errs[0] or "no probabilities returned")
            continue
        results[k].prompt_tokens += sum(s.prompt_tokens for s in row)
        methods = results[k].score_method.split("+") if results[k].score_method else []
        methods += [s.method for s in row if s.method not in methods]
        results[k].score_method = "+".join(dict.fromkeys(methods))
        # p(A): the "first is better" answer when A is shown first ("1"; "2" for harmlessness), the other when B is.
        acc.setdefault(k, []).append([row[0].probs[0]] + ([row[1].probs[1]] if len(row) > 1 else []))
    return acc


def _average(spec: LabelerSpec, acc: dict[int, list[list[float]]], results: list[PairResult]) -> None:
    """p(A) per order averaged over samples, then over both orders (position-bias averaging)."""
    for k, per_sample in acc.items():
        r = results[k]
        if r.error:
            continue
        r.p_a_ab = sum(s[0] for s in per_sample) / len(per_sample)
        if spec.both_orders:
            r.p_a_ba = sum(s[1] for s in per_sample) / len(per_sample)
            r.p_a = (r.p_a_ab + r.p_a_ba) / 2
            r.consistent = (r.p_a_ab > 0.5) == (r.p_a_ba > 0.5)
        else:
            r.p_a = r.p_a_ab
        if len(per_sample) > 1:
            r.p_a_samples = [sum(s) / len(s) for s in per_sample]


def label_pairs(backend: Backend, spec: LabelerSpec, pairs: Sequence[PairInput],
                exemplars: Sequence[prompts.Exemplar] = ()) -> list[PairResult]:
    """Soft labels for pairs: p(A) averaged over both orders, with each order kept."""
    style = spec.style
    prefix = prompts.prompt_prefix(style, exemplars)
    results = [PairResult(key=p.key) for p in pairs]
    # 1. prompts, each post cut to the budget
    groups, live = _fitted_prompts(backend, spec, prefix, pairs, results)
    # 2. chain of thought: rationales first, then one scoring prompt per sample
    if style.chain_of_thought:
        scored_groups, owners = _with_rationales(backend, spec, prefix, groups, live, results)
    else:
        scored_groups, owners = groups, live
    if not scored_groups:
        return results
    # 3. the answer probabilities, both orders of a pair in one call
    try:
        scores = backend.score(scored_groups, style.answers, style.ending, shared_prefix=prefix)
    except JudgeError as exc:
        for k in set(owners):
            results[k].error = str(exc)
        return results
    # 4. p(A) per pair
    _average(spec, _p_a_per_sample(owners, scores, results), results)
    return results


def rating_to_reward(probs: Sequence[float]) -> float:
    """sum_i i * P(i) over 1..10, rescaled from [1, 10] to [-1, 1]."""
    expected = sum((i + 1) * p for i, p in enumerate(probs))
    return (expected - 1.0) / 4.5 - 1.0


def rate_summaries(backend: Backend, items: Sequence[tuple[str, str]]) -> list[float]:
    """Direct RLAIF rewards in [-1, 1] for (text, summary) items."""
    ending = prompts.SEP + prompts.RATING_ENDING
    rating_prompts = [Prompt(prompts.rating_prompt(t, s)[: -len(ending)], ending) for t, s in items]
    rewards = []
    for k, scored in enumerate(backend.rate(rating_prompts, prompts.RATING_ENDING)):
        if scored.probs is None:  # a reward is never made up: the caller's step fails with the reason
            raise JudgeError(f"direct rating of item {k} failed: {scored.error}")
        rewards.append(rating_to_reward(scored.probs))
    return rewards


ProgressFn = Callable[[int, int], None]
