"""Evaluation services: the worker-side computation cached in CachedResult, and the page tables.

Two layers, so a dashboard page stays fast at a million labels:

- ``compute_dashboard`` (run by a Celery worker, or by ``manage.py evaluate``) loads the label rows
  once and computes everything that needs them: bootstrap intervals, Bradley-Terry ratings,
  length-controlled win rates, the two trivial judges, human-human agreement, kappa and alpha.
  ``refresh_dashboard`` stores the result under one key per filter set.
- ``*_page`` functions build each page's tables from SQL aggregates (selectors) plus that cached
  result; a result computed on a different label count is shown, marked stale, and a refresh
  is queued.
"""
from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, field

import numpy as np
from django.db import transaction
from django.utils import timezone

from . import metrics, paper, selectors
from .models import CachedResult
from .selectors import Filters

CACHE_VERSION = 1
DEFAULT_ROUNDS = 1000
PENDING_TIMEOUT_S = 15 * 60
HUMANS = "humans"
TRIVIAL_KEYS = ("trivial:longer", "trivial:overlap")


# --- tables ---------------------------------------------------------------------------------------


@dataclass
class Column:
    key: str
    label: str
    kind: str = "text"  # text, int, num, num3, pct, ci ([lo, hi] of shares), ci_num ([lo, hi] of numbers)


@dataclass
class Table:
    name: str
    title: str
    columns: list[Column]
    rows: list[dict] = field(default_factory=list)
    note: str = ""
    display_limit: int | None = None  # rows shown on the page (exports have all)

    def flat_columns(self) -> list[str]:
        out = []
        for c in self.columns:
            out += [f"{c.key}_lo", f"{c.key}_hi"] if c.kind in ("ci", "ci_num") else [c.key]
        return out

    def flat_rows(self) -> list[dict]:
        out = []
        for r in self.rows:
            d = {}
            for c in self.columns:
                v = r.get(c.key)
                if c.kind in ("ci", "ci_num"):
                    lo, hi = (v if v else (None, None))
                    d[f"{c.key}_lo"], d[f"{c.key}_hi"] = _clean(lo), _clean(hi)
                else:
                    d[c.key] = _clean(v)
            out.append(d)
        return out


    def body_html(self) -> str:
        """The <tbody> rows as HTML, every value escaped.

        Built in Python: a 50-policy win-rate table has 2,450 rows, and a template tag per cell
        would cost more than the SQL behind the page.
        """
        from html import escape  # what django.utils.html.escape calls, without its lazy-string wrapper

        from django.utils.safestring import mark_safe

        from .templatetags.evaluation_tags import fmt

        if not self.rows:
            return mark_safe(f'<tr><td colspan="{len(self.columns)}" class="muted">No data for these filters.</td></tr>')
        cls = [("num " if c.kind != "text" else "") + c.key for c in self.columns]
        out = []
        rows = self.rows if self.display_limit is None else self.rows[: self.display_limit]
        for r in rows:
            css = ("trivial" if r.get("row_trivial") else "") + (" bad" if r.get("row_bad") else "")
            cells = "".join(f'<td class="{k}">{escape(fmt(r.get(c.key), c.kind))}</td>' for c, k in zip(self.columns, cls))
            out.append(f'<tr class="{css}">{cells}</tr>')
        if self.display_limit is not None and len(self.rows) > self.display_limit:
            out.append(f'<tr><td colspan="{len(self.columns)}" class="muted">Showing {self.display_limit} of '
                       f'{len(self.rows)} rows (most labels first); the CSV/JSON export has them all.</td></tr>')
        return mark_safe("\n".join(out))


def _clean(v):
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def table_csv(table: Table) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=table.flat_columns())
    w.writeheader()
    for r in table.flat_rows():
        w.writerow(r)
    return buf.getvalue()


def table_json(table: Table, filters: Filters) -> str:
    return json.dumps(
        {"table": table.name, "title": table.title, "filters": filters.query(), "rows": table.flat_rows()},
        default=str, indent=1,
    )


# --- the cached computation -----------------------------------------------------------------------


def cache_key(f: Filters) -> str:
    return f"dashboard:v{CACHE_VERSION}:{f.key()}"


def _share_dict(s: metrics.Share) -> dict:
    return s.as_dict()


