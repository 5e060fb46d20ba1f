"""Simulated human budgets for hybrid labeling (numpy, no Django).

On comparisons that all have a human majority, send k of the N pairs to humans and keep the AI
label on the rest; the merged set agrees with the humans on the k routed pairs and wherever the
AI is right on the others:  agreement(k) = (k + sum of AI correctness outside the routed set) / N.

Three ways to choose the k pairs:
- ``uncertainty``: highest risk first (``labeling.judges.trust.risk``); pairs of equal risk are
  taken in random order, so the curve is the exact expectation over that order (linear inside a
  tied group);
- ``random``: the exact expectation over all orders, acc + (k / N) (1 - acc), a straight line,
  with the 2.5-97.5% range of single draws (the number of AI errors among k random pairs is
  hypergeometric; normal approximation);
- ``oracle``: the AI's wrong pairs first (an upper limit no real router reaches).

Intervals of the uncertainty and oracle curves are 95% Wilson intervals of the agreement share.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import Z95, agreement_scores, wilson_interval

STRATEGIES = ("uncertainty", "random", "oracle")


def ai_correctness(ai_p_a, human_score) -> np.ndarray:
    """1 where the AI verdict equals the human majority, 0 where opposite, 0.5 on an AI tie."""
    return agreement_scores(ai_p_a, human_score)


def grouped_cumsum(values, keys) -> np.ndarray:
    """Expected sum of `values` over the first k items (k = 0..N) when items are taken by
    descending key and equal keys in random order.  Returns an array of length N + 1."""
    v = np.asarray(values, dtype=float)
    key = np.asarray(keys, dtype=float)
    n = len(v)
    out = np.zeros(n + 1)
    if n == 0:
        return out
    order = np.lexsort((np.arange(n), -key))
    v, key = v[order], key[order]
    new_group = np.concatenate([[True], key[1:] != key[:-1]])
    gid = np.cumsum(new_group) - 1
    starts = np.nonzero(new_group)[0]
    sums = np.add.reduceat(v, starts)
    sizes = np.diff(np.append(starts, n))
    before = np.concatenate([[0.0], np.cumsum(sums)[:-1]])
    pos = np.arange(n) - starts[gid] + 1
    out[1:] = before[gid] + (sums / sizes)[gid] * pos
    return out


def agreement_curve(correct, route_keys) -> np.ndarray:
    """Merged-set agreement for k = 0..N when pairs are routed by descending `route_keys`."""
    c = np.asarray(correct, dtype=float)
    n = len(c)
    if n == 0:
        return np.zeros(1)
    wrong_taken = np.arange(n + 1) - grouped_cumsum(c, route_keys)  # routed pairs the AI had wrong
    return (c.sum() + wrong_taken) / n


def random_curve(correct) -> np.ndarray:
    """Exact expected agreement under random routing, k = 0..N: acc + (k / N) (1 - acc)."""
    c = np.asarray(correct, dtype=float)
    n = len(c)
    if n == 0:
        return np.zeros(1)
    acc = c.mean()
    return acc + np.arange(n + 1) / n * (1.0 - acc)


def random_band(correct, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Range of single random draws: agreement = (C + E_k) / N where E_k, the AI's errors among k
    random pairs, is hypergeometric (variance k p (1-p) (N-k)/(N-1), p = error share)."""
    c = np.asarray(correct, dtype=float)
    n = len(c)
    mean = random_curve(c)
    if n < 2:
        return mean, mean
    p = 1.0 - c.mean()
    k = np.arange(n + 1)
    sd = np.sqrt(k * p * (1 - p) * (n - k) / (n - 1)) / n
    return np.clip(mean - z * sd, 0, 1), np.clip(mean + z * sd, 0, 1)


def random_draw_curve(correct, rng: np.random.Generator) -> np.ndarray:
    """One random routing order's curve (for checking the expectation by simulation)."""
    c = np.asarray(correct, dtype=float)
    perm = rng.permutation(len(c))
    return (c.sum() + np.concatenate([[0.0], np.cumsum(1.0 - c[perm])])) / max(len(c), 1)


