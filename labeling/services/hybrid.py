"""Export of the "hybrid" label source: the human vote where a pair has human labels, the AI soft
label of one config elsewhere, one row per comparison with its provenance
(`labeling.selectors.trust.hybrid_labels`)."""
from __future__ import annotations

import json
from typing import TextIO

from .. import formats
from ..models import Campaign, Comparison, Dataset, LabelerConfig
from ..selectors.trust import campaign_comparison_ids, hybrid_labels
from .imports import _completion, _prompt

HYBRID_CSV_COLUMNS = [
    "provenance", "comparison_id", "dataset", "post_id", "post_external_id", "subreddit", "title", "post",
    "summary_a_id", "summary_b_id", "policy_a", "policy_b", "summary_a", "summary_b", "choice", "preferred",
    "p_a", "n_human", "human_label_ids", "ai_label_id", "labeler",
]


def hybrid_preferences_export(*, out: TextIO, fmt: str, labeler_config: str, dataset: str | None = None,
                              human_campaign: str | None = None) -> tuple[int, int]:
    """Write the hybrid label set; returns (pairs from humans, pairs from the AI).

    trl: prompt/chosen/rejected with ``p_chosen`` (the humans' vote share or the AI soft label),
    ``provenance`` ("human" or "ai"), ``n_human`` and ``labeler``. csv: one row per comparison.
    `human_campaign` takes human labels only on that campaign's pairs (e.g. a routed campaign).
    Raises ValueError naming the option at fault.
    """
    if fmt not in ("trl", "csv"):
        raise ValueError(f"unknown export format {fmt!r} (trl or csv)")
    if not labeler_config:
        raise ValueError("the hybrid source needs --labeler-config (its AI labels fill the pairs humans did not label)")
    config = LabelerConfig.objects.filter(name=labeler_config).first()
    if config is None:
        raise ValueError(f"no labeler config named {labeler_config!r}")
    datasets = Dataset.objects.order_by("name")
    if dataset:
        datasets = datasets.filter(name=dataset)
        if not datasets.exists():
            raise ValueError(f"no dataset named {dataset!r}")
    human_ids = None
    if human_campaign:
        campaign = Campaign.objects.filter(name=human_campaign).first()
        if campaign is None:
            raise ValueError(f"no campaign named {human_campaign!r}")
        human_ids = campaign_comparison_ids(campaign)
    writer = formats.SafeDictWriter(out, fieldnames=HYBRID_CSV_COLUMNS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    counts = {"human": 0, "ai": 0}
    for ds in datasets:
        rows = hybrid_labels(dataset=ds, config=config, human_comparison_ids=human_ids)
        related = {c.pk: c for c in Comparison.objects.filter(pk__in=[r.comparison_id for r in rows]).select_related(
            "post__dataset", "summary_a__policy", "summary_b__policy")}
        for r in rows:
            c = related[r.comparison_id]
            post, a, b = c.post, c.summary_a, c.summary_b
            choice = 0 if r.p_a >= 0.5 else 1
            labeler = config.name if r.source == "ai" else ""
            if writer:
                writer.writerow({
                    "provenance": r.source, "comparison_id": c.pk, "dataset": ds.name, "post_id": post.pk,
                    "post_external_id": post.external_id, "subreddit": post.subreddit, "title": post.title,
                    "post": post.text, "summary_a_id": a.pk, "summary_b_id": b.pk, "policy_a": a.policy.name,
                    "policy_b": b.policy.name, "summary_a": a.text, "summary_b": b.text, "choice": choice,
                    "preferred": "AB"[choice], "p_a": r.p_a, "n_human": r.n_human,
                    "human_label_ids": " ".join(map(str, r.human_label_ids)),
                    "ai_label_id": "" if r.ai_label_id is None else r.ai_label_id, "labeler": labeler,
                })
            else:
                chosen, rejected = (a, b) if choice == 0 else (b, a)
                out.write(json.dumps({
                    "prompt": _prompt(post), "chosen": _completion(post, chosen.text),
                    "rejected": _completion(post, rejected.text), "id": f"hybrid-{c.pk}",
                    "provenance": r.source, "p_chosen": r.p_a if choice == 0 else 1.0 - r.p_a,
                    "n_human": r.n_human, "labeler": labeler,
                }, ensure_ascii=False) + "\n")
            counts[r.source] += 1
    return counts["human"], counts["ai"]
