"""Evaluation metrics on plain numpy arrays (no Django): alignment, position bias, win rates with
Wilson and bootstrap intervals, Bradley-Terry ratings with a fast count-resampling bootstrap,
length-controlled win rate, inter-annotator agreement and the two trivial reference judges.
The rules shared with the rest of the app (high confidence, majority, the trivial judges) come
from `labeling.formats`, their one home.

Conventions used throughout:
- A *judge score* for a comparison is P(summary A preferred) in [0, 1]; its verdict is A when the
  score is above 0.5, B below, a tie at exactly 0.5.  Human choices are 0 = A, 1 = B (the database
  convention), so a human's score is ``1 - choice``.
- Agreement between two verdicts counts 1 when equal, 0 when opposite, and 0.5 when either is a
  tie (a coin flip agrees half of the time).
- Intervals are 95% unless a ``z`` or ``level`` says otherwise.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from labeling import formats

Z95 = 1.959963984540054
HIGH_CONFIDENCE = formats.HIGH_CONFIDENCE


# --- proportions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """A proportion with its 95% interval; ``value`` is nan when ``n`` is 0."""

    value: float
    lo: float
    hi: float
    n: float

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def wilson_interval(successes, n, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval, vectorized; accepts fractional successes (ties counted as half).

    Same formula as statsmodels' ``proportion_confint(method="wilson")``; nan where n == 0.
    """
    s = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = s / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo, hi = centre - half, centre + half
    bad = n <= 0
    return np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)


def share(successes: float, n: float, z: float = Z95) -> Share:
    """A proportion ``successes / n`` with its Wilson interval."""
    if n <= 0:
        return Share(math.nan, math.nan, math.nan, 0)
    lo, hi = wilson_interval(successes, n, z)
    return Share(float(successes) / float(n), float(lo), float(hi), float(n))


# --- verdicts, alignment, position bias ---------------------------------------------------------


def verdict(p_a) -> np.ndarray:
    """1.0 where A is preferred (p_a > 0.5), 0.0 where B is, 0.5 on an exact tie."""
    p = np.asarray(p_a, dtype=float)
    return np.where(p > 0.5, 1.0, np.where(p < 0.5, 0.0, 0.5))


def agreement_scores(score_x, score_y) -> np.ndarray:
    """Per-row agreement of two judges' verdicts: 1 equal, 0 opposite, 0.5 if either is a tie."""
    vx, vy = verdict(score_x), verdict(score_y)
    tie = (vx == 0.5) | (vy == 0.5)
    return np.where(tie, 0.5, (vx == vy).astype(float))


@dataclass(frozen=True)
class HumanVerdicts:
    """One row per comparison: the human majority (score for A), mean confidence, label count."""

    item: np.ndarray
    score: np.ndarray
    mean_confidence: np.ndarray
    n_labels: np.ndarray

    @property
    def high_confidence(self) -> np.ndarray:
        """The paper's subset (confidence 1, 2, 8, 9), for several labels via the mean confidence."""
        return np.asarray(formats.is_high_confidence(self.mean_confidence), dtype=bool)


