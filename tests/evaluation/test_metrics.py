"""evaluation.metrics: each metric on a hand-computed case and against a reference implementation
(statsmodels, scikit-learn, scipy, or a direct loop) on the same data."""
from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.proportion import proportion_confint

from evaluation import metrics as m


# --- Wilson interval ---------------------------------------------------------------------------


def test_wilson_hand_computed():
    # 8 of 10: p = .8, z^2 = 3.8415; centre = (.8 + .19207)/1.38415; half = z*sqrt(.016 + .0096)/1.38415
    lo, hi = m.wilson_interval(8, 10)
    assert float(lo) == pytest.approx(0.4902, abs=1e-4)
    assert float(hi) == pytest.approx(0.9433, abs=1e-4)


def test_wilson_matches_statsmodels():
    rng = np.random.default_rng(3)
    n = rng.integers(1, 2000, 200)
    s = rng.integers(0, n + 1) + 0.5 * rng.integers(0, 2, 200)  # ties as half give fractional counts
    s = np.minimum(s, n)
    lo, hi = m.wilson_interval(s, n)
    ref_lo, ref_hi = proportion_confint(s, n, alpha=0.05, method="wilson")
    np.testing.assert_allclose(lo, ref_lo, atol=1e-10)
    np.testing.assert_allclose(hi, ref_hi, atol=1e-10)


def test_wilson_empty_is_nan():
    lo, hi = m.wilson_interval(0, 0)
    assert math.isnan(float(lo)) and math.isnan(float(hi))


# --- alignment, human agreement, position bias ---------------------------------------------------


def test_alignment_with_majority_and_high_confidence():
    # item 1: two humans prefer A (conf 1, 2) -> A, high confidence
    # item 2: humans split -> left out
    # item 3: one human prefers B with confidence 6 -> B, not high confidence
    # item 4: one human prefers B with confidence 9 -> B, high confidence
    hv = m.human_majority([1, 1, 2, 2, 3, 4], [0, 0, 0, 1, 1, 1], [1, 2, 3, 7, 6, 9])
    assert hv.score.tolist() == [1.0, 0.5, 0.0, 0.0]
    assert hv.high_confidence.tolist() == [True, False, False, True]
    # judge: A on 1 (agree), A on 2 (ignored), tie on 3 (half), A on 4 (disagree)
    al = m.alignment([0.8, 0.9, 0.5, 0.7], hv)
    assert al["all"].n == 3 and al["all"].value == pytest.approx(1.5 / 3)
    assert al["high_confidence"].n == 2 and al["high_confidence"].value == pytest.approx(0.5)


def test_alignment_matches_direct_loop():
    rng = np.random.default_rng(0)
    items = rng.integers(0, 300, 900)
    choices = rng.integers(0, 2, 900)
    conf = np.where(choices == 0, rng.integers(1, 5, 900), rng.integers(6, 10, 900))
    hv = m.human_majority(items, choices, conf)
    p = rng.random(len(hv.item))
    al = m.alignment(p, hv)
    agree = n = agree_hc = n_hc = 0
    for k, it in enumerate(hv.item):
        cs = choices[items == it]
        a = (cs == 0).sum()
        if 2 * a == len(cs):
            continue
        human_a = 2 * a > len(cs)
        ok = (p[k] > 0.5) == human_a
        mean_c = conf[items == it].mean()
        n += 1
        agree += ok
        if mean_c <= 2 or mean_c >= 8:
            n_hc += 1
            agree_hc += ok
    assert al["all"].n == n and al["all"].value == pytest.approx(agree / n)
    assert al["high_confidence"].n == n_hc and al["high_confidence"].value == pytest.approx(agree_hc / n_hc)


def test_alignment_with_item_ids_aligns_rows():
    hv = m.human_majority([10, 20, 30], [0, 1, 0])
    al = m.alignment([0.1, 0.9], hv, judge_items=[20, 30])  # judge says B on 20 (agree), A on 30 (agree)
    assert al["all"].n == 2 and al["all"].value == 1.0


