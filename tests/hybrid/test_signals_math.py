"""Trust signals, calibration numbers and the routing simulation against hand-computed cases (no database)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation import calibration, routing
from labeling.judges import trust


def test_each_trust_signal_by_hand():
    assert trust.margin(0.8) == pytest.approx(0.3)
    assert trust.margin(None) is None
    assert trust.position_consistent(0.7, 0.4) is False
    assert trust.position_consistent(0.7, 0.6) is True
    assert trust.position_consistent(0.7, None) is None
    assert trust.order_gap(0.7, 0.4) == pytest.approx(0.3)
    # others: agrees (A), disagrees (B), tie (half)
    assert trust.config_agreement(0.8, [0.9, 0.3, 0.5]) == pytest.approx(0.5)
    assert trust.config_agreement(0.8, []) is None
    assert trust.sample_spread([0.2, 0.6]) == pytest.approx(0.2)  # population std
    assert trust.sample_spread([0.1, 0.1, 0.4]) == pytest.approx(math.sqrt(0.02))
    assert trust.sample_spread([0.5]) is None


def test_risk_per_criterion_and_combined():
    s = trust.signals(0.55, 0.7, 0.4, others=[0.2], samples=[0.45, 0.65])
    assert s.margin == pytest.approx(0.05) and s.consistent is False and s.n_other_configs == 1
    assert trust.risk(s, "margin") == pytest.approx(0.9)
    assert trust.risk(s, "inconsistency") == pytest.approx(0.5 + 0.3 / 2)
    assert trust.risk(s, "disagreement") == pytest.approx(1.0)
    assert trust.risk(s, "spread") == pytest.approx(0.2)  # 2 * std 0.1
    assert trust.risk(s, "combined") == pytest.approx((0.9 + 0.65 + 1.0 + 0.2) / 4)
    w = trust.Weights(margin=3, inconsistency=1, disagreement=0, spread=0)
    assert trust.risk(s, "combined", w) == pytest.approx((3 * 0.9 + 0.65) / 4)
    # a label that lacks a signal is not penalised on it; a missing label goes first
    single = trust.signals(0.9, 0.9, None)
    assert trust.risk(single, "inconsistency") == 0.0
    assert trust.risk(single, "combined") == pytest.approx(0.2)  # only the margin is there
    assert trust.risk(None) == math.inf and trust.risk(trust.signals(None)) == math.inf
    assert "DISAGREE" in trust.reason(s, "inconsistency")
    with pytest.raises(ValueError):
        trust.risk(s, "vibes")
    with pytest.raises(ValueError):
        trust.Weights(margin=0, inconsistency=0, disagreement=0, spread=0)


def test_signals_for_rows_compares_configs_on_the_same_pair_only():
    rows = [(1, 10, 100, 0.8, 0.8, 0.8), (2, 10, 200, 0.3, 0.3, 0.3), (3, 10, 300, None, None, None),
            (4, 11, 100, 0.6, 0.7, 0.5)]
    sig = trust.signals_for_rows(rows, {4: [0.6, 0.6]})
    assert sig[1].config_agreement == 0.0 and sig[1].n_other_configs == 1  # the failed label is no vote
    assert sig[2].config_agreement == 0.0
    assert sig[3].margin is None and sig[3].n_other_configs == 2
    assert sig[4].config_agreement is None and sig[4].sample_spread == 0.0


P = [0.9, 0.8, 0.4, 0.55, 0.3, 0.5]
H = [1, 0, 0, 1, 1, 0.5]  # the last human vote is split: left out


def test_reliability_diagram_ece_and_brier_by_hand():
    # kept: conf .9 .8 .6 .55 .7 ; right 1 0 1 1 0 ; one pair per bin of width 0.1
    bins = calibration.reliability_diagram(P, H, n_bins=5)
    assert [b.n for b in bins] == [1, 1, 1, 1, 1]
    assert [b.agreement for b in bins] == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert [round(b.mean_confidence, 3) for b in bins] == [0.55, 0.6, 0.7, 0.8, 0.9]
    assert calibration.expected_calibration_error(P, H, 5) == pytest.approx((0.45 + 0.4 + 0.7 + 0.8 + 0.1) / 5)
    assert calibration.expected_calibration_error(P, H, 1) == pytest.approx(abs(0.6 - 3.55 / 5))
    assert calibration.brier_score(P, H) == pytest.approx((0.01 + 0.64 + 0.16 + 0.2025 + 0.49) / 5)
    summary = calibration.calibration_summary(P, H, 5)
    assert summary["n"] == 5 and summary["alignment"] == pytest.approx(0.6)
    assert calibration.brier_score([], []) is None and calibration.expected_calibration_error([], []) is None


def test_a_perfectly_calibrated_judge_has_zero_ece():
    # 10 pairs at confidence 0.8 of which 8 are right; 4 at 0.6 of which 3 (rounded: 0.75 vs 0.6)
    p = [0.8] * 10 + [0.6] * 5
    h = [1] * 8 + [0] * 2 + [1] * 3 + [0] * 2
    bins = calibration.reliability_diagram(p, h, n_bins=5)
    assert bins[3].agreement == pytest.approx(0.8) and bins[1].agreement == pytest.approx(0.6)
    assert calibration.expected_calibration_error(p, h, 5) == pytest.approx(0.0, abs=1e-12)


def test_simulation_by_hand():
    # AI right on pairs 0, 2, 3; wrong on 1 and 4.  The router ranks 3 (right), 1, 4, 2, 0.
    p = [0.9, 0.2, 0.7, 0.6, 0.4]
    h = [1, 1, 1, 1, 1]
    risk = [0.1, 0.5, 0.2, 0.9, 0.3]
    sim = routing.simulate(p, h, risk)
    assert sim.n == 5 and sim.ai_accuracy == pytest.approx(0.6)
    assert sim.curves["uncertainty"].tolist() == pytest.approx([0.6, 0.6, 0.8, 1.0, 1.0, 1.0])
    assert sim.curves["oracle"].tolist() == pytest.approx([0.6, 0.8, 1.0, 1.0, 1.0, 1.0])
    assert sim.curves["random"].tolist() == pytest.approx([0.6, 0.68, 0.76, 0.84, 0.92, 1.0])
    head = routing.headline(sim, 0.5)
    assert head["random_agreement_at_reference"] == pytest.approx(0.8)
    assert head["uncertainty_budget_needed"] == pytest.approx(0.4)
    assert head["oracle_budget_needed"] == pytest.approx(0.2)
    assert head["routing_beats_random"] is True
    rows = sim.points([0.0, 0.4, 1.0])
    assert [r["k"] for r in rows] == [0, 2, 5] and rows[1]["uncertainty"] == pytest.approx(0.8)
    assert rows[1]["uncertainty_lo"] < 0.8 < rows[1]["uncertainty_hi"]


def test_ties_in_risk_count_as_a_random_order_within_the_tie():
    c = np.array([1, 0, 1, 1, 0.0])
    assert routing.grouped_cumsum(c, [3, 2, 2, 1, 1]).tolist() == pytest.approx([0, 1, 1.5, 2, 2.5, 3])
    # all tied: uncertainty routing is random routing, exactly
    sim = routing.simulate([0.9, 0.2, 0.7, 0.6, 0.4], [1, 1, 1, 1, 0], [0.5] * 5)
    assert sim.curves["uncertainty"] == pytest.approx(sim.curves["random"])


def test_random_curve_is_a_straight_line_in_expectation():
    rng = np.random.default_rng(0)
    n = 200
    correct = (rng.random(n) < 0.7).astype(float)
    exact = routing.random_curve(correct)
    k = np.arange(n + 1)
    line = correct.mean() + k / n * (1 - correct.mean())
    assert exact == pytest.approx(line)
    second_diff = np.diff(exact, 2)
    assert np.abs(second_diff).max() < 1e-12
    # the average of many random orders converges on that line
    draws = np.mean([routing.random_draw_curve(correct, rng) for _ in range(3000)], axis=0)
    assert np.abs(draws - line).max() < 0.01
    lo, hi = routing.random_band(correct)
    assert (lo <= exact + 1e-12).all() and (exact <= hi + 1e-12).all() and lo[0] == hi[0] == exact[0]


def test_a_router_whose_risk_tracks_errors_beats_random_and_an_anti_router_loses():
    rng = np.random.default_rng(1)
    n = 400
    human = (rng.random(n) < 0.5).astype(float)
    wrong = rng.random(n) < 0.3
    conf = np.where(wrong, rng.uniform(0.5, 0.7, n), rng.uniform(0.6, 1.0, n))
    p = np.where(human == 1, conf, 1 - conf)
    p = np.where(wrong, 1 - p, p)
    risk = 1 - 2 * np.abs(p - 0.5)
    good = routing.headline(routing.simulate(p, human, risk))
    assert good["routing_beats_random"] and good["uncertainty_budget_needed"] < 0.5
    assert good["routing_clearly_beats_random"]
    bad = routing.headline(routing.simulate(p, human, -risk))
    assert not bad["routing_beats_random"] and not bad["routing_clearly_beats_random"]
    # a router that knows nothing: not clearly better than random, whatever its luck
    noise = routing.headline(routing.simulate(p, human, rng.random(n)))
    assert not noise["routing_clearly_beats_random"]