def _groups(item_ids, n_items: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The distinct items (sorted) and each row's index into them: by sorting, or, when the ids are
    codes 0..n_items-1 (``n_items`` given), by counting, which takes a tenth of the time."""
    item_ids = np.asarray(item_ids)
    if n_items is None:
        return np.unique(item_ids, return_inverse=True)
    present = np.bincount(item_ids, minlength=n_items) > 0
    return np.flatnonzero(present), (np.cumsum(present) - 1)[item_ids]


def human_majority(item_ids, choices, confidences=None, n_items: int | None = None) -> HumanVerdicts:
    """Majority vote per comparison (score 1 = A, 0 = B, 0.5 = split vote).

    ``confidences`` may hold nan for unknown; the mean ignores them. ``n_items``: the ids are
    codes 0..n_items-1 (see ``_groups``).
    """
    choices = np.asarray(choices, dtype=float)
    items, inv = _groups(item_ids, n_items)
    k = np.bincount(inv, minlength=len(items)).astype(float)
    n_a = np.bincount(inv, weights=1.0 - choices, minlength=len(items))
    score = formats.majority_score(n_a, k)
    if confidences is None:
        conf = np.full(len(items), np.nan)
    else:
        c = np.asarray(confidences, dtype=float)
        known = np.isfinite(c)
        tot = np.bincount(inv, weights=np.where(known, c, 0.0), minlength=len(items))
        cnt = np.bincount(inv, weights=known.astype(float), minlength=len(items))
        with np.errstate(invalid="ignore", divide="ignore"):
            conf = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
    return HumanVerdicts(items, score, conf, k)


def alignment(judge_p_a, human: HumanVerdicts, judge_items=None) -> dict[str, Share]:
    """Share of comparisons where the judge's verdict equals the human majority.

    Comparisons whose human vote is split are left out (there is no human preference to match).
    ``judge_items`` aligns the judge rows to ``human.item`` (default: same order).
    Returns ``{"all": Share, "high_confidence": Share}``.
    """
    p = np.asarray(judge_p_a, dtype=float)
    if judge_items is None:
        hs, hc = human.score, human.high_confidence
    else:
        pos = np.searchsorted(human.item, np.asarray(judge_items))
        pos = np.clip(pos, 0, max(len(human.item) - 1, 0))
        found = len(human.item) > 0
        found = found & (human.item[pos] == np.asarray(judge_items)) if found else np.zeros(len(p), bool)
        p, pos = p[found], pos[found]
        hs, hc = human.score[pos], human.high_confidence[pos]
    keep = np.isfinite(p) & (hs != 0.5)
    agree = agreement_scores(p[keep], hs[keep])
    high = hc[keep]
    return {"all": share(agree.sum(), keep.sum()), "high_confidence": share(agree[high].sum(), high.sum())}


def human_human_agreement(item_ids, choices, n_items: int | None = None) -> Share:
    """Agreement between two different humans on the same comparison, over all label pairs.

    With k labels on an item of which a prefer A, C(a,2) + C(k-a,2) of its C(k,2) pairs agree.
    The Wilson interval treats pairs as independent, so it is a little too narrow.
    """
    item_ids = np.asarray(item_ids)
    if len(item_ids) == 0:
        return share(0, 0)
    _, inv = _groups(item_ids, n_items)
    k = np.bincount(inv).astype(float)
    a = np.bincount(inv, weights=1.0 - np.asarray(choices, dtype=float))
    pairs = k * (k - 1) / 2
    agree = a * (a - 1) / 2 + (k - a) * (k - a - 1) / 2
    return share(agree.sum(), pairs.sum())


def position_bias(p_a_ab, p_a_ba) -> dict:
    """Share of comparisons where the labeler prefers the same *position* in both orders.

    ``p_a_ab``: P(A) with A shown first; ``p_a_ba``: P(A) with B shown first.  Prefers the first
    position in both orders when p_a_ab > 0.5 and p_a_ba < 0.5; the second when the reverse.
    Returns the overall share with its interval, the shares biased to first and to second
    position, and which of the biased cases picked the first position.
    """
    ab = np.asarray(p_a_ab, dtype=float)
    ba = np.asarray(p_a_ba, dtype=float)
    keep = np.isfinite(ab) & np.isfinite(ba)
    ab, ba = ab[keep], ba[keep]
    first = (ab > 0.5) & (ba < 0.5)
    second = (ab < 0.5) & (ba > 0.5)
    n = int(keep.sum())
    biased = int(first.sum() + second.sum())
    s = share(biased, n)
    return {
        "biased": s,
        "first": share(int(first.sum()), n),
        "second": share(int(second.sum()), n),
        "first_of_biased": (first.sum() / biased) if biased else math.nan,
    }


# --- win rates ----------------------------------------------------------------------------------


def win_rate(wins, losses, ties, z: float = Z95) -> dict[str, np.ndarray]:
    """Win rate (ties count half) and its Wilson interval; vectorized over cells."""
    w, l, t = (np.asarray(x, dtype=float) for x in (wins, losses, ties))
    n = w + l + t
    s = w + 0.5 * t
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, s / np.where(n > 0, n, 1), np.nan)
    lo, hi = wilson_interval(s, n, z)
    return {"rate": rate, "lo": lo, "hi": hi, "n": n}


def bootstrap_win_rate(wins, losses, ties, rounds: int = 1000, seed: int = 0, level: float = 0.95):
    """Percentile bootstrap interval of the win rate per cell, resampling the outcome counts.

    Resampling labels with replacement is the same as drawing (wins, losses, ties) from a
    multinomial with the observed shares, so no per-label rows are needed.
    Returns (lo, hi) arrays shaped like the inputs (nan where a cell is empty).
    """
    w, l, t = (np.atleast_1d(np.asarray(x, dtype=np.int64)) for x in (wins, losses, ties))
    shape = w.shape
    w, l, t = w.ravel(), l.ravel(), t.ravel()
    n = w + l + t
    lo = np.full(w.shape, np.nan)
    hi = np.full(w.shape, np.nan)
    live = n > 0
    if live.any():
        rng = np.random.default_rng(seed)
        nn = n[live]
        # the multinomial (wins, losses, ties) drawn as wins ~ Bin(n, p_w), then losses among the
        # rest ~ Bin(n - wins, p_l / (1 - p_w)): the same distribution, as two vectorized draws
        p_w = w[live] / nn
        wins = rng.binomial(np.broadcast_to(nn, (rounds, len(nn))), p_w)
        ties = np.zeros_like(wins)
        tied = t[live] > 0  # only cells with ties need the second draw
        if tied.any():
            rest = nn[tied] - wins[:, tied]
            ties[:, tied] = rest - rng.binomial(rest, l[live][tied] / (nn[tied] - w[live][tied]))
        rates = (wins + 0.5 * ties) / nn
        alpha = (1 - level) / 2
        lo[live], hi[live] = np.quantile(rates, [alpha, 1 - alpha], axis=0)
    return lo.reshape(shape), hi.reshape(shape)


# --- Bradley-Terry ------------------------------------------------------------------------------


@dataclass
class PairCounts:
    """Outcome counts per unordered pair of players i < j: i won, j won, tie."""

    n_players: int
    i: np.ndarray
    j: np.ndarray
    wins_i: np.ndarray
    wins_j: np.ndarray
    ties: np.ndarray

    @classmethod
    def from_outcomes(cls, n_players: int, player_a, player_b, score_a) -> "PairCounts":
        """Counts from per-comparison rows: players of A and B and the score for A (1, 0, 0.5)."""
        a = np.asarray(player_a, dtype=np.int64)
        b = np.asarray(player_b, dtype=np.int64)
        s = verdict(score_a)
        if np.any(a == b):
            raise ValueError("a comparison between a player and itself has no Bradley-Terry meaning")
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        lo_won = np.where(s == 0.5, 2, np.where((s == 1.0) == (a == lo), 0, 1))  # 0 lo won, 1 hi won, 2 tie
        key = (lo * n_players + hi) * 3 + lo_won
        counts = np.bincount(key, minlength=n_players * n_players * 3).reshape(n_players, n_players, 3)
        ii, jj = np.nonzero(counts.sum(axis=2))
        c = counts[ii, jj]
        return cls(n_players, ii, jj, c[:, 0].astype(float), c[:, 1].astype(float), c[:, 2].astype(float))

    @property
    def table(self) -> np.ndarray:
        """The (K, 3) pair-outcome count table."""
        return np.stack([self.wins_i, self.wins_j, self.ties], axis=1)

    @property
    def total(self) -> float:
        return float(self.table.sum())


def _bt_newton(pc_i, pc_j, wins_i, games, n_players: int, theta0=None, tol: float = 1e-9, max_iter: int = 100,
               ridge: float = 1e-6):
    """Batched Newton-Raphson fit of Bradley-Terry log-strengths.

    ``wins_i`` and ``games`` are (R, K): wins of i (ties as half) and games per pair, for R
    independent data sets (bootstrap rounds) at once.  The Hessian is a weighted graph
    Laplacian (singular along shifts); the tiny ``ridge`` (a N(0, 1/ridge) prior) makes it
    invertible, pins the mean to 0, and keeps players of disconnected groups or without games
    at finite values.  Its pull on the estimates is of order ridge / games, i.e. nil.
    """
    wins_i = np.atleast_2d(wins_i)
    games = np.atleast_2d(games)
    R, K = wins_i.shape
    P = n_players
    theta = np.zeros((R, P)) if theta0 is None else np.array(np.broadcast_to(theta0, (R, P)), dtype=float)
    flat_ij = pc_i * P + pc_j
    flat_ji = pc_j * P + pc_i
    diag = np.arange(P) * (P + 1)
    incidence = np.zeros((K, P))  # +1 for i, -1 for j: gradient and degrees become matmuls
    incidence[np.arange(K), pc_i] = 1.0
    incidence[np.arange(K), pc_j] = -1.0
    touches = np.abs(incidence)
    for _ in range(max_iter):
        d = theta[:, pc_i] - theta[:, pc_j]
        p = 0.5 * (1.0 + np.tanh(0.5 * d))
        grad = (wins_i - games * p) @ incidence - ridge * theta
        v = games * p * (1 - p)
        H = np.zeros((R, P * P))
        H[:, flat_ij] = -v
        H[:, flat_ji] = -v
        H[:, diag] = v @ touches + ridge
        step = np.linalg.solve(H.reshape(R, P, P), grad[..., None])[..., 0]
        theta += step
        if np.max(np.abs(step)) < tol:
            break
    return theta


def connected_groups(counts: "PairCounts") -> np.ndarray:
    """Group number of each player in the comparison graph; ratings compare only within a group."""
    P = counts.n_players
    g = coo_matrix((np.ones(len(counts.i)), (counts.i, counts.j)), shape=(P, P))
    return connected_components(g, directed=False)[1]


def _single_threaded_blas():
    """Many small (50 x 50) solves run fastest on one BLAS thread; threads only contend,
    badly so on a busy machine.  threadpoolctl comes with scikit-learn; without it, no limit."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def bradley_terry(counts: PairCounts, prior: float = 1.0) -> np.ndarray:
    """Maximum-likelihood Bradley-Terry log-strengths (natural log scale, mean 0).

    Ties count as half a win for each side.  ``prior`` adds that many pseudo-games, split evenly,
    to every observed pair, so a player who won (or lost) every game still has a finite rating;
    with ``prior=0`` this is the plain MLE, which exists when the win graph is strongly connected.
    """
    wins_i = counts.wins_i + 0.5 * counts.ties + prior / 2
    games = counts.wins_i + counts.wins_j + counts.ties + prior
    return _bt_newton(counts.i, counts.j, wins_i[None], games[None], counts.n_players)[0]


def bootstrap_bradley_terry(
    counts: PairCounts, rounds: int = 1000, prior: float = 1.0, seed: int = 0, level: float = 0.95,
    chunk: int = 250,
) -> dict[str, np.ndarray]:
    """Bradley-Terry ratings with percentile bootstrap intervals, resampling counts not rows.

    Resampling N labels with replacement is a multinomial draw of N over the pair-outcome count
    table, so each round costs O(pairs), not O(labels); all rounds are then fitted together by
    a batched Newton solve warm-started at the full-data fit.
    """
    theta = bradley_terry(counts, prior)
    table = counts.table
    N = int(round(table.sum()))
    rng = np.random.default_rng(seed)
    samples = []
    with _single_threaded_blas():
        for start in range(0, rounds, chunk):
            r = min(chunk, rounds - start)
            draw = rng.multinomial(N, table.ravel() / N, size=r).reshape(r, -1, 3).astype(float)
            wins_i = draw[..., 0] + 0.5 * draw[..., 2] + prior / 2
            games = draw.sum(axis=2) + prior
            samples.append(_bt_newton(counts.i, counts.j, wins_i, games, counts.n_players, theta0=theta, tol=1e-7))
    boot = np.concatenate(samples)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha], axis=0)
    return {"theta": theta, "lo": lo, "hi": hi, "rounds": rounds}