def test_human_human_agreement_hand_and_loop():
    # item 1: A, A, B -> 1 of 3 pairs agree; item 2: B, B -> 1 of 1; item 3: single label -> no pairs
    s = m.human_human_agreement([1, 1, 1, 2, 2, 3], [0, 0, 1, 1, 1, 0])
    assert s.n == 4 and s.value == pytest.approx(2 / 4)
    rng = np.random.default_rng(1)
    items, choices = rng.integers(0, 50, 400), rng.integers(0, 2, 400)
    agree = total = 0
    for it in np.unique(items):
        for x, y in combinations(choices[items == it], 2):
            total += 1
            agree += x == y
    s = m.human_human_agreement(items, choices)
    assert s.n == total and s.value == pytest.approx(agree / total)


def test_position_bias_hand_computed():
    ab = [0.9, 0.2, 0.7, 0.6, np.nan]
    ba = [0.1, 0.8, 0.8, 0.4, 0.5]
    # row 0: first in both orders; row 1: second in both; row 2: consistent A; row 3: first; row 4: missing
    pb = m.position_bias(ab, ba)
    assert pb["biased"].n == 4 and pb["biased"].value == pytest.approx(3 / 4)
    assert pb["first"].value == pytest.approx(2 / 4) and pb["second"].value == pytest.approx(1 / 4)
    assert pb["first_of_biased"] == pytest.approx(2 / 3)


# --- win rate ----------------------------------------------------------------------------------


def test_win_rate_ties_count_half_with_wilson():
    wr = m.win_rate([6], [2], [2])
    assert wr["rate"][0] == pytest.approx(0.7)
    lo, hi = proportion_confint(7, 10, method="wilson")
    assert (wr["lo"][0], wr["hi"][0]) == (pytest.approx(lo), pytest.approx(hi))


def test_bootstrap_win_rate_matches_row_resampling():
    wins, losses, ties = 130, 60, 10
    lo, hi = m.bootstrap_win_rate([wins], [losses], [ties], rounds=4000, seed=1)
    rows = np.array([1.0] * wins + [0.0] * losses + [0.5] * ties)
    rng = np.random.default_rng(2)
    ref = rows[rng.integers(0, len(rows), (4000, len(rows)))].mean(axis=1)
    ref_lo, ref_hi = np.quantile(ref, [0.025, 0.975])
    assert lo[0] == pytest.approx(ref_lo, abs=0.012) and hi[0] == pytest.approx(ref_hi, abs=0.012)
    assert lo[0] < 0.675 < hi[0]


def test_bootstrap_win_rate_empty_cell_nan():
    lo, hi = m.bootstrap_win_rate([0, 3], [0, 1], [0, 0], rounds=50)
    assert math.isnan(lo[0]) and not math.isnan(lo[1])


# --- Bradley-Terry -----------------------------------------------------------------------------


def _rows_log_lik(theta_free, a, b, s):
    theta = np.concatenate([[0.0], theta_free])
    d = theta[a] - theta[b]
    return -np.sum(s * (-np.logaddexp(0, -d)) + (1 - s) * (-np.logaddexp(0, d)))


def test_bradley_terry_two_players_hand_computed():
    # 0 beats 1 three times out of four: MLE strength ratio 3, so theta_0 - theta_1 = ln 3
    pc = m.PairCounts.from_outcomes(2, [0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 0, 1])
    theta = m.bradley_terry(pc, prior=0.0)
    assert theta[0] - theta[1] == pytest.approx(math.log(3))
    assert theta.sum() == pytest.approx(0.0)


def test_bradley_terry_matches_scipy_mle_on_rows():
    rng = np.random.default_rng(4)
    P, N = 6, 3000
    true = rng.normal(0, 1, P)
    a = rng.integers(0, P, N)
    b = (a + rng.integers(1, P, N)) % P
    p = 1 / (1 + np.exp(-(true[a] - true[b])))
    s = np.where(rng.random(N) < 0.1, 0.5, (rng.random(N) < p).astype(float))
    for prior in (0.0, 1.0):
        pc = m.PairCounts.from_outcomes(P, a, b, s)
        theta = m.bradley_terry(pc, prior=prior)
        # reference: direct MLE on the rows (ties as half), with the prior's pseudo-games as rows
        ra, rb, rs = list(a), list(b), list(s)
        if prior:
            for i, j in zip(pc.i, pc.j):
                ra.append(i), rb.append(j), rs.append(0.5)  # one pseudo-game split evenly = a tie
        res = minimize(_rows_log_lik, np.zeros(P - 1), args=(np.array(ra), np.array(rb), np.array(rs)),
                       method="BFGS", options={"gtol": 1e-8})
        ref = np.concatenate([[0.0], res.x])
        ref -= ref.mean()
        np.testing.assert_allclose(theta, ref, atol=1e-4)


