"""Data of the hybrid-labeling pages (no HTML): calibration of each labeler config beside the trivial
judges (alignment page section), and the routing dashboard's simulated budgets and reward-model
comparisons. Reads only; the numbers come from `calibration.py` and `routing.py` (numpy)."""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass

import numpy as np

from labeling.formats import SafeDictWriter
from labeling.judges import trust
from labeling.models import Comparison, Dataset, HumanLabel, LabelerConfig
from labeling.selectors.trust import config_signals

from . import calibration, metrics, routing, selectors
from .models import RoutingReport
from .selectors import Filters

TRIVIAL = ("longer", "overlap")


def _num(x):
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


# --- calibration (alignment page) ------------------------------------------------------------------


def calibration_data(f: Filters, n_bins: int = calibration.DEFAULT_BINS) -> dict:
    """One row per labeler config and trivial judge: n, alignment, mean confidence, ECE, Brier, and
    the reliability bins; on the comparisons with a human majority under the filters."""
    h = selectors.human_rows(f)
    hv = metrics.human_majority(h["cid"], h["choice"], h["confidence"])
    ai = selectors.ai_rows(f)
    configs = selectors.labeler_configs(set(ai["config"].tolist()))
    rows = []
    for cid, cfg in sorted(configs.items(), key=lambda kv: kv[1].name):
        m = ai["config"] == cid
        p, items = ai["p_a"][m], ai["cid"][m]
        pos = np.clip(np.searchsorted(hv.item, items), 0, max(len(hv.item) - 1, 0))
        found = (hv.item[pos] == items) if len(hv.item) else np.zeros(len(items), bool)
        s = calibration.calibration_summary(p[found], hv.score[pos[found]], n_bins)
        rows.append({"judge": cfg.name + (" (noise model)" if cfg.is_noise else ""), "kind": "AI labeler", **s})
    decided = hv.item[hv.score != 0.5]
    if len(decided):
        comp = selectors.comparison_rows(decided, with_texts=True)
        judges = metrics.trivial_judges(comp["source"], comp["text_a"], comp["text_b"])
        scores = hv.score[np.searchsorted(hv.item, comp["cid"])]
        for name in TRIVIAL:
            s = calibration.calibration_summary(judges[name], scores, n_bins)
            rows.append({"judge": metrics.TRIVIAL_JUDGES[name], "kind": "trivial baseline", **s})
    for r in rows:
        r["overconfidence"] = (r["mean_confidence"] - r["alignment"]) if r["n"] else None
    return {"rows": rows, "n_bins": n_bins, "n_human_pairs": int((hv.score != 0.5).sum())}


CALIBRATION_COLUMNS = ["judge", "kind", "n", "alignment", "mean_confidence", "overconfidence", "ece", "brier"]


def calibration_table_rows(data: dict) -> list[dict]:
    """Flat rows for CSV/JSON: the summary columns plus one agreement/count column per bin."""
    out = []
    for r in data["rows"]:
        row = {k: r[k] for k in CALIBRATION_COLUMNS}
        for b in r["bins"]:
            tag = f"{b['lo']:.2f}-{b['hi']:.2f}"
            row[f"bin_{tag}_n"], row[f"bin_{tag}_agreement"] = b["n"], b["agreement"]
            row[f"bin_{tag}_confidence"] = b["mean_confidence"]
        out.append(row)
    return out


# --- routing dashboard -----------------------------------------------------------------------------


@dataclass
class RoutingInput:
    dataset: Dataset
    config: LabelerConfig
    criterion: str
    n_comparisons: int
    n_human: int  # comparisons with at least one human label
    n_used: int  # with a human majority and a usable AI label
    sim: routing.Simulation | None


def routing_input(*, dataset: Dataset, config: LabelerConfig, criterion: str = "margin",
                  weights: trust.Weights | None = None) -> RoutingInput:
    """The simulation on the dataset's comparisons that have a human majority and a usable AI label."""
    n_comp = Comparison.objects.filter(post__dataset=dataset).count()
    votes = list(HumanLabel.objects.filter(comparison__post__dataset=dataset).values_list("comparison_id", "choice"))
    hv = metrics.human_majority([v[0] for v in votes], [v[1] for v in votes]) if votes else None
    sig = config_signals(config=config, dataset=dataset)
    cids, p, h, r = [], [], [], []
    if hv is not None:
        for item, score in zip(hv.item.tolist(), hv.score.tolist()):
            label, s = sig.get(item, (None, None))
            if score == 0.5 or s is None or s.p_a is None:
                continue
            cids.append(item)
            p.append(s.p_a)
            h.append(score)
            r.append(trust.risk(s, criterion, weights))
    sim = routing.simulate(p, h, r) if cids else None
    return RoutingInput(dataset, config, criterion, n_comp, 0 if hv is None else len(hv.item), len(cids), sim)


def routing_points(ri: RoutingInput, step: float = 0.05) -> list[dict]:
    return ri.sim.points(routing.budget_fractions(step)) if ri.sim else []


def routing_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        w = SafeDictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


def routing_json(ri: RoutingInput, rows: list[dict], reference_budget: float = 0.5) -> str:
    return json.dumps({
        "dataset": ri.dataset.name, "config": ri.config.name, "criterion": ri.criterion,
        "n_comparisons": ri.n_comparisons, "n_with_human_labels": ri.n_human, "n_used": ri.n_used,
        "headline": routing.headline(ri.sim, reference_budget) if ri.sim else None,
        "interval": "uncertainty/oracle: 95% Wilson interval of the agreement share; random: exact expectation "
                    "with the 95% range of single random draws (hypergeometric)",
        "points": rows,
    }, indent=2)


def report_rows(*, dataset: Dataset | None = None, config: LabelerConfig | None = None) -> list[dict]:
    """The reward-model comparisons launched by `routing_report`, newest first, with their accuracies."""
    qs = RoutingReport.objects.select_related("dataset", "config", "hybrid_run", "human_run", "ai_run")
    if dataset is not None:
        qs = qs.filter(dataset=dataset)
    if config is not None:
        qs = qs.filter(config=config)
    out = []
    for rep in qs.order_by("-created_at")[:20]:
        runs = []
        for source, run in (("hybrid", rep.hybrid_run), ("human only", rep.human_run), ("AI only", rep.ai_run)):
            summary = (run.summary or {}) if run else {}
            runs.append({
                "source": source, "run": run, "status": run.get_status_display() if run else "deleted",
                "accuracy": _num(summary.get("rm_accuracy")), "eval_pairs": summary.get("eval_pairs"),
                "train_pairs": summary.get("train_pairs"),
            })
        out.append({"report": rep, "runs": runs})
    return out
