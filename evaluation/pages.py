"""What each dashboard page shows, as data: tables (``tables.Table``), the win-rate matrix, the
leaderboard chart. No HTML here: ``templates/evaluation/`` prints it, escaping every value.

Each builder reads the stored result and live SQL aggregates through ``cache.cache_state``.
"""
from __future__ import annotations

import numpy as np
from django.urls import reverse
from django.utils.http import urlencode

from labeling import formats
from labeling.models import PolicyKind

from . import metrics, paper, selectors
from .cache import cache_state
from .compute import DEFAULT_ROUNDS, HUMANS, TRIVIAL_KEYS
from .formatting import fmt
from .selectors import Filters
from .tables import Column, Table

# Verdict of an AI labeler against the best trivial judge: (badge css, badge text, meaning).
VERDICTS = {
    "beats": ("beats", "beats trivial judges",
              "its alignment's 95% interval lies above the best trivial judge's alignment"),
    "unclear": ("unclear", "not clearly better than a trivial judge",
                "above the best trivial judge, but its 95% interval reaches it"),
    "no": ("bad", "no better than a trivial judge",
           "at or below a trivial judge (longer summary, or more words shared with the post): "
           "it has learned nothing useful"),
}


PAIR_COUNTS = ("human_pairs", "ai_pairs")  # what the win-rate matrix and the leaderboard read live


def _pct(s: dict | None):
    return None if not s else s.get("value")


def _ci(s: dict | None):
    return None if not s or s.get("lo") is None else [s["lo"], s["hi"]]


def _live_judges(live: dict) -> tuple[dict, dict]:
    """Win counts per judge: {judge: {(policy of A, policy of B): [A wins, B wins, ties]}}, configs."""
    counts: dict[str, dict] = {HUMANS: {}}
    for pa, pb, choice, n in live["human_pairs"]:
        counts[HUMANS].setdefault((pa, pb), [0, 0, 0])[choice] += n
    for cfg, pa, pb, v, n in live["ai_pairs"]:
        counts.setdefault(f"config:{cfg}", {}).setdefault((pa, pb), [0, 0, 0])[v] += n
    for judge in counts.values():  # one policy on both sides carries no win-rate information
        for pair in [p for p in judge if p[0] == p[1]]:
            del judge[pair]
    cfg_ids = [int(k.split(":")[1]) for k in counts if k.startswith("config:")]
    return counts, selectors.labeler_configs(cfg_ids)


def _same_policy_labels(live: dict) -> dict[str, int]:
    """Labels per judge on comparisons with one policy on both sides, which `_live_judges` leaves
    out of win rates (e.g. HH-RLHF, imported with both replies under the unknown policy)."""
    out = {HUMANS: sum(n for pa, pb, _, n in live["human_pairs"] if pa == pb)}
    for cfg, pa, pb, _, n in live["ai_pairs"]:
        if pa == pb:
            out[f"config:{cfg}"] = out.get(f"config:{cfg}", 0) + n
    return out


def _oriented(counts: dict) -> dict:
    """{(x, y): [x wins, y wins, ties]} for both orientations of every pair."""
    out: dict = {}
    for (pa, pb), (wa, wb, t) in counts.items():
        for x, y, wx, wy in ((pa, pb, wa, wb), (pb, pa, wb, wa)):
            cur = out.setdefault((x, y), [0, 0, 0])
            cur[0] += wx
            cur[1] += wy
            cur[2] += t
    return out


def _flip(v):
    return None if v is None else 1.0 - v


def _cached_pairs(result: dict | None, judge: str) -> dict:
    """{(x, y) policy ids: cached stats of x over y} for one judge, both orientations."""
    if not result or judge not in result.get("judges", {}):
        return {}
    pol = result["policies"]
    out = {}
    for i, j, wi, wj, t, blo, bhi, lc, lclo, lchi in result["judges"][judge]["pairs"]:
        x, y = pol[i], pol[j]
        out[(x, y)] = {"counts": [wi, wj, t], "boot": [blo, bhi], "lc": lc, "lc_ci": [lclo, lchi]}
        out[(y, x)] = {"counts": [wj, wi, t], "boot": [_flip(bhi), _flip(blo)], "lc": _flip(lc),
                       "lc_ci": [_flip(lchi), _flip(lclo)]}
    return out


