"""Trust signals of one AI soft label, and the risk score that routing ranks pairs by (no Django).

A label's signals are computed once, when it is written (``labeling.services.routing``):

- margin: |p(A) - 0.5|, 0 for a coin flip, 0.5 for a certain label;
- position consistency: whether the two orders prefer the same summary (None with one order),
  with the order gap |p(A | A first) - p(A | B first)|;
- agreement between configs: the share of the other configs' labels of the pair whose verdict
  equals this one's (a tie on either side counts half), None when no other config labelled it;
- self-consistency spread: the standard deviation of the per-sample p(A) when n > 1.

``risk`` turns them into one number in [0, 1] per criterion (higher = less trustworthy); the
``combined`` criterion is the weighted mean of the components a label has.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

CRITERIA = {
    "margin": "Smallest margin |p(A) - 0.5|",
    "inconsistency": "Position inconsistency (the two orders disagree), then the order gap",
    "disagreement": "Disagreement with the other labeler configs",
    "spread": "Spread of the self-consistency samples",
    "combined": "Weighted combination of the signals",
}


def margin(p_a: float | None) -> float | None:
    return None if p_a is None else abs(float(p_a) - 0.5)


def position_consistent(p_a_ab: float | None, p_a_ba: float | None) -> bool | None:
    """Both orders prefer the same summary (an exact 0.5 counts as preferring B, as the labeler does)."""
    if p_a_ab is None or p_a_ba is None:
        return None
    return (p_a_ab > 0.5) == (p_a_ba > 0.5)


def order_gap(p_a_ab: float | None, p_a_ba: float | None) -> float | None:
    if p_a_ab is None or p_a_ba is None:
        return None
    return abs(float(p_a_ab) - float(p_a_ba))


def _verdict(p: float) -> float:
    return 1.0 if p > 0.5 else 0.0 if p < 0.5 else 0.5


def config_agreement(p_a: float | None, others: Sequence[float]) -> float | None:
    """Share of the other configs' p(A) whose verdict equals this one's; ties count half."""
    if p_a is None or not others:
        return None
    mine = _verdict(p_a)
    total = 0.0
    for p in others:
        v = _verdict(p)
        total += 0.5 if (v == 0.5 or mine == 0.5) else float(v == mine)
    return total / len(others)


def sample_spread(samples: Sequence[float]) -> float | None:
    """Population standard deviation of the self-consistency samples' p(A); None for fewer than 2."""
    if len(samples) < 2:
        return None
    mean = sum(samples) / len(samples)
    return math.sqrt(sum((s - mean) ** 2 for s in samples) / len(samples))


@dataclass(frozen=True)
class TrustSignals:
    p_a: float | None
    margin: float | None
    consistent: bool | None
    order_gap: float | None
    n_other_configs: int
    config_agreement: float | None
    sample_spread: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def signals(p_a: float | None, p_a_ab: float | None = None, p_a_ba: float | None = None,
            others: Sequence[float] = (), samples: Sequence[float] = ()) -> TrustSignals:
    """All signals of one label: its p(A) per order, the other configs' p(A), its samples' p(A)."""
    return TrustSignals(
        p_a=p_a, margin=margin(p_a), consistent=position_consistent(p_a_ab, p_a_ba),
        order_gap=order_gap(p_a_ab, p_a_ba), n_other_configs=len(others),
        config_agreement=config_agreement(p_a, others), sample_spread=sample_spread(samples),
    )


@dataclass(frozen=True)
class Weights:
    """Weights of the `combined` criterion (any non-negative numbers, not all zero)."""

    margin: float = 1.0
    inconsistency: float = 1.0
    disagreement: float = 1.0
    spread: float = 1.0

    def __post_init__(self):
        vals = asdict(self).values()
        if any(not math.isfinite(w) or w < 0 for w in vals) or sum(vals) <= 0:
            raise ValueError("weights must be non-negative numbers, not all zero")


def components(s: TrustSignals) -> dict[str, float]:
    """Each available signal as a risk in [0, 1]; a signal the label lacks is left out."""
    out: dict[str, float] = {}
    if s.margin is not None:
        out["margin"] = 1.0 - 2.0 * s.margin
    if s.consistent is not None:
        # Inconsistent labels rank above every consistent one (a consistent pair's gap is < 0.5).
        out["inconsistency"] = (0.0 if s.consistent else 0.5) + min(s.order_gap or 0.0, 1.0) / 2
    if s.config_agreement is not None:
        out["disagreement"] = 1.0 - s.config_agreement
    if s.sample_spread is not None:
        out["spread"] = min(2.0 * s.sample_spread, 1.0)
    return out


def risk(s: TrustSignals | None, criterion: str = "margin", weights: Weights | None = None) -> float:
    """How little to trust a label, in [0, 1] (higher first to humans); inf for no usable label.

    A label that lacks the criterion's signal (one order, one config, n = 1) scores 0 on it: there
    is no evidence against it on that criterion.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {sorted(CRITERIA)}, got {criterion!r}")
    if s is None or s.p_a is None:
        return math.inf
    comp = components(s)
    if criterion != "combined":
        return comp.get(criterion, 0.0)
    w = asdict(weights or Weights())
    used = {k: w[k] for k in comp if w[k] > 0}
    if not used:
        return 0.0
    return sum(comp[k] * wk for k, wk in used.items()) / sum(used.values())


def reason(s: TrustSignals | None, criterion: str = "margin", weights: Weights | None = None,
           error: str = "") -> str:
    """A short human-readable account of why a label was picked (for staff, never for annotators)."""
    if s is None or s.p_a is None:
        return f"no usable AI label ({error})" if error else "no usable AI label"
    parts = [f"p(A)={s.p_a:.3f}, margin {s.margin:.3f}"]
    if s.consistent is not None:
        parts.append(("orders agree" if s.consistent else "orders DISAGREE") + f" (gap {s.order_gap:.3f})")
    if s.config_agreement is not None:
        parts.append(f"{s.config_agreement:.0%} agreement with {s.n_other_configs} other config(s)")
    if s.sample_spread is not None:
        parts.append(f"sample spread {s.sample_spread:.3f}")
    return f"risk {risk(s, criterion, weights):.3f} by {criterion}: " + "; ".join(parts)


def signals_for_rows(rows, samples: dict | None = None) -> dict[int, TrustSignals]:
    """Signals of every label in `rows`, keyed by label id.

    `rows` are (label_id, comparison_id, config_id, p_a, p_a_ab, p_a_ba) for *all* labels of the
    comparisons concerned (agreement between configs looks at the other configs' labels of the
    same comparison); `samples` maps a label id to its self-consistency samples' p(A).
    """
    samples = samples or {}
    by_comparison: dict[int, list[tuple]] = {}
    for row in rows:
        by_comparison.setdefault(row[1], []).append(row)
    out: dict[int, TrustSignals] = {}
    for group in by_comparison.values():
        for label_id, _, config_id, p_a, p_ab, p_ba in group:
            others = [r[3] for r in group if r[2] != config_id and r[3] is not None]
            out[label_id] = signals(p_a, p_ab, p_ba, others, samples.get(label_id, ()))
    return out