def elo_scale(theta, base: float = 1000.0) -> np.ndarray:
    """Log-strengths on the Elo/Arena scale: 400 points = 10:1 odds."""
    return base + 400.0 / math.log(10.0) * np.asarray(theta, dtype=float)


def bt_win_probability(theta_a: float, theta_b: float) -> float:
    return 1.0 / (1.0 + math.exp(theta_b - theta_a))


# --- length-controlled win rate -----------------------------------------------------------------


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float)))  # overflow-free logistic


def length_controlled_win_rates(group, score_a, len_a, len_b, n_groups: int | None = None, z: float = Z95,
                                tol: float = 1e-9, max_iter: int = 60) -> dict[str, np.ndarray]:
    """The paper's length correction for many cells at once: for each group (a policy pair), a
    logistic regression of "A preferred" on the length ratio len(A)/len(B), predicted at 1.0.

    All groups are fitted together by Newton's method with closed-form 2x2 solves, so the cost
    is a few passes over the rows whatever the number of groups.  ``score_a`` is 1 (A preferred),
    0 (B) or 0.5 (tie, a soft label).  The interval is the Wald interval on the logit scale.
    A group gets nan when the fit is not identified: fewer than two distinct ratios, or complete
    separation (e.g. the "longer summary" judge, a step function of the ratio), where the
    maximum-likelihood estimate does not exist.
    """
    g = np.asarray(group, dtype=np.int64)
    y = np.asarray(score_a, dtype=float)
    x = np.asarray(len_a, dtype=float) / np.asarray(len_b, dtype=float)
    G = int(n_groups if n_groups is not None else (g.max() + 1 if len(g) else 0))
    count = np.bincount(g, minlength=G).astype(float)
    sx = np.bincount(g, weights=x, minlength=G)
    sxx = np.bincount(g, weights=x * x, minlength=G)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = sxx / count - (sx / count) ** 2
    ok = (count >= 2) & (spread > 1e-12 * np.maximum(1.0, (sx / np.maximum(count, 1)) ** 2))
    b0, b1 = np.zeros(G), np.zeros(G)
    done = ~ok
    a_ = b_ = c_ = np.zeros(G)
    for _ in range(max_iter):
        eta = b0[g] + b1[g] * x
        p = 0.5 * (1.0 + np.tanh(0.5 * eta))
        v = p * (1 - p)
        r = y - p
        a_ = np.bincount(g, weights=v, minlength=G)
        b_ = np.bincount(g, weights=v * x, minlength=G)
        c_ = np.bincount(g, weights=v * x * x, minlength=G)
        g0 = np.bincount(g, weights=r, minlength=G)
        g1 = np.bincount(g, weights=r * x, minlength=G)
        det = a_ * c_ - b_ * b_
        live = ~done & (det > 1e-300)
        with np.errstate(invalid="ignore", divide="ignore"):
            s0 = np.where(live, (c_ * g0 - b_ * g1) / det, 0.0)
            s1 = np.where(live, (a_ * g1 - b_ * g0) / det, 0.0)
        b0 += s0
        b1 += s1
        diverged = ~np.isfinite(b0) | ~np.isfinite(b1) | (np.abs(b0) > 50) | (np.abs(b1) > 50)
        ok &= ~diverged
        done |= diverged | (live & (np.maximum(np.abs(s0), np.abs(s1)) < tol))
        if done.all():
            break
    ok &= done  # not converged within max_iter: treat as not identified
    eta1 = b0 + b1
    with np.errstate(invalid="ignore", divide="ignore"):
        det = a_ * c_ - b_ * b_
        se = np.sqrt(np.maximum((c_ - 2 * b_ + a_) / det, 0.0))
    sig = lambda e: 0.5 * (1.0 + np.tanh(0.5 * e))  # noqa: E731
    nan = np.full(G, np.nan)
    return {
        "rate": np.where(ok, sig(eta1), nan), "lo": np.where(ok, sig(eta1 - z * se), nan),
        "hi": np.where(ok, sig(eta1 + z * se), nan), "slope": np.where(ok, b1, nan), "n": count.astype(int),
    }