@dataclass
class Simulation:
    n: int
    ai_accuracy: float
    curves: dict[str, np.ndarray]  # strategy -> agreement at k = 0..N
    bands: dict[str, tuple[np.ndarray, np.ndarray]]

    def at(self, strategy: str, fraction: float) -> float:
        """Agreement at a budget share; for random, the exact line (no rounding to whole pairs)."""
        if strategy == "random":
            return float(self.ai_accuracy + fraction * (1.0 - self.ai_accuracy))
        return float(self.curves[strategy][int(round(fraction * self.n))])

    def budget_to_reach(self, strategy: str, target: float) -> float | None:
        """Smallest share of pairs sent to humans at which `strategy` reaches `target` agreement."""
        hit = np.nonzero(self.curves[strategy] >= target - 1e-12)[0]
        return float(hit[0] / self.n) if len(hit) else None

    def points(self, fractions) -> list[dict]:
        """One row per budget fraction: k, agreement and interval of each strategy."""
        rows = []
        for f in fractions:
            k = int(round(f * self.n))
            row = {"budget": float(f), "k": k}
            for s in self.curves:
                row[s] = float(self.curves[s][k])
                row[f"{s}_lo"], row[f"{s}_hi"] = float(self.bands[s][0][k]), float(self.bands[s][1][k])
            rows.append(row)
        return rows


def simulate(ai_p_a, human_score, risk) -> Simulation:
    """Curves of the three strategies for pairs with a human majority (split votes dropped) and an
    AI label; `risk` is the router's score per pair (higher goes to humans first)."""
    p = np.asarray(ai_p_a, dtype=float)
    h = np.asarray(human_score, dtype=float)
    r = np.asarray(risk, dtype=float)
    keep = np.isfinite(p) & (h != 0.5)
    p, h, r = p[keep], h[keep], r[keep]
    c = ai_correctness(p, h)
    n = len(c)
    curves = {
        "uncertainty": agreement_curve(c, r),
        "random": random_curve(c),
        "oracle": agreement_curve(c, 1.0 - c),
    }
    bands = {}
    for s in ("uncertainty", "oracle"):
        lo, hi = wilson_interval(curves[s] * n, np.full(n + 1, n))
        bands[s] = (lo, hi)
    bands["random"] = random_band(c)
    return Simulation(n=n, ai_accuracy=float(c.mean()) if n else float("nan"), curves=curves, bands=bands)


def budget_fractions(step: float = 0.05) -> list[float]:
    return [round(x, 4) for x in np.arange(0.0, 1.0 + step / 2, step)]


def headline(sim: Simulation, reference_budget: float = 0.5) -> dict:
    """The figure the issue asks for: the budget routing needs to match random at `reference_budget`."""
    target = sim.at("random", reference_budget)
    k = int(round(reference_budget * sim.n))
    need = sim.budget_to_reach("uncertainty", target)
    oracle = sim.budget_to_reach("oracle", target)
    return {
        "n_pairs": sim.n, "ai_accuracy": sim.ai_accuracy, "reference_budget": reference_budget,
        "random_agreement_at_reference": target, "uncertainty_budget_needed": need,
        "oracle_budget_needed": oracle,
        "uncertainty_at_reference": sim.at("uncertainty", reference_budget),
        "human_saving": (reference_budget - need) if need is not None else None,
        "routing_beats_random": need is not None and need < reference_budget - 1e-9,
        # A router no better than chance is a random router: above 97.5% of random draws at the
        # reference budget is the evidence that the saving is not luck (one-sided, 2.5%).
        "random_draws_hi_at_reference": float(sim.bands["random"][1][k]),
        "routing_clearly_beats_random": bool(sim.curves["uncertainty"][k] > sim.bands["random"][1][k] + 1e-12),
    }