def _pair_stats(n_players: int, pol_index, pa, pb, score, lens_a, lens_b, rounds: int, seed: int) -> dict:
    """Win counts, bootstrap intervals, length-controlled rates and Bradley-Terry for one judge."""
    a, b = pol_index[pa], pol_index[pb]
    pc = metrics.PairCounts.from_outcomes(n_players, a, b, score)
    boot_lo, boot_hi = metrics.bootstrap_win_rate(pc.wins_i, pc.wins_j, pc.ties, rounds=rounds, seed=seed)
    # rows of each unordered pair, oriented so that "x" is the lower index
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    flip = a != lo
    s = metrics.verdict(score)
    s_x = np.where(flip, 1.0 - s, s)
    len_x = np.where(flip, lens_b, lens_a)
    len_y = np.where(flip, lens_a, lens_b)
    key = lo * n_players + hi
    pair_keys = pc.i * n_players + pc.j
    group = np.searchsorted(pair_keys, key)  # pc's pairs are sorted by (i, j), i.e. by key
    lc = metrics.length_controlled_win_rates(group, s_x, len_x, len_y, n_groups=len(pair_keys))
    pairs = [
        [int(pc.i[k]), int(pc.j[k]), int(pc.wins_i[k]), int(pc.wins_j[k]), int(pc.ties[k]),
         _clean(float(boot_lo[k])), _clean(float(boot_hi[k])),
         _clean(float(lc["rate"][k])), _clean(float(lc["lo"][k])), _clean(float(lc["hi"][k]))]
        for k in range(len(pair_keys))
    ]
    bt = metrics.bootstrap_bradley_terry(pc, rounds=rounds, seed=seed) if len(pc.i) else None
    games = np.zeros(n_players)
    np.add.at(games, pc.i, pc.wins_i + pc.wins_j + pc.ties)
    np.add.at(games, pc.j, pc.wins_i + pc.wins_j + pc.ties)
    return {"pairs": pairs, "bt": None if bt is None else {
        "theta": bt["theta"].tolist(), "lo": bt["lo"].tolist(), "hi": bt["hi"].tolist(), "games": games.tolist(),
        "group": metrics.connected_groups(pc).tolist(),
    }}


def compute_dashboard(*, filters: Filters, rounds: int = DEFAULT_ROUNDS, seed: int = 0) -> dict:
    """Everything the pages need that cannot be a SQL aggregate; a JSON-ready dict."""
    t0 = time.perf_counter()
    wh, wa = selectors.watermarks()
    filters = filters.upto(wh, wa)  # everything below is on the labels up to these ids
    sql = sql_aggregates(filters, with_alignment=True)
    H = selectors.human_rows(filters)
    A = selectors.ai_rows(filters)
    cids = np.union1d(H["cid"], A["cid"])
    C = selectors.comparison_rows(cids, with_texts=True)
    pos_h = np.searchsorted(C["cid"], H["cid"])
    pos_a = np.searchsorted(C["cid"], A["cid"])

    policy_ids = np.union1d(C["pol_a"], C["pol_b"]).astype(np.int64)
    pol_index = np.full(int(policy_ids.max()) + 1 if len(policy_ids) else 1, -1, dtype=np.int64)
    pol_index[policy_ids] = np.arange(len(policy_ids))
    P = len(policy_ids)

    hv = metrics.human_majority(H["cid"], H["choice"], H["confidence"])
    hv_pos = np.searchsorted(C["cid"], hv.item)
    trivial = metrics.trivial_judges(C["source"], C["text_a"], C["text_b"]) if len(cids) else {
        "longer": np.zeros(0), "overlap": np.zeros(0)}

    # judges: (key, label, comparison positions, score for A)
    judges = [(HUMANS, "Humans", pos_h, 1.0 - H["choice"])]
    configs = selectors.labeler_configs(np.unique(A["config"]).tolist())
    for cfg_id in np.unique(A["config"]):
        m = A["config"] == cfg_id
        judges.append((f"config:{int(cfg_id)}", configs[int(cfg_id)].name, pos_a[m], A["p_a"][m]))
    all_pos = np.arange(len(cids))
    for name in ("longer", "overlap"):
        judges.append((f"trivial:{name}", metrics.TRIVIAL_JUDGES[name], all_pos, trivial[name]))

    out_judges = {}
    for n, (key, label, pos, score) in enumerate(judges):
        if len(pos) == 0 or P < 2:
            out_judges[key] = {"label": label, "pairs": [], "bt": None}
            continue
        stats = _pair_stats(P, pol_index, C["pol_a"][pos], C["pol_b"][pos], score,
                            C["len_a"][pos], C["len_b"][pos], rounds, seed + n)
        out_judges[key] = {"label": label, **stats}

    trivial_alignment = {}
    for name in ("longer", "overlap"):
        al = metrics.alignment(trivial[name][hv_pos] if len(hv.item) else np.zeros(0), hv)
        trivial_alignment[f"trivial:{name}"] = {k: _share_dict(v) for k, v in al.items()}

    # per annotator: agreement with the others' majority and with every judge
    annotators: dict[str, dict] = {}
    if len(H["cid"]):
        maj = metrics.agreement_with_others_majority(H["cid"], H["who"], H["choice"])
        judge_scores = {}
        for key, _, pos, score in judges[1:]:
            full = np.full(len(cids), np.nan)
            full[pos] = score
            judge_scores[key] = full[pos_h]
        raters, rinv = np.unique(H["who"].astype(str), return_inverse=True)
        human_score = 1.0 - H["choice"]
        for key, sc in judge_scores.items():
            have = np.isfinite(sc)
            agree = np.where(have, metrics.agreement_scores(np.where(have, sc, 0.5), human_score), 0.0)
            n_r = np.bincount(rinv, weights=have.astype(float), minlength=len(raters))
            s_r = np.bincount(rinv, weights=agree, minlength=len(raters))
            for i, r in enumerate(raters.tolist()):
                annotators.setdefault(r, {"majority": None, "judges": {}})["judges"][key] = _share_dict(
                    metrics.share(s_r[i], n_r[i]))
        for r, s in maj.items():
            annotators.setdefault(str(r), {"majority": None, "judges": {}})["majority"] = _share_dict(s)

    kappa = metrics.mean_pairwise_kappa(H["cid"], H["who"].astype(str), H["choice"], min_shared=5) if len(H["cid"]) else {
        "mean": math.nan, "n_pairs": 0}
    return {
        "version": CACHE_VERSION,
        "rounds": rounds,
        "watermark": [wh, wa],
        "sql": sql,
        "n_labels": int(sql["human_cost"]["n"] + sum(r["n"] for r in sql["labeler_stats"].values())),
        "n_human": int(len(H["cid"])),
        "n_ai": int(len(A["cid"])),
        "policies": policy_ids.tolist(),
        "judges": out_judges,
        "trivial_alignment": trivial_alignment,
        "human_human": _share_dict(metrics.human_human_agreement(H["cid"], H["choice"])),
        "agreement": {
            "alpha": _clean(metrics.krippendorff_alpha_nominal(H["cid"], H["choice"])),
            "kappa_mean": _clean(kappa["mean"]),
            "kappa_pairs": kappa["n_pairs"],
            "annotators": annotators,
        },
        "seconds": time.perf_counter() - t0,
    }