def judge_choices(configs: dict) -> list[tuple[str, str]]:
    out = [(HUMANS, "Humans")]
    out += [(f"config:{c.pk}", f"AI: {c.name}") for c in sorted(configs.values(), key=lambda c: c.name)]
    out += [(k, metrics.TRIVIAL_JUDGES[k.split(":")[1]]) for k in TRIVIAL_KEYS]
    return out


# --- alignment ---------------------------------------------------------------------------------------


def _alignment_columns(task: str) -> list[Column]:
    return [
        Column("judge", "Judge"), Column("model", "Model"),
        Column("alignment", "Alignment", "pct"), Column("alignment_ci", "95% CI", "ci"),
        Column("hc_alignment", "High-conf. alignment", "pct"),
        Column("position_bias", "Position bias", "pct"), Column("n", "Compared", "int"),
        Column("paper", f"Paper Table 2 ({task}), %", "num"),
        Column("kind", "Kind", secondary=True), Column("prompt", "Prompt", secondary=True),
        Column("sc", "SC n", "int", secondary=True),
        Column("hc_ci", "High-conf. 95% CI", "ci", secondary=True), Column("n_hc", "High-conf. n", "int", secondary=True),
        Column("bias_first", "Biased to 1st (of biased pairs)", "pct", secondary=True),
        Column("bias_second", "Biased to 2nd (of biased pairs)", "pct", secondary=True),
        Column("cost", "Cost per label", secondary=True), Column("errors", "Errors", "int", secondary=True),
        Column("verdict", "vs. trivial judges", secondary=True),
    ]


def _verdict(s_all: metrics.Share, best_trivial: float | None) -> str:
    """Key of ``VERDICTS`` for an alignment share, or "" when there is nothing to compare."""
    if best_trivial is None or not s_all.n:
        return ""
    if s_all.value <= best_trivial:
        return "no"
    return "unclear" if s_all.lo <= best_trivial else "beats"


def _position_bias(st: dict) -> tuple:
    """Share of pairs labeled in both orders that prefer one position in both; and of those biased
    pairs, the shares biased to the first and to the second position (the paper's columns)."""
    nb, first, second = st.get("n_both") or 0, st.get("n_first", 0), st.get("n_second", 0)
    biased = first + second
    return ((biased / nb) if nb else None, (first / biased) if biased else None,
            (second / biased) if biased else None)


def _config_row(cfg, a: dict, st: dict, best_trivial, task: str, model_name: str) -> dict:
    s_all, s_hc = metrics.share(a["agree"], a["n"]), metrics.share(a["agree_hc"], a["n_hc"])
    verdict = _verdict(s_all, best_trivial)
    bias, first, second = _position_bias(st)
    return {
        "judge": cfg.name + (" (noise model)" if cfg.is_noise else ""), "kind": "AI labeler",
        "model": model_name, "prompt": paper.table2_label(cfg.preamble, cfg.chain_of_thought, cfg.shots),
        "sc": cfg.self_consistency_n, "n": a["n"],
        "alignment": s_all.value, "alignment_ci": [s_all.lo, s_all.hi],
        "hc_alignment": s_hc.value, "hc_ci": [s_hc.lo, s_hc.hi], "n_hc": a["n_hc"],
        "position_bias": bias, "bias_first": first, "bias_second": second,
        "cost": f"{st['tokens_sum'] / st['n']:.0f} tokens" if st.get("n") and st.get("tokens_sum") is not None else "",
        "errors": st.get("n_error", 0),
        "paper": paper.table2_lookup(cfg.preamble, cfg.chain_of_thought, cfg.shots, task),
        "verdict": VERDICTS[verdict][1] if verdict else "", "row_bad": verdict == "no",
        "badge": VERDICTS[verdict][:2] if verdict else None,
    }


