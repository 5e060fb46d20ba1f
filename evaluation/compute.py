"""The worker side of the dashboards: label rows -> metrics core -> one JSON-ready result.

``compute_dashboard`` (run by a Celery worker on queue ``default``, or by ``manage.py evaluate``)
loads the label rows of one filter set once and computes everything a SQL aggregate cannot:
bootstrap intervals, Bradley-Terry ratings, length-controlled win rates, the two trivial judges,
alignment with the human majority, human-human agreement, kappa and alpha. ``sql_aggregates``
are the GROUP BY counts a page adds live on top of a stored result (``cache.py`` stores it).

Alignment is defined once, in numpy (``metrics.alignment``); ``selectors.alignment_counts`` is
its SQL fast path for a filter set with no stored result yet, tested equal to it.
"""
from __future__ import annotations

import math
import time

import numpy as np

from . import metrics, selectors, snapshot
from .selectors import Filters
from .snapshot import Rows
from .tables import clean

CACHE_VERSION = 3  # 2: alignment from numpy per config; 3: capped label times (formats.TIME_PER_LABEL)
DEFAULT_ROUNDS = 1000
HUMANS = "humans"
TRIVIAL_KEYS = ("trivial:longer", "trivial:overlap")


# The SQL GROUP BY aggregates, JSON-ready, by name. All but alignment are additive: a page adds
# those of the labels written since a stored result to the stored ones.
AGGREGATES = {
    "human_pairs": lambda f: [list(r) for r in selectors.human_pair_counts(f)],
    "ai_pairs": lambda f: [list(r) for r in selectors.ai_pair_counts(f)],
    "labeler_stats": lambda f: {str(r.pop("config_id")): r for r in selectors.labeler_stats(f)},
    "annotators": lambda f: {str(r.pop("who")): r for r in selectors.annotator_stats(f)},
    "human_cost": lambda f: selectors.human_cost(f),
    "alignment": lambda f: {str(k): v for k, v in selectors.alignment_counts(f).items()},
}
ADDITIVE = ("human_pairs", "ai_pairs", "labeler_stats", "annotators", "human_cost")
COUNTS = ("human_cost", "labeler_stats")  # enough for count_labels
PAIRS = ("human_pairs", "ai_pairs")  # also given by ``pair_aggregates``


def sql_aggregates(f: Filters, parts=ADDITIVE) -> dict:
    """The named aggregates (``AGGREGATES``) over the labels of ``f``; only those asked for run."""
    return {name: AGGREGATES[name](f) for name in parts}


def merge_aggregates(base: dict, delta: dict) -> dict:
    """Stored aggregates plus those of the labels written since (sums of sums)."""
    def add(a: dict, b: dict) -> dict:
        return {k: (a.get(k) or 0) + (b.get(k) or 0) for k in set(a) | set(b)}

    def add_each(name: str) -> dict:
        return {k: add(base[name].get(k, {}), delta[name].get(k, {})) for k in set(base[name]) | set(delta[name])}

    return {
        "human_pairs": base["human_pairs"] + delta["human_pairs"],
        "ai_pairs": base["ai_pairs"] + delta["ai_pairs"],
        "labeler_stats": add_each("labeler_stats"),
        "annotators": add_each("annotators"),
        "human_cost": add(base["human_cost"], delta["human_cost"]),
        "alignment": base["alignment"],
    }


def count_labels(aggregates: dict) -> int:
    """Human plus AI labels behind a set of SQL aggregates."""
    return int(aggregates["human_cost"]["n"] + sum(r["n"] for r in aggregates["labeler_stats"].values()))


def alignment_counts(judge_items, judge_p_a, human: metrics.HumanVerdicts) -> dict:
    """``metrics.alignment`` as additive counts: {n, agree, n_hc, agree_hc} (the SQL path's shape)."""
    al = metrics.alignment(judge_p_a, human, judge_items=judge_items)
    s, hc = al["all"], al["high_confidence"]
    return {"n": int(s.n), "agree": float(s.value * s.n) if s.n else 0.0,
            "n_hc": int(hc.n), "agree_hc": float(hc.value * hc.n) if hc.n else 0.0}


def _bradley_terry(pc: metrics.PairCounts, rounds: int, seed: int, intervals: bool) -> dict | None:
    """Ratings (and their bootstrap intervals only where a page shows them: the humans')."""
    if not len(pc.i):
        return None
    if intervals:
        bt = metrics.bootstrap_bradley_terry(pc, rounds=rounds, seed=seed)
        out = {"theta": bt["theta"].tolist(), "lo": bt["lo"].tolist(), "hi": bt["hi"].tolist()}
    else:
        out = {"theta": metrics.bradley_terry(pc).tolist(), "lo": None, "hi": None}
    games = np.zeros(pc.n_players)
    np.add.at(games, pc.i, pc.wins_i + pc.wins_j + pc.ties)
    np.add.at(games, pc.j, pc.wins_i + pc.wins_j + pc.ties)
    return {**out, "games": games.tolist(), "group": metrics.connected_groups(pc).tolist()}