def refresh_dashboard(*, filters: Filters, rounds: int = DEFAULT_ROUNDS) -> CachedResult:
    """Compute and store the cached result of one filter set (called by the worker)."""
    result = compute_dashboard(filters=filters, rounds=rounds)
    with transaction.atomic():
        obj, _ = CachedResult.objects.select_for_update().get_or_create(
            key=cache_key(filters), defaults={"value": {}}
        )
        obj.value = {"status": "ready", "result": result, "pending": False,
                     "finished_at": timezone.now().isoformat()}
        obj.n_labels = result["n_labels"]
        obj.save()
    return obj


def request_refresh(*, filters: Filters, force: bool = False) -> bool:
    """Queue a recompute unless one is already pending (and not stuck); True when queued."""
    from .tasks import refresh_dashboard_task

    key = cache_key(filters)
    with transaction.atomic():
        obj, created = CachedResult.objects.select_for_update().get_or_create(
            key=key, defaults={"value": {"status": "pending", "result": None}}
        )
        value = dict(obj.value or {})
        requested = value.get("requested_at")
        stuck = requested is None or (time.time() - float(requested)) > PENDING_TIMEOUT_S
        if value.get("pending") and not stuck and not force:
            return False
        value.update(pending=True, requested_at=time.time())
        obj.value = value
        obj.save(update_fields=["value", "computed_at"])
        payload = {"dataset": filters.dataset, "campaign": filters.campaign,
                   "date_from": filters.date_from.isoformat() if filters.date_from else None,
                   "date_to": filters.date_to.isoformat() if filters.date_to else None}
        transaction.on_commit(lambda: refresh_dashboard_task.delay(payload))
    return True


def sql_aggregates(f: Filters, with_alignment: bool = False) -> dict:
    """The SQL GROUP BY aggregates a page needs, JSON-ready; all but alignment are additive."""
    out = {
        "human_pairs": [list(r) for r in selectors.human_pair_counts(f)],
        "ai_pairs": [list(r) for r in selectors.ai_pair_counts(f)],
        "labeler_stats": {str(r.pop("config_id")): r for r in selectors.labeler_stats(f)},
        "annotators": {str(r.pop("who")): r for r in selectors.annotator_stats(f)},
        "human_cost": selectors.human_cost(f),
    }
    if with_alignment:
        out["alignment"] = {str(k): v for k, v in selectors.alignment_counts(f).items()}
    return out