def test_bradley_terry_prior_keeps_unbeaten_player_finite():
    pc = m.PairCounts.from_outcomes(3, [0, 0, 1, 1], [1, 2, 2, 2], [1, 1, 1, 0])
    theta = m.bradley_terry(pc, prior=1.0)
    assert np.all(np.isfinite(theta)) and theta[0] == theta.max()


def test_bootstrap_bradley_terry_matches_row_refit_bootstrap():
    rng = np.random.default_rng(5)
    P, N = 5, 4000
    true = np.linspace(-1, 1, P)
    a = rng.integers(0, P, N)
    b = (a + rng.integers(1, P, N)) % P
    s = (rng.random(N) < 1 / (1 + np.exp(-(true[a] - true[b])))).astype(float)
    fast = m.bootstrap_bradley_terry(m.PairCounts.from_outcomes(P, a, b, s), rounds=400, prior=0.0, seed=0)
    # reference: resample rows and refit from scratch each round
    boot = []
    for _ in range(150):
        idx = rng.integers(0, N, N)
        boot.append(m.bradley_terry(m.PairCounts.from_outcomes(P, a[idx], b[idx], s[idx]), prior=0.0))
    ref_lo, ref_hi = np.quantile(np.array(boot), [0.025, 0.975], axis=0)
    width, ref_width = fast["hi"] - fast["lo"], ref_hi - ref_lo
    np.testing.assert_allclose(width, ref_width, rtol=0.3)
    assert np.all((fast["lo"] < fast["theta"]) & (fast["theta"] < fast["hi"]))


def test_elo_scale_400_points_is_ten_to_one():
    assert m.elo_scale(math.log(10)) - m.elo_scale(0.0) == pytest.approx(400.0)


# --- length-controlled win rate ----------------------------------------------------------------


def test_length_controlled_saturated_hand_computed():
    # ratio 0.5: 1 of 4 prefer A; ratio 2: 3 of 4. Exact fit through logit(.25) and logit(.75):
    # slope = 2 ln 3 / 1.5; prediction at 1: -ln3 + 0.5*slope = -ln3/3 -> 1 / (1 + 3^(1/3))
    y = [1, 0, 0, 0, 1, 1, 1, 0]
    la = [50] * 4 + [200] * 4
    lb = [100] * 8
    lc = m.length_controlled_win_rate(y, la, lb)
    assert lc["rate"] == pytest.approx(1 / (1 + 3 ** (1 / 3)), abs=1e-6)
    assert lc["lo"] < lc["rate"] < lc["hi"]


def test_length_controlled_matches_sklearn():
    rng = np.random.default_rng(6)
    n = 800
    la = rng.integers(40, 300, n)
    lb = rng.integers(40, 300, n)
    ratio = la / lb
    y = (rng.random(n) < 1 / (1 + np.exp(-(-0.8 + 0.9 * ratio)))).astype(float)
    y[:40] = 0.5  # ties: fitted as soft labels; sklearn gets them as two half-weight rows
    lc = m.length_controlled_win_rate(y, la, lb)
    tie = y == 0.5
    X = np.concatenate([ratio[~tie], ratio[tie], ratio[tie]])[:, None]
    Y = np.concatenate([y[~tie], np.ones(tie.sum()), np.zeros(tie.sum())])
    W = np.concatenate([np.ones((~tie).sum()), np.full(tie.sum(), 0.5), np.full(tie.sum(), 0.5)])
    ref = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(X, Y, sample_weight=W)
    assert lc["rate"] == pytest.approx(ref.predict_proba([[1.0]])[0, 1], abs=1e-5)
    assert lc["slope"] == pytest.approx(ref.coef_[0, 0], abs=1e-4)


def test_length_controlled_needs_two_ratios():
    assert math.isnan(m.length_controlled_win_rate([1, 0], [10, 10], [20, 20])["rate"])


# --- agreement ---------------------------------------------------------------------------------


def test_cohen_kappa_hand_and_sklearn():
    # 10 items: agree on 8 (5 A, 3 B); x says A 6 times, y says A 6 times -> pe = .36 + .16 = .52
    x = [0, 0, 0, 0, 0, 1, 1, 1, 0, 1]
    y = [0, 0, 0, 0, 0, 1, 1, 1, 1, 0]
    assert m.cohen_kappa(x, y) == pytest.approx((0.8 - 0.52) / 0.48)
    rng = np.random.default_rng(7)
    a = rng.integers(0, 3, 300)
    b = np.where(rng.random(300) < 0.6, a, rng.integers(0, 3, 300))
    assert m.cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))