def _pair_stats(n_players: int, pol_index, pa, pb, score, lens_a, lens_b, rounds: int, seed: int,
                bt_intervals: bool = True, intervals: bool = True) -> dict:
    """Win counts, bootstrap intervals, length-controlled rates and Bradley-Terry for one judge
    (counts and ratings only, the rest None, unless ``intervals``)."""
    a, b = pol_index[pa], pol_index[pb]
    pc = metrics.PairCounts.from_outcomes(n_players, a, b, score)
    n = len(pc.i)
    boot_lo = boot_hi = lc_rate = lc_lo = lc_hi = np.full(n, np.nan)
    if intervals:
        boot_lo, boot_hi = metrics.bootstrap_win_rate(pc.wins_i, pc.wins_j, pc.ties, rounds=rounds, seed=seed)
        lc = _length_controlled(pc, n_players, a, b, score, lens_a, lens_b)
        lc_rate, lc_lo, lc_hi = lc["rate"], lc["lo"], lc["hi"]
    pairs = [
        [int(pc.i[k]), int(pc.j[k]), int(pc.wins_i[k]), int(pc.wins_j[k]), int(pc.ties[k]),
         clean(float(boot_lo[k])), clean(float(boot_hi[k])),
         clean(float(lc_rate[k])), clean(float(lc_lo[k])), clean(float(lc_hi[k]))]
        for k in range(n)
    ]
    return {"pairs": pairs, "bt": _bradley_terry(pc, rounds, seed, bt_intervals and intervals)}


def _length_controlled(pc: metrics.PairCounts, n_players: int, a, b, score, lens_a, lens_b) -> dict:
    """Length-controlled win rate of each pair of ``pc`` (rows oriented so "x" is the lower index)."""
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    flip = a != lo
    s = metrics.verdict(score)
    s_x = np.where(flip, 1.0 - s, s)
    len_x = np.where(flip, lens_b, lens_a)
    len_y = np.where(flip, lens_a, lens_b)
    pair_keys = pc.i * n_players + pc.j
    group = np.searchsorted(pair_keys, lo * n_players + hi)  # pc's pairs are sorted by (i, j), i.e. by key
    return metrics.length_controlled_win_rates(group, s_x, len_x, len_y, n_groups=len(pair_keys))


def _index(rows: Rows) -> dict:
    """The rows with each label's comparison position and the policies as indices 0..n-1; the
    comparisons of ``rows`` are exactly those its labels refer to, sorted by id."""
    humans, ai, comps = rows.humans, rows.ai, rows.comps
    policy_ids = np.union1d(comps["pol_a"], comps["pol_b"]).astype(np.int64)
    pol_index = np.full(int(policy_ids.max()) + 1 if len(policy_ids) else 1, -1, dtype=np.int64)
    pol_index[policy_ids] = np.arange(len(policy_ids))
    pos_h, pos_a = rows.positions()
    return {"humans": humans, "ai": ai, "comps": comps, "cids": comps["cid"], "policy_ids": policy_ids,
            "pol_index": pol_index, "pos_h": pos_h, "pos_a": pos_a}


def _judges(d: dict, trivial: dict) -> list[tuple]:
    """Every judge as (key, label, comparison positions, score for A): humans, AI configs, trivial."""
    humans, ai = d["humans"], d["ai"]
    judges = [(HUMANS, "Humans", d["pos_h"], 1.0 - humans["choice"])]
    configs = selectors.labeler_configs(np.unique(ai["config"]).tolist())
    for cfg_id in np.unique(ai["config"]):
        m = ai["config"] == cfg_id
        judges.append((f"config:{int(cfg_id)}", configs[int(cfg_id)].name, d["pos_a"][m], ai["p_a"][m]))
    all_pos = np.arange(len(d["cids"]))
    for name in ("longer", "overlap"):
        judges.append((f"trivial:{name}", metrics.TRIVIAL_JUDGES[name], all_pos, trivial[name]))
    return judges