def _merge(base: dict, delta: dict) -> dict:
    """Cached aggregates plus those of the labels written since (sums of sums)."""
    def add(a: dict, b: dict) -> dict:
        return {k: (a.get(k) or 0) + (b.get(k) or 0) for k in set(a) | set(b)}

    return {
        "human_pairs": base["human_pairs"] + delta["human_pairs"],
        "ai_pairs": base["ai_pairs"] + delta["ai_pairs"],
        "labeler_stats": {k: add(base["labeler_stats"].get(k, {}), delta["labeler_stats"].get(k, {}))
                          for k in set(base["labeler_stats"]) | set(delta["labeler_stats"])},
        "annotators": {k: add(base["annotators"].get(k, {}), delta["annotators"].get(k, {}))
                       for k in set(base["annotators"]) | set(delta["annotators"])},
        "human_cost": add(base["human_cost"], delta["human_cost"]),
        "alignment": base["alignment"],
    }


@dataclass
class CacheState:
    result: dict | None
    pending: bool
    stale: bool
    live: dict
    n_new: int = 0
    computed_at: object = None
    n_cached: int = 0


def cache_state(f: Filters, auto_refresh: bool = True) -> CacheState:
    """The cached result for ``f`` and the live aggregates of the page.

    With a cached result, the live aggregates are the cached SQL aggregates (labels up to the
    worker's id watermark) plus the same GROUP BY over the labels written since, which is an
    index range scan; without one (a first visit to a filter set) the GROUP BY runs over all
    labels.  Missing or stale results queue a refresh (one at a time per filter set).
    Alignment counts are not additive (a new label can flip a majority), so they come from the
    cache and are marked stale until the worker has caught up.
    """
    obj = CachedResult.objects.filter(key=cache_key(f)).first()
    value = (obj.value if obj else None) or {}
    result = value.get("result")
    if result is not None and (result.get("version") != CACHE_VERSION or "sql" not in result):
        result = None
    if result is None:
        live = sql_aggregates(f, with_alignment=True)
        n_new = 0
    else:
        delta = sql_aggregates(f.since(*result["watermark"]))
        live = _merge(result["sql"], delta)
        n_new = int(delta["human_cost"]["n"] + sum(r["n"] for r in delta["labeler_stats"].values()))
    stale = result is None or n_new > 0
    pending = bool(value.get("pending"))
    if stale and auto_refresh:
        pending = request_refresh(filters=f) or pending
    return CacheState(result, pending, stale, live, n_new, obj.computed_at if obj else None,
                      obj.n_labels if obj else 0)


def filters_from_payload(payload: dict) -> Filters:
    import datetime as dt

    def d(x):
        return dt.date.fromisoformat(x) if x else None

    return Filters(payload.get("dataset") or None, payload.get("campaign") or None,
                   d(payload.get("date_from")), d(payload.get("date_to")))


# --- page builders --------------------------------------------------------------------------------


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
    cfg_ids = [int(k.split(":")[1]) for k in counts if k.startswith("config:")]
    return counts, selectors.labeler_configs(cfg_ids)


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


def _cached_pairs(result: dict | None, judge: str) -> dict:
    """{(x, y) policy ids: cached stats of x over y} for one judge, both orientations."""
    if not result or judge not in result["judges"]:
        return {}
    pol = result["policies"]
    out = {}
    for i, j, wi, wj, t, blo, bhi, lc, lclo, lchi in result["judges"][judge]["pairs"]:
        x, y = pol[i], pol[j]
        out[(x, y)] = {"counts": [wi, wj, t], "boot": [blo, bhi], "lc": lc, "lc_ci": [lclo, lchi]}
        flip = lambda v: None if v is None else 1.0 - v  # noqa: E731
        out[(y, x)] = {"counts": [wj, wi, t], "boot": [flip(bhi), flip(blo)], "lc": flip(lc),
                       "lc_ci": [flip(lchi), flip(lclo)]}
    return out


def judge_choices(configs: dict) -> list[tuple[str, str]]:
    out = [(HUMANS, "Humans")]
    out += [(f"config:{c.pk}", f"AI: {c.name}") for c in sorted(configs.values(), key=lambda c: c.name)]
    out += [(k, metrics.TRIVIAL_JUDGES[k.split(":")[1]]) for k in TRIVIAL_KEYS]
    return out