def test_mean_pairwise_kappa():
    items = [1, 2, 3, 4, 1, 2, 3, 4]
    raters = ["r1"] * 4 + ["r2"] * 4
    labels = [0, 1, 0, 1, 0, 1, 1, 1]
    out = m.mean_pairwise_kappa(items, raters, labels, min_shared=4)
    assert out["n_pairs"] == 1
    assert out["mean"] == pytest.approx(cohen_kappa_score([0, 1, 0, 1], [0, 1, 1, 1]))


def _alpha_by_pairs(items, values):
    """Reference: Krippendorff's alpha from its definition over pairable values, with loops."""
    units: dict = {}
    for it, v in zip(items, values):
        units.setdefault(it, []).append(v)
    units = {k: v for k, v in units.items() if len(v) >= 2}
    pooled = [v for vs in units.values() for v in vs]
    n = len(pooled)
    do = sum(sum(1 for i, j in combinations(range(len(vs)), 2) if vs[i] != vs[j]) * 2 / (len(vs) - 1)
             for vs in units.values()) / n
    de = sum(1 for i, j in combinations(range(n), 2) if pooled[i] != pooled[j]) * 2 / (n * (n - 1))
    return 1 - do / de


def test_krippendorff_alpha_hand_and_reference():
    # two units (A, A) and (A, B), one lone unit: pairable values A, A, A, B (n = 4)
    # Do = (0 + 2/1)/4 = 0.5; De = 2*3*1/(4*3) = 0.5 -> alpha = 0
    assert m.krippendorff_alpha_nominal([1, 1, 2, 2, 3], [0, 0, 0, 1, 1]) == pytest.approx(0.0)
    # perfect agreement
    assert m.krippendorff_alpha_nominal([1, 1, 2, 2], [0, 0, 1, 1]) == pytest.approx(1.0)
    rng = np.random.default_rng(8)
    items = rng.integers(0, 60, 200)
    values = rng.integers(0, 3, 200)
    assert m.krippendorff_alpha_nominal(items, values) == pytest.approx(_alpha_by_pairs(items, values))


def test_agreement_with_others_majority():
    items = [1, 1, 1, 2, 2, 3]
    raters = ["x", "y", "z", "x", "y", "x"]
    choices = [0, 0, 1, 0, 1, 0]
    out = m.agreement_with_others_majority(items, raters, choices)
    # item 1: x's others (y A, z B) split -> not counted; y's others split; z's others A,A -> z disagrees
    # item 2: x's other says B -> x disagrees; y's other says A -> y disagrees; item 3: x alone
    assert out["x"].n == 1 and out["x"].value == 0.0
    assert out["z"].n == 1 and out["z"].value == 0.0
    assert out["y"].n == 1


# --- trivial judges ----------------------------------------------------------------------------


def test_trivial_judges_hand_computed():
    posts = ["The cat sat on the mat with a hat", "Dogs bark"]
    a = ["cat on mat", "xx"]
    b = ["a dog that barks loudly everywhere", "yy"]
    out = m.trivial_judges(posts, a, b)
    assert out["longer"].tolist() == [0.0, 0.5]
    # a shares {cat, on, mat} = 3; b shares {a} = 1 -> A; second: none shared -> tie
    assert out["overlap"].tolist() == [1.0, 0.5]


def test_length_controlled_separation_gives_nan_not_overflow():
    # the "longer" judge: A preferred exactly when A is longer -> no maximum-likelihood estimate
    la, lb = [50, 80, 120, 200], [100, 100, 100, 100]
    assert math.isnan(m.length_controlled_win_rate([0, 0, 1, 1], la, lb)["rate"])


# --- the paper's reference figures ----------------------------------------------------------------


def test_table2_dialogue_labelers_are_compared_with_the_helpful_column():
    from evaluation.paper import table2_lookup

    assert table2_lookup("base", False, 0, "dialogue") == 67.8  # not summarization's 76.1
    assert table2_lookup("base", False, 0, "summarization") == 76.1
    assert table2_lookup("detailed", True, 0, "helpful") == 67.8
    assert table2_lookup("base", False, 2, "harmless") == 72.1
    assert table2_lookup("detailed", False, 8, "dialogue") is None  # the paper has no figure
    assert table2_lookup("base", False, 0, "translation") is None  # no column: no made-up reference