def _trivial_row(key: str, t: dict | None) -> dict:
    return {
        "judge": metrics.TRIVIAL_JUDGES[key.split(":")[1]], "kind": "trivial baseline", "model": "-",
        "prompt": "-", "sc": None, "n": (t or {}).get("all", {}).get("n"),
        "alignment": _pct(t and t["all"]), "alignment_ci": _ci(t and t["all"]),
        "hc_alignment": _pct(t and t["high_confidence"]), "hc_ci": _ci(t and t["high_confidence"]),
        "n_hc": (t or {}).get("high_confidence", {}).get("n"),
        "position_bias": 0.0 if t else None, "bias_first": None, "bias_second": None,
        "cost": "0 tokens", "errors": 0, "paper": None,
        "verdict": "" if t else "computing...", "row_trivial": True,
    }


def _human_row(hh: dict | None, human_cost: dict) -> dict:
    spl = formats.seconds_per_label(human_cost.get("seconds_sum") or 0, human_cost.get("n_timed") or 0)
    return {
        "judge": "Human-human agreement (ceiling)", "kind": "humans", "model": "-", "prompt": "-", "sc": None,
        "n": hh and hh.get("n"), "alignment": _pct(hh), "alignment_ci": _ci(hh),
        "hc_alignment": None, "hc_ci": None, "n_hc": None,
        "position_bias": None, "bias_first": None, "bias_second": None,
        "cost": f"{spl:.1f} s" if spl is not None else "", "errors": None,
        "paper": f"{paper.HUMAN_AGREEMENT_RANGE[0]:.0f}-{paper.HUMAN_AGREEMENT_RANGE[1]:.0f}", "verdict": "",
    }


def _paper_table() -> Table:
    rows = [{"prompt": paper.table2_label(p, cot, shots), "summarization": v[0], "helpful": v[1], "harmless": v[2]}
            for (p, cot, shots), v in paper.TABLE2.items()]
    return Table("paper_table2", paper.TABLE2_SOURCE, [
        Column("prompt", "Prompt"), Column("summarization", "Summarization %", "num"),
        Column("helpful", "Helpful %", "num"), Column("harmless", "Harmless %", "num"),
    ], rows, note="Human inter-annotator agreement on this data: 73-77%. Position bias (PaLM 2 L/S/XS): 18/21/56%.")


def alignment_page(f: Filters, auto_refresh: bool = True) -> dict:
    state = cache_state(f, auto_refresh, needs=("labeler_stats", "alignment", "human_cost"), quick=("alignment",))
    stats = {int(k): v for k, v in state.live["labeler_stats"].items()}
    align = {int(k): v for k, v in state.live["alignment"].items()}
    configs = selectors.labeler_configs(set(stats) | set(align))
    models = selectors.model_display_names([c.model for c in configs.values()])
    res = state.result or {}
    task = selectors.dataset_task(f)
    trivial = res.get("trivial_alignment", {})
    best_trivial = max((v["all"]["value"] for v in trivial.values() if v["all"]["value"] is not None), default=None)
    empty = {"n": 0, "agree": 0, "n_hc": 0, "agree_hc": 0}
    rows = [_config_row(cfg, align.get(cid, empty), stats.get(cid, {}), best_trivial, task, models[cfg.model])
            for cid, cfg in sorted(configs.items(), key=lambda kv: kv[1].name)]
    rows += [_trivial_row(key, trivial.get(key)) for key in TRIVIAL_KEYS]
    rows.append(_human_row(res.get("human_human"), state.live["human_cost"]))
    main = Table(
        "alignment", "AI-labeler alignment with the human majority", _alignment_columns(task), rows,
        note="Alignment: share of comparisons where the judge's verdict equals the human majority "
             "(split human votes left out; ties count half). High-confidence: mean human confidence "
             "1-2 or 8-9. Position bias: share of pairs where the labeler prefers the same position in "
             "both orders; 'biased to 1st/2nd' splits those biased pairs, as the paper does. "
             "Human cost: " + formats.TIME_PER_LABEL[0].lower() + formats.TIME_PER_LABEL[1:],
        legend=[VERDICTS[k] for k in ("beats", "unclear", "no")],
    )
    return {"tables": [main, _paper_table()], "state": state}