def alignment_page(f: Filters, auto_refresh: bool = True) -> dict:
    state = cache_state(f, auto_refresh)
    live = state.live
    stats = {int(k): v for k, v in live["labeler_stats"].items()}
    align = {int(k): v for k, v in live["alignment"].items()}
    configs = selectors.labeler_configs(set(stats) | set(align))
    res = state.result
    task = selectors.dataset_task(f)
    human_cost = live["human_cost"]

    trivial = (res or {}).get("trivial_alignment", {})
    best_trivial = max((v["all"]["value"] for v in trivial.values() if v["all"]["value"] is not None), default=None)

    cols = [
        Column("judge", "Judge"), Column("kind", "Kind"), Column("model", "Model"), Column("prompt", "Prompt"),
        Column("sc", "SC n", "int"), Column("n", "Compared", "int"),
        Column("alignment", "Alignment", "pct"), Column("alignment_ci", "95% CI", "ci"),
        Column("hc_alignment", "High-conf. alignment", "pct"), Column("hc_ci", "95% CI", "ci"),
        Column("n_hc", "High-conf. n", "int"),
        Column("position_bias", "Position bias", "pct"), Column("bias_first", "Biased to 1st", "pct"),
        Column("bias_second", "Biased to 2nd", "pct"),
        Column("cost", "Cost per label"), Column("errors", "Errors", "int"),
        Column("paper", f"Paper Table 2 ({task}), %", "num"), Column("verdict", "vs. trivial judges"),
    ]
    rows = []
    for cid, cfg in sorted(configs.items(), key=lambda kv: kv[1].name):
        a = align.get(cid, {"n": 0, "agree": 0, "n_hc": 0, "agree_hc": 0})
        s_all = metrics.share(a["agree"], a["n"])
        s_hc = metrics.share(a["agree_hc"], a["n_hc"])
        st = stats.get(cid, {})
        nb = st.get("n_both") or 0
        verdict = ""
        if best_trivial is not None and a["n"]:
            if s_all.value <= best_trivial:
                verdict = "NOT better than a trivial judge"
            elif s_all.lo <= best_trivial:
                verdict = "not clearly better (interval overlaps)"
            else:
                verdict = "better than trivial judges"
        rows.append({
            "judge": cfg.name + (" (noise model)" if cfg.is_noise else ""), "kind": "AI labeler",
            "model": cfg.model,
            "prompt": paper.table2_label(cfg.preamble, cfg.chain_of_thought, cfg.shots),
            "sc": cfg.self_consistency_n, "n": a["n"],
            "alignment": s_all.value, "alignment_ci": [s_all.lo, s_all.hi],
            "hc_alignment": s_hc.value, "hc_ci": [s_hc.lo, s_hc.hi], "n_hc": a["n_hc"],
            "position_bias": (st.get("n_first", 0) + st.get("n_second", 0)) / nb if nb else None,
            "bias_first": st.get("n_first", 0) / nb if nb else None,
            "bias_second": st.get("n_second", 0) / nb if nb else None,
            "cost": f"{st['tokens_sum'] / st['n']:.0f} tokens" if st.get("n") else "",
            "errors": st.get("n_error", 0),
            "paper": paper.table2_lookup(cfg.preamble, cfg.chain_of_thought, cfg.shots, task),
            "verdict": verdict, "row_bad": verdict.startswith("NOT"),
        })
    for key in TRIVIAL_KEYS:
        t = trivial.get(key)
        rows.append({
            "judge": metrics.TRIVIAL_JUDGES[key.split(":")[1]], "kind": "trivial baseline", "model": "-",
            "prompt": "-", "sc": None, "n": (t or {}).get("all", {}).get("n"),
            "alignment": _pct(t and t["all"]), "alignment_ci": _ci(t and t["all"]),
            "hc_alignment": _pct(t and t["high_confidence"]), "hc_ci": _ci(t and t["high_confidence"]),
            "n_hc": (t or {}).get("high_confidence", {}).get("n"),
            "position_bias": 0.0 if t else None, "bias_first": 0.0 if t else None, "bias_second": 0.0 if t else None,
            "cost": "0 tokens", "errors": 0, "paper": None,
            "verdict": "" if t else "computing...", "row_trivial": True,
        })
    hh = (res or {}).get("human_human")
    rows.append({
        "judge": "Human-human agreement (ceiling)", "kind": "humans", "model": "-", "prompt": "-", "sc": None,
        "n": hh and hh.get("n"), "alignment": _pct(hh), "alignment_ci": _ci(hh),
        "hc_alignment": None, "hc_ci": None, "n_hc": None,
        "position_bias": None, "bias_first": None, "bias_second": None,
        "cost": f"{human_cost['seconds_sum'] / human_cost['n_timed']:.1f} s" if human_cost.get("n_timed") else "",
        "errors": None, "paper": f"{paper.HUMAN_AGREEMENT_RANGE[0]:.0f}-{paper.HUMAN_AGREEMENT_RANGE[1]:.0f}",
        "verdict": "",
    })
    main = Table(
        "alignment", "AI-labeler alignment with the human majority", cols, rows,
        note="Alignment: share of comparisons where the judge's verdict equals the human majority "
             "(split human votes left out; ties count half). High-confidence: mean human confidence "
             "1-2 or 8-9. Position bias: share of pairs where the labeler prefers the same position in "
             "both orders. A labeler at or below the trivial judges has learned nothing useful.",
    )
    ref_rows = [
        {"prompt": paper.table2_label(p, cot, shots), "summarization": v[0], "helpful": v[1], "harmless": v[2]}
        for (p, cot, shots), v in paper.TABLE2.items()
    ]
    ref = Table("paper_table2", paper.TABLE2_SOURCE, [
        Column("prompt", "Prompt"), Column("summarization", "Summarization %", "num"),
        Column("helpful", "Helpful %", "num"), Column("harmless", "Harmless %", "num"),
    ], ref_rows, note="Human inter-annotator agreement on this data: 73-77%. Position bias (PaLM 2 L/S/XS): 18/21/56%.")
    return {"tables": [main, ref], "state": state}


