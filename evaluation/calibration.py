"""Calibration of an AI labeler's soft labels against the human majority (numpy, no Django).

The AI's stated confidence on a comparison is max(p(A), 1 - p(A)) in [0.5, 1]; it is right when
its verdict equals the human majority (a tie counts half, as in ``metrics.agreement_scores``).
Comparisons whose human vote is split are left out, as alignment leaves them out.

- ``reliability_diagram``: confidence cut into ``n_bins`` equal bins over [0.5, 1]; per bin the
  count, mean confidence and human agreement rate (with its Wilson interval).
- ``expected_calibration_error``: sum over bins of (bin count / N) * |agreement - mean confidence|.
- ``brier_score``: mean of (p(A) - y)^2 with y = 1 where the humans prefer A, 0 where they prefer B.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import metrics

DEFAULT_BINS = 5


def _clean(p_a, human_score) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p_a, dtype=float)
    h = np.asarray(human_score, dtype=float)
    if p.shape != h.shape:
        raise ValueError(f"p_a and human_score differ in length ({p.shape} vs {h.shape})")
    keep = np.isfinite(p) & np.isfinite(h) & (h != 0.5)
    return p[keep], h[keep]


def confidence(p_a) -> np.ndarray:
    p = np.asarray(p_a, dtype=float)
    return np.maximum(p, 1.0 - p)


def bin_index(conf, n_bins: int = DEFAULT_BINS) -> np.ndarray:
    """Bin of each confidence in [0.5, 1]: bins are [lo, hi) except the last, which includes 1."""
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    # The small nudge keeps a confidence on an edge (0.6 = 0.5 + 0.1 in floating point) in the upper bin.
    idx = np.floor((np.asarray(conf, dtype=float) - 0.5) * (2 * n_bins) + 1e-9).astype(int)
    return np.clip(idx, 0, n_bins - 1)


@dataclass(frozen=True)
class ReliabilityBin:
    lo: float
    hi: float
    n: int
    mean_confidence: float | None
    agreement: float | None
    agreement_lo: float | None
    agreement_hi: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def reliability_diagram(p_a, human_score, n_bins: int = DEFAULT_BINS) -> list[ReliabilityBin]:
    """Human agreement rate against the AI's confidence, one entry per bin (empty bins included)."""
    p, h = _clean(p_a, human_score)
    conf = confidence(p)
    right = metrics.agreement_scores(p, h)
    idx = bin_index(conf, n_bins)
    out = []
    for b in range(n_bins):
        m = idx == b
        n = int(m.sum())
        lo, hi = 0.5 + 0.5 * b / n_bins, 0.5 + 0.5 * (b + 1) / n_bins
        if n == 0:
            out.append(ReliabilityBin(lo, hi, 0, None, None, None, None))
            continue
        s = metrics.share(right[m].sum(), n)
        out.append(ReliabilityBin(lo, hi, n, float(conf[m].mean()), s.value, s.lo, s.hi))
    return out


def expected_calibration_error(p_a, human_score, n_bins: int = DEFAULT_BINS) -> float | None:
    bins = reliability_diagram(p_a, human_score, n_bins)
    total = sum(b.n for b in bins)
    if total == 0:
        return None
    return float(sum(b.n / total * abs(b.agreement - b.mean_confidence) for b in bins if b.n))


def brier_score(p_a, human_score) -> float | None:
    p, h = _clean(p_a, human_score)
    if len(p) == 0:
        return None
    return float(np.mean((p - h) ** 2))


def calibration_summary(p_a, human_score, n_bins: int = DEFAULT_BINS) -> dict:
    """n, alignment, mean confidence, ECE, Brier score and the reliability bins of one judge."""
    p, h = _clean(p_a, human_score)
    n = len(p)
    right = metrics.agreement_scores(p, h) if n else np.zeros(0)
    return {
        "n": n,
        "alignment": float(right.mean()) if n else None,
        "mean_confidence": float(confidence(p).mean()) if n else None,
        "ece": expected_calibration_error(p, h, n_bins),
        "brier": brier_score(p, h),
        "bins": [b.as_dict() for b in reliability_diagram(p, h, n_bins)],
    }