# --- win rates ---------------------------------------------------------------------------------------


def _matrix(order: list[int], pols: dict, cells: dict, judge: str, f: Filters) -> list[dict]:
    """Rows of the win-rate matrix: per cell its policies, figures as printed, css and drill-down URL."""
    base = reverse("evaluation:winrate_cell")
    rest = urlencode({"judge": judge, **f.query()})  # the same for every cell: encoded once
    rows = []
    for x in order:
        out = []
        for y in order:
            c = cells.get((x, y))
            if x == y or c is None:
                out.append({"self": x == y, "x": None})
                continue
            css = "win" if c["wilson"][0] > 0.5 else "loss" if c["wilson"][1] < 0.5 else ""
            out.append({
                "self": False, "x": x, "y": y, "css": css, "rate": f"{c['rate']:.6f}", "text": fmt(c["rate"], "pct"),
                "sub": f"{fmt(c['wilson'], 'ci')} · n={c['n']}",
                "lc": f"LC {fmt(c['lc'], 'pct')}" if c.get("lc") is not None else "",
                "url": f"{base}?x={x}&y={y}&{rest}",
            })
        rows.append({"policy": pols[x], "cells": out})
    return rows


def _judge_counts(counts: dict, res: dict | None, judge: str, with_stats: bool = True) -> tuple[dict, dict]:
    """(oriented counts, cached stats) of one judge: live counts, or the stored ones for a trivial
    judge; the stored intervals only ``with_stats``."""
    if judge in TRIVIAL_KEYS:
        cached = _cached_pairs(res, judge)
        return {k: v["counts"] for k, v in cached.items()}, cached
    return _oriented(counts.get(judge, {})), (_cached_pairs(res, judge) if with_stats else {})


def _winrate_cells(oriented: dict, cached: dict) -> dict:
    keys = list(oriented)
    if not keys:
        return {}
    w, l, t = ([oriented[k][i] for k in keys] for i in range(3))
    wr = metrics.win_rate(w, l, t)
    cells = {}
    for n, k in enumerate(keys):
        c = cached.get(k, {})
        cells[k] = {
            "x": k[0], "y": k[1], "wins": int(w[n]), "losses": int(l[n]), "ties": int(t[n]), "n": int(wr["n"][n]),
            "rate": float(wr["rate"][n]), "wilson": [float(wr["lo"][n]), float(wr["hi"][n])],
            "boot": c.get("boot"), "lc": c.get("lc"), "lc_ci": c.get("lc_ci"),
        }
    return cells


def _winrate_table(cells: dict, pols: dict, judge_label: str, same_policy: int = 0) -> Table:
    cols = [
        Column("policy", "Policy"), Column("opponent", "Opponent"), Column("wins", "Wins", "int"),
        Column("losses", "Losses", "int"), Column("ties", "Ties", "int"), Column("n", "n", "int"),
        Column("rate", "Win rate", "pct"), Column("wilson", "Wilson 95%", "ci"),
        Column("boot", "Bootstrap 95%", "ci", secondary=True),
        Column("lc", "Length-controlled", "pct"), Column("lc_ci", "LC 95%", "ci", secondary=True),
    ]
    rows = [{**c, "policy": pols[c["x"]].name, "opponent": pols[c["y"]].name}
            for c in sorted(cells.values(), key=lambda c: (-c["n"], pols[c["x"]].name, pols[c["y"]].name))]
    return Table("winrates", f"Win rates judged by {judge_label}", cols, rows, display_limit=200,
                 note="Ties count half. Bootstrap and length-controlled (logistic regression on the length "
                      "ratio, predicted at 1.0) come from the worker's cached computation."
                      + (f" Left out: {same_policy:,} label(s) of comparisons with the same policy on both "
                         "sides, which say nothing about which policy wins." if same_policy else ""))