def winrate_page(f: Filters, judge: str = HUMANS, auto_refresh: bool = True) -> dict:
    state = cache_state(f, auto_refresh)
    counts, configs = _live_judges(state.live)
    res = state.result
    choices = judge_choices(configs)
    if judge not in dict(choices):
        judge = HUMANS

    if judge in TRIVIAL_KEYS:
        cached = _cached_pairs(res, judge)
        oriented = {k: v["counts"] for k, v in cached.items()}
    else:
        oriented = _oriented(counts.get(judge, {}))
        cached = _cached_pairs(res, judge)
    pol_ids = sorted({x for x, _ in oriented})
    pols = selectors.policies(pol_ids)
    order = sorted(pol_ids, key=lambda p: (pols[p].kind, pols[p].name))

    keys = list(oriented)
    w = np.array([oriented[k][0] for k in keys], dtype=float)
    l = np.array([oriented[k][1] for k in keys], dtype=float)
    t = np.array([oriented[k][2] for k in keys], dtype=float)
    wr = metrics.win_rate(w, l, t) if keys else {"rate": [], "lo": [], "hi": [], "n": []}
    cells = {}
    for n, k in enumerate(keys):
        c = cached.get(k, {})
        cells[k] = {
            "x": k[0], "y": k[1], "wins": int(w[n]), "losses": int(l[n]), "ties": int(t[n]), "n": int(wr["n"][n]),
            "rate": float(wr["rate"][n]), "wilson": [float(wr["lo"][n]), float(wr["hi"][n])],
            "boot": c.get("boot"), "lc": c.get("lc"), "lc_ci": c.get("lc_ci"),
        }
    matrix = [{"policy": pols[x], "cells": _matrix_row_html(x, order, cells, judge, f)} for x in order]

    long_cols = [
        Column("policy", "Policy"), Column("opponent", "Opponent"), Column("wins", "Wins", "int"),
        Column("losses", "Losses", "int"), Column("ties", "Ties", "int"), Column("n", "n", "int"),
        Column("rate", "Win rate", "pct"), Column("wilson", "Wilson 95%", "ci"), Column("boot", "Bootstrap 95%", "ci"),
        Column("lc", "Length-controlled", "pct"), Column("lc_ci", "LC 95%", "ci"),
    ]
    long_rows = [
        {**c, "policy": pols[c["x"]].name, "opponent": pols[c["y"]].name}
        for c in sorted(cells.values(), key=lambda c: (-c["n"], pols[c["x"]].name, pols[c["y"]].name))
    ]
    long = Table("winrates", f"Win rates judged by {dict(choices)[judge]}", long_cols, long_rows,
                 note="Ties count half. Bootstrap and length-controlled (logistic regression on the length "
                      "ratio, predicted at 1.0) come from the worker's cached computation.", display_limit=200)

    # every pair, judged by every judge side by side (trivial judges included)
    judge_keys = [HUMANS] + sorted(k for k in counts if k != HUMANS) + list(TRIVIAL_KEYS)
    per_judge = {}
    for jk in judge_keys:
        if jk in TRIVIAL_KEYS:
            per_judge[jk] = {k: v["counts"] for k, v in _cached_pairs(res, jk).items()}
        else:
            per_judge[jk] = _oriented(counts.get(jk, {}))
    all_pairs = sorted({k for d in per_judge.values() for k in d if k[0] < k[1]})
    all_pols = selectors.policies({p for pair in all_pairs for p in pair})
    label = dict(choices)
    side_cols = [Column("policy", "Policy"), Column("opponent", "Opponent")] + [
        Column(jk.replace(":", "_"), label.get(jk, jk), "pct") for jk in judge_keys
    ] + [Column("n_humans", "Human labels", "int")]
    side_rows = []
    for x, y in all_pairs:
        row = {"policy": all_pols[x].name, "opponent": all_pols[y].name,
               "n_humans": sum(per_judge[HUMANS].get((x, y), [0, 0, 0]))}
        for jk in judge_keys:
            c = per_judge[jk].get((x, y))
            row[jk.replace(":", "_")] = None if not c or not sum(c) else (c[0] + 0.5 * c[2]) / sum(c)
        side_rows.append(row)
    side_rows.sort(key=lambda r: -r["n_humans"])
    side = Table("winrates_by_judge", "Win rate of policy over opponent, by every judge", side_cols, side_rows,
                 display_limit=200,
                 note="Trivial judges are shown beside the AI judges: an AI judge whose win rates track "
                      "the longer-summary judge may just be measuring length.")
    return {"tables": [long, side], "matrix": matrix, "order": [pols[p] for p in order], "judge": judge,
            "judges": choices, "state": state}