def _judge_stats(d: dict, judges: list[tuple], rounds: int, seed: int, intervals: bool = True) -> dict:
    """Per judge: pair statistics and Bradley-Terry (without bootstrap and length-controlled
    rates unless ``intervals``). A comparison with one policy on both sides carries no win-rate
    information and is left out here."""
    comps, n_pol = d["comps"], len(d["policy_ids"])
    out = {}
    for n, (key, label, pos, score) in enumerate(judges):
        distinct = comps["pol_a"][pos] != comps["pol_b"][pos]
        pos, score = pos[distinct], np.asarray(score)[distinct]
        if len(pos) == 0 or n_pol < 2:
            out[key] = {"label": label, "pairs": [], "bt": None}
            continue
        stats = _pair_stats(n_pol, d["pol_index"], comps["pol_a"][pos], comps["pol_b"][pos], score,
                            comps["len_a"][pos], comps["len_b"][pos], rounds, seed + n,
                            bt_intervals=key == HUMANS, intervals=intervals)
        out[key] = {"label": label, **stats}
    return out


def _raters(humans: dict) -> tuple[np.ndarray, np.ndarray]:
    """The distinct raters (sorted names) and each label's rater as an index into them."""
    import pandas as pd

    codes, names = pd.factorize(humans["who"], sort=True)  # hashing: a string sort of a million takes seconds
    return np.asarray(names, dtype=object), codes


def _annotators(d: dict, judges: list[tuple], raters: np.ndarray, rinv: np.ndarray) -> dict[str, dict]:
    """Per annotator: agreement with the others' majority and with every non-human judge."""
    humans = d["humans"]
    annotators: dict[str, dict] = {}
    if not len(humans["cid"]):
        return annotators
    human_score = 1.0 - humans["choice"]
    for key, _, pos, score in judges[1:]:
        full = np.full(len(d["cids"]), np.nan)
        full[pos] = score
        sc = full[d["pos_h"]]
        have = np.isfinite(sc)
        agree = np.where(have, metrics.agreement_scores(np.where(have, sc, 0.5), human_score), 0.0)
        n_r = np.bincount(rinv, weights=have.astype(float), minlength=len(raters))
        s_r = np.bincount(rinv, weights=agree, minlength=len(raters))
        for i, r in enumerate(raters.tolist()):
            annotators.setdefault(str(r), {"majority": None, "judges": {}})["judges"][key] = metrics.share(
                s_r[i], n_r[i]).as_dict()
    # items as comparison rows and raters as indices: the same groups as ids and names, sorted faster
    for r, s in metrics.agreement_with_others_majority(d["pos_h"], rinv, humans["choice"]).items():
        annotators.setdefault(str(raters[r]), {"majority": None, "judges": {}})["majority"] = s.as_dict()
    return annotators


def _agreement(d: dict, judges: list[tuple]) -> dict:
    humans = d["humans"]
    raters, rinv = _raters(humans)
    kappa = (metrics.mean_pairwise_kappa(d["pos_h"], rinv, humans["choice"], min_shared=5)
             if len(humans["cid"]) else {"mean": math.nan, "n_pairs": 0})
    return {
        "alpha": clean(metrics.krippendorff_alpha_nominal(d["pos_h"], humans["choice"])),
        "kappa_mean": clean(kappa["mean"]),
        "kappa_pairs": kappa["n_pairs"],
        "annotators": _annotators(d, judges, raters, rinv),
    }


def _alignment(d: dict, hv: metrics.HumanVerdicts, trivial: dict) -> tuple[dict, dict]:
    """Alignment with the human majority (``hv``, its items as comparison rows): per AI config as
    counts, per trivial judge as shares."""
    ai = d["ai"]
    per_config = {}
    for cfg_id in np.unique(ai["config"]):
        m = ai["config"] == cfg_id
        per_config[str(int(cfg_id))] = alignment_counts(d["pos_a"][m], ai["p_a"][m], hv)
    per_trivial = {}
    for name in ("longer", "overlap"):
        al = metrics.alignment(trivial[name][hv.item] if len(hv.item) else np.zeros(0), hv)
        per_trivial[f"trivial:{name}"] = {k: v.as_dict() for k, v in al.items()}
    return per_config, per_trivial


FIGURES = ("judges", "alignment")  # what ``_figures`` computes; "trivial": only the trivial judges