def _by_judge_table(counts: dict, res: dict | None, labels: dict) -> Table:
    """Every pair, judged by every judge side by side (trivial judges included)."""
    judge_keys = [HUMANS] + sorted(k for k in counts if k != HUMANS) + list(TRIVIAL_KEYS)
    per_judge = {jk: _judge_counts(counts, res, jk, with_stats=False)[0] for jk in judge_keys}
    all_pairs = sorted({k for d in per_judge.values() for k in d if k[0] < k[1]})
    pols = selectors.policies({p for pair in all_pairs for p in pair})
    cols = [Column("policy", "Policy"), Column("opponent", "Opponent")] + [
        Column(jk.replace(":", "_"), labels.get(jk, jk), "pct") for jk in judge_keys
    ] + [Column("n_humans", "Human labels", "int")]
    rows = []
    for x, y in all_pairs:
        row = {"policy": pols[x].name, "opponent": pols[y].name, "n_humans": sum(per_judge[HUMANS].get((x, y), [0, 0, 0]))}
        for jk in judge_keys:
            c = per_judge[jk].get((x, y))
            row[jk.replace(":", "_")] = None if not c or not sum(c) else (c[0] + 0.5 * c[2]) / sum(c)
        rows.append(row)
    rows.sort(key=lambda r: -r["n_humans"])
    return Table("winrates_by_judge", "Win rate of policy over opponent, by every judge", cols, rows, display_limit=200,
                 note="Trivial judges are shown beside the AI judges: an AI judge whose win rates track "
                      "the longer-summary judge may just be measuring length.")


def winrate_page(f: Filters, judge: str = HUMANS, auto_refresh: bool = True) -> dict:
    state = cache_state(f, auto_refresh, needs=PAIR_COUNTS, quick=("pairs", "trivial"))
    counts, configs = _live_judges(state.live)
    choices = judge_choices(configs)
    labels = dict(choices)
    if judge not in labels:
        judge = HUMANS
    oriented, cached = _judge_counts(counts, state.result, judge)
    pol_ids = sorted({x for x, _ in oriented})
    pols = selectors.policies(pol_ids)
    order = sorted(pol_ids, key=lambda p: (pols[p].kind, pols[p].name))
    cells = _winrate_cells(oriented, cached)
    same_policy = _same_policy_labels(state.live).get(judge, 0)
    return {"tables": [_winrate_table(cells, pols, labels[judge], same_policy),
                       _by_judge_table(counts, state.result, labels)],
            "matrix": _matrix(order, pols, cells, judge, f), "order": [pols[p] for p in order], "judge": judge,
            "judges": choices, "state": state, "same_policy_left_out": same_policy}


# --- leaderboard -------------------------------------------------------------------------------------


def _elo(values: list | None, i: int) -> float | None:
    return None if values is None else metrics.elo_scale(values[i]).item()


def _ratings(res: dict | None, judge_keys: list[str]) -> dict[str, dict[int, tuple]]:
    """{judge: {policy id: (rating, lo, hi, games, group)}} on the Elo scale, from the stored result
    (lo and hi are None for every judge but the humans)."""
    ratings: dict[str, dict[int, tuple]] = {}
    for jk in judge_keys:
        bt = ((res or {}).get("judges", {}).get(jk) or {}).get("bt")
        if bt:
            ratings[jk] = {pid: (_elo(bt["theta"], i), _elo(bt["lo"], i), _elo(bt["hi"], i), bt["games"][i], bt["group"][i])
                           for i, pid in enumerate(res["policies"]) if bt["games"][i] > 0}
    return ratings