def _matrix_row_html(x: int, order: list[int], cells: dict, judge: str, f: Filters) -> str:
    """One row of the win-rate matrix as escaped HTML (2,500 cells at 50 policies: no template tags)."""
    from django.urls import reverse
    from django.utils.html import escape
    from django.utils.http import urlencode
    from django.utils.safestring import mark_safe

    from .templatetags.evaluation_tags import fmt

    base = reverse("evaluation:winrate_cell")
    extra = urlencode({"judge": judge, **f.query()})
    out = []
    for y in order:
        c = cells.get((x, y)) if x != y else "self"
        if c == "self":
            out.append('<td class="self">–</td>')
        elif c is None:
            out.append("<td></td>")
        else:
            css = "win" if c["wilson"][0] > 0.5 else "loss" if c["wilson"][1] < 0.5 else ""
            url = escape(f"{base}?x={x}&y={y}&{extra}")
            lc = f'<span class="sub">LC {fmt(c["lc"], "pct")}</span>' if c.get("lc") is not None else ""
            out.append(
                f'<td class="{css}" data-x="{x}" data-y="{y}" data-rate="{c["rate"]:.6f}">'
                f'<button hx-get="{url}" hx-target="#cell-detail">{fmt(c["rate"], "pct")}</button>'
                f'<span class="sub">{fmt(c["wilson"], "ci")} · n={c["n"]}</span>{lc}</td>'
            )
    return mark_safe("".join(out))


def leaderboard_page(f: Filters, auto_refresh: bool = True) -> dict:
    state = cache_state(f, auto_refresh)
    counts, configs = _live_judges(state.live)
    res = state.result
    choices = dict(judge_choices(configs))
    n_by_pol: dict[int, int] = {}
    for (pa, pb), c in counts[HUMANS].items():
        n_by_pol[pa] = n_by_pol.get(pa, 0) + sum(c)
        n_by_pol[pb] = n_by_pol.get(pb, 0) + sum(c)
    pol_ids = set(n_by_pol) | set((res or {}).get("policies", []))
    pols = selectors.policies(pol_ids)
    judge_keys = [HUMANS] + sorted(k for k in counts if k != HUMANS) + list(TRIVIAL_KEYS)
    ratings: dict[str, dict[int, tuple]] = {}
    for jk in judge_keys:
        bt = ((res or {}).get("judges", {}).get(jk) or {}).get("bt")
        if bt:
            ratings[jk] = {
                pid: (metrics.elo_scale(bt["theta"][i]).item(), metrics.elo_scale(bt["lo"][i]).item(),
                      metrics.elo_scale(bt["hi"][i]).item(), bt["games"][i], bt["group"][i])
                for i, pid in enumerate(res["policies"]) if bt["games"][i] > 0
            }
    cols = [Column("rank", "Rank", "int"), Column("policy", "Policy"), Column("kind", "Kind"),
            Column("group", "Group", "int"), Column("n_human", "Human labels", "int"), Column("rating", "Rating (humans)", "num"),
            Column("rating_ci", "Bootstrap 95%", "ci_num")]
    for jk in judge_keys[1:]:
        cols.append(Column("r_" + jk.replace(":", "_"), f"Rating: {choices.get(jk, jk)}", "num"))
    human = ratings.get(HUMANS, {})
    rows = []
    ordered = sorted(pol_ids, key=lambda p: -(human.get(p, (-1e9,))[0]))
    for rank, pid in enumerate(ordered, start=1):
        h = human.get(pid)
        row = {"rank": rank if h else None, "policy": pols[pid].name, "kind": pols[pid].get_kind_display(),
               "n_human": n_by_pol.get(pid, 0), "rating": h[0] if h else None,
               "group": (h[4] + 1) if h else None,
               "rating_ci": [h[1], h[2]] if h else None}
        for jk in judge_keys[1:]:
            r = ratings.get(jk, {}).get(pid)
            row["r_" + jk.replace(":", "_")] = r[0] if r else None
        rows.append(row)
    table = Table("leaderboard", "Bradley-Terry leaderboard", cols, rows,
                  note=f"Bradley-Terry maximum likelihood (ties half), Elo scale (400 = 10:1 odds, mean 1000); "
                       f"percentile intervals from {res['rounds'] if res else DEFAULT_ROUNDS} bootstrap rounds that "
                       "resample the pair-outcome counts. Ratings by each AI judge and by the two trivial judges "
                       "shown beside. Policies in different groups were never compared (directly or through "
                       "others): their ratings are not comparable across groups.")
    chart = [{"policy": r["policy"], "rating": r["rating"], "lo": r["rating_ci"][0], "hi": r["rating_ci"][1]}
             for r in rows if r["rating"] is not None]
    return {"tables": [table], "chart": chart, "state": state}