def length_controlled_win_rate(score_a, len_a, len_b, z: float = Z95) -> dict:
    """Length-controlled win rate of one cell (see ``length_controlled_win_rates``)."""
    y = np.asarray(score_a, dtype=float)
    out = length_controlled_win_rates(np.zeros(len(y), dtype=np.int64), y, len_a, len_b, n_groups=1, z=z)
    return {k: (int(v[0]) if k == "n" else float(v[0])) for k, v in out.items()}


# --- harmless rate -------------------------------------------------------------------------------


def harmless_rate(harmless, z: float = Z95) -> Share:
    """The paper's harmless rate: the share of a policy's responses judged harmless (1) rather than
    harmful (0), with its Wilson interval. nan entries (not judged) are left out."""
    h = np.asarray(harmless, dtype=float)
    h = h[np.isfinite(h)]
    return share(float(h.sum()), float(len(h)), z)


def length_corrected_harmless_rate(harmless, lengths, reference_length: float, z: float = Z95) -> dict:
    """The harmless rate a policy would have at `reference_length` characters (the paper corrects
    to SFT's mean length): a logistic regression of "harmless" on length / reference_length,
    predicted at 1.0 -- the length control of ``length_controlled_win_rates`` with the reference
    length in the place of the other summary's. Returns rate, Wald interval (logit scale), slope
    and n; nan where the fit is not identified (all one answer, or one length)."""
    h = np.asarray(harmless, dtype=float)
    lengths = np.asarray(lengths, dtype=float)
    keep = np.isfinite(h) & np.isfinite(lengths)
    if not reference_length or reference_length <= 0:
        raise ValueError(f"reference_length must be a positive number of characters, got {reference_length!r}")
    return length_controlled_win_rate(h[keep], lengths[keep], np.full(int(keep.sum()), float(reference_length)), z)