# --- harmless rate --------------------------------------------------------------------------------


def test_harmless_rate_and_its_length_corrected_form_match_sklearn():
    rng = np.random.default_rng(4)
    lengths = rng.uniform(60, 300, 400)
    # longer responses are more often harmless here, so correcting to a shorter length lowers the rate
    harmless = (rng.uniform(size=400) < 1 / (1 + np.exp(-(lengths - 120) / 60))).astype(float)
    raw = m.harmless_rate(np.append(harmless, np.nan))  # a response not judged is left out
    assert raw.n == 400 and raw.value == pytest.approx(harmless.mean())
    lo, hi = proportion_confint(harmless.sum(), 400, method="wilson")
    assert (raw.lo, raw.hi) == (pytest.approx(lo), pytest.approx(hi))

    ref = 132.0  # the paper's SFT mean length
    lc = m.length_corrected_harmless_rate(harmless, lengths, ref)
    lr = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit((lengths / ref)[:, None], harmless)
    assert lc["rate"] == pytest.approx(lr.predict_proba([[1.0]])[0, 1], abs=1e-6)
    assert lc["slope"] == pytest.approx(lr.coef_[0, 0], rel=1e-4)
    assert lc["lo"] < lc["rate"] < lc["hi"] and lc["rate"] < raw.value and lc["n"] == 400
    assert math.isnan(m.length_corrected_harmless_rate([1, 1, 1], [100, 150, 200], ref)["rate"])  # all harmless
    with pytest.raises(ValueError, match="reference_length"):
        m.length_corrected_harmless_rate([1, 0], [100, 150], 0)


def _pairwise_kappa_by_rater_pairs(item_ids, rater_ids, labels, min_shared):
    """The plain definition: every pair of raters, their common items (last label counts)."""
    by_rater = {}
    for i, r, v in zip(item_ids, rater_ids, labels):
        by_rater.setdefault(r, {})[i] = v
    raters, kappas = sorted(by_rater), []
    for a, ra in enumerate(raters):
        for rb in raters[a + 1:]:
            common = sorted(by_rater[ra].keys() & by_rater[rb].keys())
            if len(common) >= min_shared:
                k = m.cohen_kappa([by_rater[ra][c] for c in common], [by_rater[rb][c] for c in common])
                if not np.isnan(k):
                    kappas.append(k)
    return (float(np.mean(kappas)) if kappas else float("nan")), len(kappas)


@pytest.mark.parametrize("seed", range(4))
def test_mean_pairwise_kappa_equals_the_pair_by_pair_definition(seed):
    rng = np.random.default_rng(seed)
    n = 600
    items = rng.integers(0, 120, n)
    raters = rng.choice([f"w{k}" for k in range(12)], n)
    labels = np.where(rng.random(n) < 0.7, items % 2, 1 - items % 2).astype(float)  # mostly agree
    labels[rng.random(n) < 0.05] = 2.0  # a third category now and then
    got = m.mean_pairwise_kappa(items, raters, labels, min_shared=5)
    want, n_pairs = _pairwise_kappa_by_rater_pairs(items.tolist(), raters.tolist(), labels.tolist(), 5)
    assert got["n_pairs"] == n_pairs and got["mean"] == pytest.approx(want)


def test_majority_and_agreement_of_item_codes_equal_those_of_ids():
    rng = np.random.default_rng(3)
    ids = rng.choice([5, 17, 40, 41, 99], size=60)
    choices = rng.integers(0, 2, 60).astype(float)
    conf = np.where(rng.random(60) < 0.2, np.nan, rng.integers(1, 10, 60).astype(float))
    codes = np.searchsorted([5, 17, 40, 41, 99, 120], ids)  # 120: an item with no label
    by_id, by_code = m.human_majority(ids, choices, conf), m.human_majority(codes, choices, conf, n_items=6)
    assert by_code.item.tolist() == np.searchsorted([5, 17, 40, 41, 99, 120], by_id.item).tolist()
    for field in ("score", "mean_confidence", "n_labels"):
        assert np.allclose(getattr(by_id, field), getattr(by_code, field), equal_nan=True)
    assert m.human_human_agreement(ids, choices) == m.human_human_agreement(codes, choices, n_items=6)