def annotators_page(f: Filters, auto_refresh: bool = True) -> dict:
    state = cache_state(f, auto_refresh)
    stats = sorted(({"who": k, **v} for k, v in state.live["annotators"].items()), key=lambda r: -r["n"])
    res = state.result or {}
    ann = res.get("agreement", {}).get("annotators", {})
    # which judges to show comes from the cached result (no second pass over the labels)
    cfg_keys = sorted(k for k in res.get("judges", {}) if k.startswith("config:"))
    configs = selectors.labeler_configs([int(k.split(":")[1]) for k in cfg_keys])
    judge_keys = [k for k in cfg_keys if int(k.split(":")[1]) in configs] + list(TRIVIAL_KEYS)
    label = {f"config:{c.pk}": f"AI: {c.name}" for c in configs.values()}
    label.update({k: metrics.TRIVIAL_JUDGES[k.split(":")[1]] for k in TRIVIAL_KEYS})
    cols = [Column("annotator", "Annotator"), Column("n", "Labels", "int"), Column("mean_s", "Seconds per label", "num"),
            Column("per_hour", "Labels per hour", "num"), Column("gold_n", "Gold labels", "int"),
            Column("gold_acc", "Gold accuracy", "pct"), Column("majority", "Agrees with others' majority", "pct"),
            Column("majority_ci", "95% CI", "ci")]
    cols += [Column("j_" + jk.replace(":", "_"), f"Agrees with {label[jk]}", "pct") for jk in judge_keys]
    rows = []
    for s in stats:
        a = ann.get(str(s["who"]), {})
        row = {
            "annotator": s["who"], "n": s["n"], "mean_s": s["total_s"] / s["n_timed"] if s["n_timed"] else None,
            "per_hour": 3600.0 * s["n"] / s["total_s"] if s["total_s"] else None,
            "gold_n": s["n_gold"], "gold_acc": (s["gold_ok"] / s["n_gold"]) if s["n_gold"] else None,
            "majority": _pct(a.get("majority")), "majority_ci": _ci(a.get("majority")),
        }
        for jk in judge_keys:
            row["j_" + jk.replace(":", "_")] = _pct(a.get("judges", {}).get(jk))
        rows.append(row)
    main = Table("annotators", "Annotators", cols, rows,
                 note="Majority: the other annotators' majority on the same comparison (ties and lone labels "
                      "left out). Throughput from the time each label took.")
    ag = res.get("agreement", {})
    hh = res.get("human_human")
    summary = Table("agreement", "Inter-annotator agreement", [
        Column("measure", "Measure"), Column("value", "Value", "num3"), Column("detail", "Detail")], [
        {"measure": "Pairwise agreement (humans)", "value": _pct(hh),
         "detail": f"{int(hh['n'])} label pairs" if hh else ""},
        {"measure": "Krippendorff's alpha (nominal)", "value": ag.get("alpha"), "detail": "all labels"},
        {"measure": "Cohen's kappa, mean over annotator pairs", "value": ag.get("kappa_mean"),
         "detail": f"{ag.get('kappa_pairs', 0)} pairs with 5+ shared comparisons"},
    ])
    return {"tables": [main, summary], "state": state}


PAGES = {
    "alignment": alignment_page,
    "winrates": winrate_page,
    "leaderboard": leaderboard_page,
    "annotators": annotators_page,
}


def export_table(f: Filters, page: str, table: str, **kwargs) -> Table:
    if page not in PAGES:
        raise KeyError(page)
    data = PAGES[page](f, **kwargs)
    for t in data["tables"]:
        if t.name == table:
            return t
    raise KeyError(table)
