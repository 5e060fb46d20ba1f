"""The report of an experiment (`experiments.py`): every figure beside the paper's and the trivial judges'.

Built once, when the experiment's last step runs, from the jobs' and runs' own rows:

- labelers (Tables 2 and 4): alignment with the human majority (all and high-confidence), position
  bias and its side, on the comparisons each config labelled, beside both trivial judges there;
- reward models (Table 3): held-out accuracy of the RLHF and RLAIF reward models beside both
  trivial judges on the same held-out human labels;
- policies (Table 1): win rates head to head, raw and length-controlled, judged by the AI labeler,
  by the RLHF reward model and by the trivial judges; SFT loss before and after on held-out
  references; a few sampled summaries of each policy beside the reference for the same posts.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from labeling import formats
from labeling.importers import REFERENCE_POLICY
from labeling.models import AILabel, Comparison, HumanLabel, LabelerConfig, Summary
from training.models import TrainingRun
from training.selectors import artifact_abspath, post_is_held_out

from . import experiment_plan as plan_mod
from . import metrics, paper
from .models import Experiment

WIN_PAIRS = (("rlhf", "sft"), ("rlaif", "sft"), ("direct", "sft"), ("rlaif", "rlhf"), ("direct", "rlaif"))


def _pct(x) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else round(100 * float(x), 1)


def _share(s: metrics.Share) -> dict:
    return {"value": _pct(s.value), "lo": _pct(s.lo), "hi": _pct(s.hi), "n": int(s.n)}


def _job_comparisons(exp: Experiment, step: str) -> list[int]:
    from labeling.models import AILabelingJob

    ref = exp.steps.get(step)
    if not ref:
        return []
    return list(AILabelingJob.objects.get(pk=ref["id"]).comparisons.order_by("pk").values_list("pk", flat=True))


def _humans(ids: Sequence[int]) -> metrics.HumanVerdicts:
    rows = list(HumanLabel.objects.filter(comparison_id__in=ids).values_list("comparison_id", "choice", "confidence"))
    if not rows:
        return metrics.human_majority(np.array([], dtype=int), np.array([]))
    item, choice, conf = zip(*rows)
    return metrics.human_majority(np.array(item), np.array(choice, dtype=float),
                                  np.array([np.nan if c is None else c for c in conf], dtype=float))


def config_alignment(exp: Experiment, config_name: str) -> dict:
    """Alignment, position bias and the trivial judges on the comparisons one config labelled."""
    config = LabelerConfig.objects.get(name=config_name)
    ids = _job_comparisons(exp, f"label:{config_name}")
    labels = list(AILabel.objects.filter(config=config, comparison_id__in=ids, p_a__isnull=False)
                  .order_by("comparison_id").values_list("comparison_id", "p_a", "p_a_ab", "p_a_ba"))
    human = _humans(ids)
    row = {"config": config_name, "labelled": len(labels), "asked": len(ids),
           "paper_alignment": paper.table2_lookup(config.preamble, config.chain_of_thought, config.shots),
           "label": paper.table2_label(config.preamble, config.chain_of_thought, config.shots)}
    if not labels:
        return {**row, "alignment": None}
    item, p_a, ab, ba = (np.array(x, dtype=float) for x in zip(*labels))
    aligned = metrics.alignment(p_a, human, judge_items=item.astype(int))
    bias = metrics.position_bias(ab, ba)
    comps = Comparison.objects.select_related("post", "summary_a", "summary_b").in_bulk(item.astype(int).tolist())
    cs = [comps[int(i)] for i in item]
    trivial = metrics.trivial_judges([formats.overlap_source(c.post.title, c.post.text) for c in cs],
                                     [c.summary_a.text for c in cs], [c.summary_b.text for c in cs])
    row.update(alignment=_pct(aligned["all"].value), alignment_ci=_share(aligned["all"]),
               high_confidence=_share(aligned["high_confidence"]), position_bias=_share(bias["biased"]),
               first_of_biased=_pct(bias["first_of_biased"]),
               trivial={name: _share(metrics.alignment(p, human, judge_items=item.astype(int))["all"])
                        for name, p in trivial.items()})
    return row


def _run(exp: Experiment, step: str) -> TrainingRun | None:
    ref = exp.steps.get(step)
    return TrainingRun.objects.get(pk=ref["id"]) if ref else None


def reward_rows(exp: Experiment) -> list[dict]:
    out = []
    for step, source in (("rm:human", "human"), ("rm:ai", "ai")):
        run = _run(exp, step)
        if run is None:
            continue
        s = run.summary or {}
        out.append({"reward_model": f"RM from {source} labels", "run": run.pk, "train_pairs": s.get("train_pairs"),
                    "labeler_config": run.labeler_config.name if run.labeler_config_id else None,
                    "eval_pairs": s.get("eval_pairs"), "eval_pairs_high_confidence": s.get("eval_pairs_high_confidence"),
                    "accuracy": _pct(s.get("rm_accuracy")), "accuracy_high_confidence": _pct(s.get("rm_accuracy_high_confidence")),
                    "longer": _pct(s.get("longer_baseline_accuracy")), "overlap": _pct(s.get("overlap_baseline_accuracy")),
                    "paper": plan_mod.PAPER_RM_ACCURACY[source]})
    return out


def _policy_of(exp: Experiment, summary: Summary) -> str:
    return summary.policy.name.removeprefix(f"exp{exp.pk}-")


def _rm_scorer(exp: Experiment):
    run = _run(exp, "rm:human")
    artifact = run.artifacts.order_by("pk").first() if run else None
    if artifact is None:
        return None
    from training.ml.reward import RewardScorer

    return RewardScorer(str(artifact_abspath(artifact)), max_length=512)


def _judge_scores(exp: Experiment, plan: plan_mod.Preset, comps: list[Comparison], x_first: np.ndarray) -> dict:
    """Score of X (1 win, 0 loss, 0.5 tie) per comparison under each judge."""
    ai = dict(AILabel.objects.filter(config__name=plan.judge_config, comparison__in=comps, p_a__isnull=False)
              .values_list("comparison_id", "p_a"))
    p_a = np.array([ai.get(c.pk, np.nan) for c in comps], dtype=float)
    scores = {f"AI labeler ({plan.judge_config})": np.where(x_first, p_a, 1 - p_a)}
    scorer = _rm_scorer(exp)
    if scorer is not None:
        recs = [{"subreddit": c.post.subreddit, "title": c.post.title, "post": c.post.text} for c in comps]
        ra = np.array(scorer(recs, [c.summary_a.text for c in comps]))
        rb = np.array(scorer(recs, [c.summary_b.text for c in comps]))
        scores["RLHF reward model"] = np.where(x_first, ra - rb, rb - ra)
    trivial = metrics.trivial_judges([formats.overlap_source(c.post.title, c.post.text) for c in comps],
                                     [c.summary_a.text for c in comps], [c.summary_b.text for c in comps])
    for name, p in trivial.items():
        scores[f"trivial: {name}"] = np.where(x_first, p, 1 - p)
    # Every judge's score for X as a verdict: 1 (X preferred), 0 (Y) or 0.5 (a tie); the reward
    # model's margin r(X) - r(Y) is turned into a preference the same way.
    return {k: metrics.verdict(0.5 + np.sign(v) / 2 if k == "RLHF reward model" else v) for k, v in scores.items()}


def win_rows(exp: Experiment, plan: plan_mod.Preset) -> list[dict]:
    from .experiments import policies, policy_comparisons

    comps = list(policy_comparisons(exp, plan).select_related("post", "summary_a__policy", "summary_b__policy"))
    have = set(policies(plan))
    out = []
    for x, y in WIN_PAIRS:
        if not {x, y} <= have:
            continue
        cell = [c for c in comps if {_policy_of(exp, c.summary_a), _policy_of(exp, c.summary_b)} == {x, y}]
        if not cell:
            continue
        x_first = np.array([_policy_of(exp, c.summary_a) == x for c in cell])
        len_x = np.array([len((c.summary_a if f else c.summary_b).text) for c, f in zip(cell, x_first)], dtype=float)
        len_y = np.array([len((c.summary_b if f else c.summary_a).text) for c, f in zip(cell, x_first)], dtype=float)
        paper_raw, paper_lc = plan_mod.PAPER_WIN_RATES.get((x, y), (None, None))
        for judge, score in _judge_scores(exp, plan, cell, x_first).items():
            ok = np.isfinite(score)
            s = score[ok]
            wr = metrics.win_rate((s == 1).sum(), (s == 0).sum(), (s == 0.5).sum())
            lc = metrics.length_controlled_win_rate(s, len_x[ok], len_y[ok]) if ok.sum() >= 2 else {"rate": np.nan}
            out.append({"x": x, "y": y, "judge": judge, "n": int(ok.sum()), "win_rate": _pct(float(wr["rate"])),
                        "lo": _pct(float(wr["lo"])), "hi": _pct(float(wr["hi"])),
                        "length_controlled": _pct(lc["rate"]), "paper": paper_raw, "paper_length_corrected": paper_lc,
                        "mean_length_x": round(float(len_x.mean()), 1), "mean_length_y": round(float(len_y.mean()), 1)})
    return out


def sample_rows(exp: Experiment, plan: plan_mod.Preset) -> list[dict]:
    """Held-out posts that every policy summarized (those with a reference first), with the reference."""
    from .experiments import policies, policy_name

    names = {policy_name(exp, p): p for p in policies(plan)}
    by_post: dict[int, dict] = {}
    for s in Summary.objects.filter(policy__name__in=list(names)).select_related("post", "policy").order_by("post_id"):
        by_post.setdefault(s.post_id, {"post": s.post})[names[s.policy.name]] = s.text
    rows = []
    for post_id, row in by_post.items():
        if len(row) - 1 < len(names):
            continue
        # The reference: an SFT reference summary, else the human-written TL;DR a comparison carries.
        ref = (Summary.objects.filter(post_id=post_id, is_reference=True).values_list("text", flat=True).first()
               or Summary.objects.filter(post_id=post_id, policy__name=REFERENCE_POLICY)
               .values_list("text", flat=True).first())
        post = row.pop("post")
        rows.append({"post_id": post_id, "title": post.title, "post": post.text[:600], "reference": ref, **row})
    rows.sort(key=lambda r: r["reference"] is None)  # posts with a reference first, else id order
    return rows[: plan.n_show]


def sft_loss(exp: Experiment, plan: plan_mod.Preset, n_posts: int = 16) -> dict:
    """Mean token loss of the reference summaries of held-out posts, before (base) and after SFT."""
    from training.ml import sft
    from training.models import ModelArtifact

    run = _run(exp, "sft")
    if run is None or not run.artifacts.exists():
        return {}
    refs = [s for s in Summary.objects.filter(post__dataset__name=plan.dataset, is_reference=True)
            .select_related("post").order_by("post_id")[:4000]
            if post_is_held_out(s.post.content_sha256, plan.eval_fraction)][:n_posts]
    examples = [{"subreddit": s.post.subreddit, "title": s.post.title, "post": s.post.text, "summary": s.text}
                for s in refs]
    config = sft.SFTConfig(**{k: v for k, v in plan.sft_params.items() if k in ("max_length", "max_summary_tokens")})
    base = ModelArtifact.objects.get(name=plan.policy_base)
    after = run.artifacts.order_by("pk").first()
    logged = [m["loss"] for m in run.metrics or [] if "loss" in m]
    return {"held_out_references": len(examples),
            "before": round(sft.reference_loss(str(artifact_abspath(base)), examples, config), 4),
            "after": round(sft.reference_loss(str(artifact_abspath(after)), examples, config), 4),
            "train_loss_first_step": logged[0] if logged else None, "train_loss_last_step": logged[-1] if logged else None}


def _step_seconds(exp: Experiment) -> list[list]:
    """[step, wall seconds] of each finished step, in the order the steps run (a list: a JSON
    object's keys lose their order in PostgreSQL's jsonb)."""
    from .experiments import step_names

    order = step_names(plan_mod.preset_get(exp.preset))
    return [[k, exp.steps[k].get("seconds")] for k in order if k in exp.steps and "seconds" in exp.steps[k]]


def experiment_report_build(exp: Experiment) -> dict:
    plan = plan_mod.preset_get(exp.preset)
    return {
        "preset": plan.name, "sizes": exp.sizes,
        "labelers": [config_alignment(exp, c) for c in plan.labeler_configs],
        "paper_position_bias": plan_mod.PAPER_POSITION_BIAS,
        "human_agreement_paper": paper.HUMAN_AGREEMENT_RANGE,
        "reward_models": reward_rows(exp),
        "sft_loss": sft_loss(exp, plan),
        "win_rates": win_rows(exp, plan),
        "samples": sample_rows(exp, plan),
        "step_seconds": _step_seconds(exp),
    }


def _ci(d: dict | None) -> str:
    if not d or d.get("value") is None:
        return "–"
    return f"{d['value']:.1f} [{d['lo']:.1f}, {d['hi']:.1f}] n={d['n']}"


def _num(x) -> str:
    return "–" if x is None else (f"{x:.1f}" if isinstance(x, float) else str(x))


def _pairs(value) -> list:
    """[key, value] pairs from a list of pairs (or from a mapping, as the first reports stored)."""
    return list(value.items()) if isinstance(value, dict) else list(value or [])


def report_tables(report: dict) -> list[dict]:
    """The report as tables ({title, note, headers, rows} of strings), for the page and the shell."""
    labelers = {"title": "(a) AI labelers: alignment with humans and position bias (paper: Tables 2 and 4), %",
                "note": "Trivial judges on the same comparisons. Paper position bias: "
                        + ", ".join(f"{k} {v}" for k, v in report.get("paper_position_bias", {}).items())
                        + "; humans agree with each other 73-77.",
                "headers": ["config", "labelled", "alignment [95% CI]", "high-confidence", "position bias",
                            "1st of biased", "longer judge", "overlap judge", "paper"], "rows": []}
    for r in report.get("labelers", []):
        t = r.get("trivial") or {}
        labelers["rows"].append([r["config"], f"{r['labelled']}/{r['asked']}", _ci(r.get("alignment_ci")),
                                 _ci(r.get("high_confidence")), _ci(r.get("position_bias")),
                                 _num(r.get("first_of_biased")), _ci(t.get("longer")), _ci(t.get("overlap")),
                                 f"{_num(r.get('paper_alignment'))} ({r['label']})"])
    rms = {"title": "(b) Reward models: accuracy on held-out human labels (by post), %",
           "note": "Trivial judges on the same held-out labels. Paper (PaLM 2 XS RMs, full data): human 79.3, AI 74.2.",
           "headers": ["reward model", "train pairs", "held-out pairs", "accuracy", "high-confidence",
                       "longer judge", "overlap judge", "paper"],
           "rows": [[r["reward_model"] + (f" ({r['labeler_config']})" if r.get("labeler_config") else ""),
                     _num(r["train_pairs"]), f"{_num(r['eval_pairs'])} ({_num(r['eval_pairs_high_confidence'])} high)",
                     _num(r["accuracy"]), _num(r["accuracy_high_confidence"]), _num(r["longer"]), _num(r["overlap"]),
                     _num(r["paper"])] for r in report.get("reward_models", [])]}
    wins = {"title": "(c) Policies head to head on held-out posts: win rate of X over Y, % (paper: Table 1, human judges)",
            "note": "Length-controlled: logistic regression on the length ratio, predicted at 1.0 (– where not identified).",
            "headers": ["X vs Y", "judge", "n", "win rate [95% CI]", "length-controlled", "mean chars X / Y",
                        "paper (raw / length-corrected)"],
            "rows": [[f"{r['x']} vs {r['y']}", r["judge"], str(r["n"]),
                      "–" if r["win_rate"] is None else f"{r['win_rate']:.1f} [{_num(r['lo'])}, {_num(r['hi'])}]",
                      _num(r["length_controlled"]), f"{r['mean_length_x']:.0f} / {r['mean_length_y']:.0f}",
                      f"{_num(r['paper'])} / {_num(r['paper_length_corrected'])}"] for r in report.get("win_rates", [])]}
    loss = report.get("sft_loss") or {}
    sft = {"title": "SFT: mean token loss of held-out reference summaries", "note": "",
           "headers": ["held-out references", "before (base model)", "after SFT", "train loss first / last step"],
           "rows": [[_num(loss.get("held_out_references")), _num(loss.get("before")), _num(loss.get("after")),
                     f"{_num(loss.get('train_loss_first_step'))} / {_num(loss.get('train_loss_last_step'))}"]] if loss else []}
    steps = {"title": "Wall time of each step, s", "note": "", "headers": ["step", "seconds"],
             "rows": [[k, _num(v)] for k, v in _pairs(report.get("step_seconds"))]}
    return [labelers, rms, sft, wins, steps]


def report_text(report: dict) -> str:
    """Plain-text tables (the shell's view of the report page)."""
    out = []
    for t in report_tables(report):
        rows = [t["headers"]] + t["rows"]
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(t["headers"]))]
        out.append(t["title"])
        for k, r in enumerate(rows):
            out.append("  " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)))
            if k == 0:
                out.append("  " + "-+-".join("-" * w for w in widths))
        if t["note"]:
            out.append("  " + t["note"])
        out.append("")
    for s in report.get("samples", []):
        out.append(f"Post {s['post_id']}: {s['title']}")
        for key in ("reference", "sft", "rlhf", "rlaif", "direct"):
            if key in s:
                out.append(f"  {key:9s} {s[key]!r}")
        out.append("")
    return "\n".join(out)