def harmless_table(f: Filters) -> Table | None:
    """The paper's harmless rate per policy, raw and corrected to the SFT policies' mean response
    length (all judged responses' mean where no SFT policy was judged); None without judgments."""
    d = selectors.harmlessness_rows(f)
    if not len(d["policy"]):
        return None
    pols = selectors.policies(set(d["policy"].tolist()))
    sft = np.isin(d["policy"], [pk for pk, p in pols.items() if p.kind == PolicyKind.SFT])
    reference = float(d["length"][sft].mean() if sft.any() else d["length"].mean())
    rows = []
    for pk in sorted(pols, key=lambda p: pols[p].name):
        m = d["policy"] == pk
        raw = metrics.harmless_rate(d["harmless"][m])
        lc = metrics.length_corrected_harmless_rate(d["harmless"][m], d["length"][m], reference)
        rows.append({"policy": pols[pk].name, "kind": pols[pk].get_kind_display(), "n": int(m.sum()),
                     "rate": raw.value, "rate_ci": [raw.lo, raw.hi], "mean_length": float(d["length"][m].mean()),
                     "lc": lc["rate"], "lc_ci": [lc["lo"], lc["hi"]]})
    return Table("harmless_rate", "Harmless rate", [
        Column("policy", "Policy"), Column("kind", "Kind"), Column("n", "Responses judged", "int"),
        Column("rate", "Harmless rate", "pct"), Column("rate_ci", "Wilson 95%", "ci"),
        Column("mean_length", "Mean length (chars)", "num"),
        Column("lc", f"Length-corrected (to {reference:.0f} chars)", "pct"), Column("lc_ci", "LC 95%", "ci"),
    ], rows, note="Share of a policy's responses that human raters judged harmless (the paper's harmless rate: "
                  "SFT 64%, RLHF 76%, RLAIF 88%). Length-corrected: a logistic regression of harmless on "
                  f"length / {reference:.0f} characters (the SFT policies' mean response length, else all judged "
                  "responses'), predicted at 1.0; empty where every response got the same judgment.")


def leaderboard_page(f: Filters, auto_refresh: bool = True) -> dict:
    state = cache_state(f, auto_refresh, needs=PAIR_COUNTS, quick=("pairs", "judges"))
    counts, configs = _live_judges(state.live)
    res = state.result
    labels = dict(judge_choices(configs))
    n_by_pol: dict[int, int] = {}
    for (pa, pb), c in counts[HUMANS].items():
        n_by_pol[pa] = n_by_pol.get(pa, 0) + sum(c)
        n_by_pol[pb] = n_by_pol.get(pb, 0) + sum(c)
    pol_ids = set(n_by_pol) | set((res or {}).get("policies", []))
    pols = selectors.policies(pol_ids)
    judge_keys = [HUMANS] + sorted(k for k in counts if k != HUMANS) + list(TRIVIAL_KEYS)
    ratings = _ratings(res, judge_keys)
    cols = [Column("rank", "Rank", "int"), Column("policy", "Policy"), Column("kind", "Kind"),
            Column("group", "Group", "int"), Column("n_human", "Human labels", "int"),
            Column("rating", "Rating (humans)", "num"), Column("rating_ci", "Bootstrap 95%", "ci_num")]
    cols += [Column("r_" + jk.replace(":", "_"), f"Rating: {labels.get(jk, jk)}", "num", secondary=True)
             for jk in judge_keys[1:]]
    human = ratings.get(HUMANS, {})
    rows = []
    for rank, pid in enumerate(sorted(pol_ids, key=lambda p: -(human.get(p, (-1e9,))[0])), start=1):
        h = human.get(pid)
        row = {"rank": rank if h else None, "policy": pols[pid].name, "kind": pols[pid].get_kind_display(),
               "n_human": n_by_pol.get(pid, 0), "rating": h[0] if h else None,
               "group": (h[4] + 1) if h else None, "rating_ci": [h[1], h[2]] if h else None}
        row.update({"r_" + jk.replace(":", "_"): (ratings.get(jk, {}).get(pid) or (None,))[0] for jk in judge_keys[1:]})
        rows.append(row)
    table = Table("leaderboard", "Bradley-Terry leaderboard", cols, rows,
                  note=f"Bradley-Terry maximum likelihood (ties half), Elo scale (400 = 10:1 odds, mean 1000); "
                       f"percentile intervals from {(res or {}).get('rounds') or DEFAULT_ROUNDS} bootstrap rounds that "
                       "resample the pair-outcome counts. Ratings by each AI judge and by the two trivial judges "
                       "shown beside. Policies in different groups were never compared (directly or through "
                       "others): their ratings are not comparable across groups.")
    chart = [{"policy": r["policy"], "rating": r["rating"], "lo": r["rating_ci"][0], "hi": r["rating_ci"][1]}
             for r in rows if r["rating"] is not None]
    harmless = harmless_table(f)
    return {"tables": [table] + ([harmless] if harmless else []), "chart": chart, "state": state}