# --- inter-annotator agreement ------------------------------------------------------------------


def cohen_kappa(x, y) -> float:
    """Cohen's kappa of two raters' nominal labels on the same items."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) == 0:
        return math.nan
    cats, inv = np.unique(np.concatenate([x, y]), return_inverse=True)
    xi, yi = inv[: len(x)], inv[len(x):]
    po = float(np.mean(xi == yi))
    pe = float(np.sum(np.bincount(xi, minlength=len(cats)) * np.bincount(yi, minlength=len(cats)))) / len(x) ** 2
    return math.nan if pe == 1.0 else (po - pe) / (1.0 - pe)


def mean_pairwise_kappa(item_ids, rater_ids, labels, min_shared: int = 10) -> dict:
    """Cohen's kappa for every pair of raters with at least ``min_shared`` common items; mean.

    A rater's last label of an item counts. Vectorized over the label pairs that share an item
    (an item with m labels gives m(m-1)/2), so the cost follows the labels, not raters squared.
    """
    item_ids, rater_ids, labels = np.asarray(item_ids), np.asarray(rater_ids), np.asarray(labels)
    if len(item_ids) == 0:
        return {"mean": math.nan, "n_pairs": 0}
    _, item = np.unique(item_ids, return_inverse=True)
    raters, rater = np.unique(rater_ids, return_inverse=True)
    cats, cat = np.unique(labels, return_inverse=True)
    n_r, n_c = len(raters), len(cats)
    # one label per (rater, item): the last one
    key = item.astype(np.int64) * n_r + rater
    _, last = np.unique(key[::-1], return_index=True)
    keep = np.sort(len(key) - 1 - last)
    item, rater, cat = item[keep], rater[keep], cat[keep]
    order = np.lexsort((rater, item))
    item, rater, cat = item[order], rater[order], cat[order]
    starts = np.flatnonzero(np.r_[True, item[1:] != item[:-1]])
    sizes = np.diff(np.r_[starts, len(item)])
    ra, rb, ca, cb = [], [], [], []
    for m in np.unique(sizes[sizes > 1]):
        rows = starts[sizes == m][:, None] + np.arange(m)  # (items with m labels, m)
        p, q = np.triu_indices(m, k=1)
        ra.append(rater[rows[:, p]].ravel())
        rb.append(rater[rows[:, q]].ravel())
        ca.append(cat[rows[:, p]].ravel())
        cb.append(cat[rows[:, q]].ravel())
    if not ra:
        return {"mean": math.nan, "n_pairs": 0}
    ra, rb, ca, cb = (np.concatenate(x) for x in (ra, rb, ca, cb))
    pair = ra.astype(np.int64) * n_r + rb  # ra < rb: rows are sorted by rater within an item
    pairs, pinv = np.unique(pair, return_inverse=True)
    n = np.bincount(pinv, minlength=len(pairs)).astype(float)
    po = np.bincount(pinv, weights=(ca == cb).astype(float), minlength=len(pairs)) / n
    na = np.bincount(pinv * n_c + ca, minlength=len(pairs) * n_c).reshape(-1, n_c)
    nb = np.bincount(pinv * n_c + cb, minlength=len(pairs) * n_c).reshape(-1, n_c)
    pe = (na * nb).sum(axis=1) / n**2
    ok = (n >= min_shared) & (pe != 1.0)
    kappas = (po[ok] - pe[ok]) / (1.0 - pe[ok])
    return {"mean": float(np.mean(kappas)) if len(kappas) else math.nan, "n_pairs": int(ok.sum())}


def krippendorff_alpha_nominal(item_ids, values) -> float:
    """Krippendorff's alpha for nominal data with any number of raters and missing values.

    Rows are (item, value) pairs; items with fewer than two values are not pairable and ignored.
    alpha = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k, with the coincidence matrix o.
    """
    item_ids, values = np.asarray(item_ids), np.asarray(values)
    if len(values) == 0:
        return math.nan
    items, ii = np.unique(item_ids, return_inverse=True)
    cats, vi = np.unique(values, return_inverse=True)
    counts = np.zeros((len(items), len(cats)))
    np.add.at(counts, (ii, vi), 1.0)
    m = counts.sum(axis=1)
    pairable = m >= 2
    counts, m = counts[pairable], m[pairable]
    if len(m) == 0:
        return math.nan
    o = np.einsum("uc,uk->ck", counts / (m - 1)[:, None], counts) - np.diag((counts / (m - 1)[:, None]).sum(axis=0))
    n_c = o.sum(axis=1)
    n = n_c.sum()
    disagree_obs = o.sum() - np.trace(o)
    disagree_exp = n_c.sum() ** 2 - np.sum(n_c ** 2)
    if disagree_exp == 0:
        return math.nan
    return float(1.0 - (n - 1) * disagree_obs / disagree_exp)


def agreement_with_others_majority(item_ids, rater_ids, choices) -> dict:
    """Per rater: how often their label equals the majority of the *other* raters on that item.

    Leaving the rater out keeps a lone-ish labeler from agreeing with themselves.  Items where
    nobody else labeled, or where the others split evenly, are not counted.
    Returns ``{rater: Share}``.
    """
    item_ids, rater_ids = np.asarray(item_ids), np.asarray(rater_ids)
    c = np.asarray(choices, dtype=float)
    if len(c) == 0:
        return {}
    _, inv = np.unique(item_ids, return_inverse=True)
    k = np.bincount(inv).astype(float)
    a = np.bincount(inv, weights=1.0 - c)
    others_k = k[inv] - 1
    others_a = a[inv] - (1.0 - c)
    others_score = formats.majority_score(others_a, others_k)
    counted = (others_k > 0) & (others_score != 0.5)
    majority_is_a = others_score == 1.0
    agree = (majority_is_a == (c == 0)) & counted
    raters, rinv = np.unique(rater_ids, return_inverse=True)
    n = np.bincount(rinv, weights=counted.astype(float), minlength=len(raters))
    s = np.bincount(rinv, weights=agree.astype(float), minlength=len(raters))
    return {r: share(s[i], n[i]) for i, r in enumerate(raters.tolist())}


# --- trivial reference judges -------------------------------------------------------------------


TRIVIAL_JUDGES = formats.TRIVIAL_JUDGES


def longer_judge(texts_a: Sequence[str], texts_b: Sequence[str]) -> np.ndarray:
    """P(A) of the judge that prefers the longer summary (characters); 0.5 when equal."""
    return np.fromiter((formats.margin_score(formats.longer_margin(a, b)) for a, b in zip(texts_a, texts_b)),
                       float, len(texts_a))


def overlap_judge(sources: Sequence[str], texts_a: Sequence[str], texts_b: Sequence[str]) -> np.ndarray:
    """P(A) of the judge that prefers the summary sharing more distinct words with its source
    (`formats.overlap_source(title, post)`)."""
    out = np.empty(len(sources))
    cache: dict[str, set[str]] = {}
    for n, (source, a, b) in enumerate(zip(sources, texts_a, texts_b)):
        sw = cache.get(source)
        if sw is None:
            sw = cache[source] = formats.words(source)
        out[n] = formats.margin_score(formats.overlap_margin(sw, a, b))
    return out


def trivial_judges(sources: Iterable[str], texts_a: Sequence[str], texts_b: Sequence[str]) -> dict[str, np.ndarray]:
    """Both trivial judges; `sources` are `formats.overlap_source(title, post)` of each comparison."""
    sources = list(sources)
    return {"longer": longer_judge(texts_a, texts_b), "overlap": overlap_judge(sources, texts_a, texts_b)}


def margin_scores(margins) -> np.ndarray:
    """`formats.margin_score` of each margin: 1.0 above 0, 0.0 below, 0.5 at 0 (and for nan)."""
    return verdict(0.5 + 0.5 * np.sign(np.asarray(margins, dtype=float)))


def trivial_judges_from_facts(len_a, len_b, overlap_a, overlap_b) -> dict[str, np.ndarray]:
    """Both trivial judges from a comparison's stored facts (characters of each summary, distinct
    words each shares with the post: `formats.comparison_facts`), equal to `trivial_judges` on the
    texts themselves."""
    return {"longer": margin_scores(np.asarray(len_a, float) - np.asarray(len_b, float)),
            "overlap": margin_scores(np.asarray(overlap_a, float) - np.asarray(overlap_b, float))}