def _figures(d: dict, rounds: int, seed: int, intervals: bool, parts=FIGURES) -> tuple[dict, list[tuple]]:
    """What every result holds: judges' pair statistics and ratings ("judges"; "trivial" for the
    trivial judges' only), alignment with the human majority (AI configs as counts, trivial judges
    as shares) and human-human agreement ("alignment"); and the judges themselves."""
    humans, comps = d["humans"], d["comps"]
    trivial = {"longer": comps["longer"], "overlap": comps["overlap"]}
    judges = _judges(d, trivial) if "judges" in parts else _judges(d, trivial)[-len(TRIVIAL_KEYS):]
    out = {"n_human": int(len(humans["cid"])), "n_ai": int(len(d["ai"]["cid"])), "policies": d["policy_ids"].tolist(),
           "judges": _judge_stats(d, judges, rounds, seed, intervals) if {"judges", "trivial"} & set(parts) else {}}
    if "alignment" in parts:
        # comparisons as their rows (codes 0..n-1): the same groups as their ids, counted, not sorted
        n = len(comps["cid"])
        hv = metrics.human_majority(d["pos_h"], humans["choice"], humans["confidence"], n_items=n)
        out["alignment"], out["trivial_alignment"] = _alignment(d, hv, trivial)
        out["human_human"] = metrics.human_human_agreement(d["pos_h"], humans["choice"], n_items=n).as_dict()
    return out, judges


def compute_dashboard(*, filters: Filters, rounds: int = DEFAULT_ROUNDS, seed: int = 0) -> dict:
    """Everything the pages need that cannot be a SQL aggregate; a JSON-ready dict."""
    t0 = time.perf_counter()
    rows = snapshot.rows_for_worker(filters)
    filters = filters.upto(*rows.watermark)  # everything below is on the labels up to these ids
    d = _index(rows)
    # the pair counts from the rows (tested equal to their GROUP BYs), the rest from SQL
    sql = {**sql_aggregates(filters, [n for n in ADDITIVE if n not in PAIRS]), **pair_aggregates(d)}
    figures, judges = _figures(d, rounds, seed, intervals=True)
    sql["alignment"] = figures.pop("alignment")
    return {
        "version": CACHE_VERSION,
        "rounds": rounds,
        "watermark": list(rows.watermark),
        "sql": sql,
        "n_labels": count_labels(sql),
        **figures,
        "agreement": _agreement(d, judges),
        "seconds": time.perf_counter() - t0,
    }


def _grouped(columns: list[tuple[np.ndarray, np.ndarray]]) -> list[list[int]]:
    """Like a GROUP BY with COUNT(*): rows of (value of each column..., count). A column is given as
    (each row's code 0..k-1, the value of each code), so the combination is one integer key."""
    key = np.zeros(len(columns[0][0]), dtype=np.int64)
    for codes, values in columns:
        key = key * len(values) + codes
    uniq, counts = np.unique(key, return_counts=True)
    out = []
    for codes_values in reversed(columns):
        n = len(codes_values[1])
        out.append(codes_values[1][uniq % n])
        uniq = uniq // n
    return [[*map(int, row), int(c)] for row, c in zip(zip(*reversed(out)), counts.tolist())]


def pair_aggregates(d: dict) -> dict:
    """``human_pairs`` and ``ai_pairs`` as their SQL aggregates (``AGGREGATES``) give them, from the
    rows: a first visit takes them from here instead of two GROUP BYs over every label (tested equal)."""
    comps, humans, ai, pols = d["comps"], d["humans"], d["ai"], d["policy_ids"]
    pa, pb = d["pol_index"][comps["pol_a"]], d["pol_index"][comps["pol_b"]]
    p = ai["p_a"]
    configs, config_code = np.unique(ai["config"], return_inverse=True)
    return {
        "human_pairs": _grouped([(pa[d["pos_h"]], pols), (pb[d["pos_h"]], pols),
                                 (humans["choice"].astype(np.int64), np.arange(2))]),
        "ai_pairs": _grouped([(config_code, configs), (pa[d["pos_a"]], pols), (pb[d["pos_a"]], pols),
                              (np.where(p > 0.5, 0, np.where(p < 0.5, 1, 2)), np.arange(3))]),
    }


def quick_result(rows: Rows, parts=("pairs", *FIGURES)) -> dict:
    """What a page shows for a filter set with no stored result yet, computed on demand from
    ``rows`` (``snapshot.rows_for``): the worker's figures (only the ``parts`` the page shows, see
    ``_figures``) without the bootstrap intervals, length-controlled rates and agreement
    statistics, which stay the worker's (``partial``). ``aggregates`` holds the SQL aggregates the
    rows also give: pair counts ("pairs") and alignment."""
    d = _index(rows)
    figures, _ = _figures(d, 0, 0, intervals=False, parts=parts)
    aggregates = pair_aggregates(d) if "pairs" in parts else {}
    if "alignment" in figures:
        aggregates["alignment"] = figures.pop("alignment")
    return {"version": CACHE_VERSION, "partial": True, "rounds": 0, "watermark": list(rows.watermark),
            "aggregates": aggregates, **figures}