# --- annotators --------------------------------------------------------------------------------------


def _annotator_judges(res: dict) -> tuple[list[str], dict[str, str]]:
    """Which judges the annotator table shows (from the stored result) and their labels."""
    cfg_keys = sorted(k for k in res.get("judges", {}) if k.startswith("config:"))
    configs = selectors.labeler_configs([int(k.split(":")[1]) for k in cfg_keys])
    keys = [k for k in cfg_keys if int(k.split(":")[1]) in configs] + list(TRIVIAL_KEYS)
    label = {f"config:{c.pk}": f"AI: {c.name}" for c in configs.values()}
    label.update({k: metrics.TRIVIAL_JUDGES[k.split(":")[1]] for k in TRIVIAL_KEYS})
    return keys, label


def _agreement_table(res: dict) -> Table:
    ag, hh = res.get("agreement", {}), res.get("human_human")
    return Table("agreement", "Inter-annotator agreement", [
        Column("measure", "Measure"), Column("value", "Value", "num3"), Column("detail", "Detail")], [
        {"measure": "Pairwise agreement (humans)", "value": _pct(hh),
         "detail": f"{int(hh['n'])} label pairs" if hh else ""},
        {"measure": "Krippendorff's alpha (nominal)", "value": ag.get("alpha"), "detail": "all labels"},
        {"measure": "Cohen's kappa, mean over annotator pairs", "value": ag.get("kappa_mean"),
         "detail": f"{ag.get('kappa_pairs', 0)} pairs with 5+ shared comparisons"},
    ])


def annotators_page(f: Filters, auto_refresh: bool = True) -> dict:
    state = cache_state(f, auto_refresh, needs=("annotators",))
    stats = sorted(({"who": k, **v} for k, v in state.live["annotators"].items()), key=lambda r: -r["n"])
    res = state.result or {}
    ann = res.get("agreement", {}).get("annotators", {})
    judge_keys, label = _annotator_judges(res)
    cols = [Column("annotator", "Annotator"), Column("n", "Labels", "int"), Column("mean_s", "Seconds per label", "num"),
            Column("per_hour", "Labels per hour", "num"), Column("gold_n", "Gold labels", "int"),
            Column("gold_acc", "Gold accuracy", "pct"), Column("majority", "Agrees with others' majority", "pct"),
            Column("majority_ci", "95% CI", "ci", secondary=True)]
    cols += [Column("j_" + jk.replace(":", "_"), f"Agrees with {label[jk]}", "pct", secondary=True) for jk in judge_keys]
    rows = []
    for s in stats:
        a = ann.get(str(s["who"]), {})
        spl = formats.seconds_per_label(s["total_s"] or 0, s["n_timed"])
        row = {
            "annotator": s["who"], "n": s["n"], "mean_s": spl, "per_hour": formats.labels_per_hour(spl),
            "gold_n": s["n_gold"], "gold_acc": (s["gold_ok"] / s["n_gold"]) if s["n_gold"] else None,
            "majority": _pct(a.get("majority")), "majority_ci": _ci(a.get("majority")),
        }
        row.update({"j_" + jk.replace(":", "_"): _pct(a.get("judges", {}).get(jk)) for jk in judge_keys})
        rows.append(row)
    main = Table("annotators", "Annotators", cols, rows,
                 note="Majority: the other annotators' majority on the same comparison (ties and lone labels "
                      "left out). " + formats.TIME_PER_LABEL)
    return {"tables": [main, _agreement_table(res)], "state": state}


PAGES = {
    "alignment": alignment_page,
    "winrates": winrate_page,
    "leaderboard": leaderboard_page,
    "annotators": annotators_page,
}


def export_table(f: Filters, page: str, table: str, **kwargs) -> Table:
    """One table of one page (for CSV/JSON export); KeyError when either is unknown."""
    if page not in PAGES:
        raise KeyError(page)
    for t in PAGES[page](f, **kwargs)["tables"]:
        if t.name == table:
            return t
    raise KeyError(table)
