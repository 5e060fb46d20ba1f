"""Exports of preference labels, as TRL preference JSONL or CSV (reads: nothing is written to the database).

`preferences_export` writes human or AI labels, one row per label. `hybrid_preferences_export`
writes the "hybrid" label source: the human vote where a pair has human labels, the AI soft
label of one config elsewhere, one row per comparison with its provenance
(`labeling.selectors.trust.hybrid_labels`)."""
from __future__ import annotations

import json
from typing import TextIO

from django.db.models import QuerySet

from .. import formats, importers
from ..models import AILabel, Campaign, Comparison, Dataset, HumanLabel, LabelerConfig, Post, TaskKind
from .trust import campaign_comparison_ids, hybrid_labels

CSV_COLUMNS = [
    "source", "label_id", "dataset", "post_id", "post_external_id", "subreddit", "title", "post",
    "comparison_id", "summary_a_id", "summary_b_id", "policy_a", "policy_b", "summary_a", "summary_b",
    "choice", "preferred", "confidence", "p_a", "a_shown_first", "annotator", "time_taken_s", "created_at",
]


def _prompt(post: Post) -> str:
    if post.dataset.task == TaskKind.SUMMARIZATION:
        return importers.format_tldr_prompt(post.subreddit, post.title, post.text)
    return post.text


def _completion(post: Post, text: str) -> str:
    # TL;DR completions follow "TL;DR:" after one space (the trainer's convention).
    return " " + text if post.dataset.task == TaskKind.SUMMARIZATION else text


def _labels(*, source: str, dataset: str | None, labeler_config: str | None) -> QuerySet:
    """The labels to export, oldest first; ValueError names an unknown source, config or dataset."""
    if source not in ("human", "ai"):
        raise ValueError(f"unknown source {source!r} (human or ai)")
    related = ["comparison__post__dataset", "comparison__summary_a__policy", "comparison__summary_b__policy"]
    if source == "human":
        qs = HumanLabel.objects.select_related(*related, "annotator")
    else:
        qs = AILabel.objects.select_related(*related, "config").filter(p_a__isnull=False)
        if labeler_config:
            if not LabelerConfig.objects.filter(name=labeler_config).exists():
                raise ValueError(f"no labeler config named {labeler_config!r}")
            qs = qs.filter(config__name=labeler_config)
    if dataset:
        if not Dataset.objects.filter(name=dataset).exists():
            raise ValueError(f"no dataset named {dataset!r}")
        qs = qs.filter(comparison__post__dataset__name=dataset)
    return qs.order_by("pk")


def _verdict(label, source: str) -> tuple[int, int | None, float | None, str]:
    """(choice, confidence, p_a, who) of a human or AI label."""
    if source == "human":
        return label.choice, label.confidence, None, label.who
    return (0 if label.p_a >= 0.5 else 1), None, label.p_a, label.config.name


def _csv_row(label, source: str) -> dict:
    c = label.comparison
    post, a, b = c.post, c.summary_a, c.summary_b
    choice, confidence, p_a, who = _verdict(label, source)
    return {
        "source": source, "label_id": label.pk, "dataset": post.dataset.name, "post_id": post.pk,
        "post_external_id": post.external_id, "subreddit": post.subreddit, "title": post.title,
        "post": post.text, "comparison_id": c.pk, "summary_a_id": a.pk, "summary_b_id": b.pk,
        "policy_a": a.policy.name, "policy_b": b.policy.name, "summary_a": a.text, "summary_b": b.text,
        "choice": choice, "preferred": "AB"[choice], "confidence": "" if confidence is None else confidence,
        "p_a": "" if p_a is None else p_a,
        "a_shown_first": "" if getattr(label, "a_shown_first", None) is None else int(label.a_shown_first),
        "annotator": who, "time_taken_s": "" if getattr(label, "time_taken_s", None) is None
        else label.time_taken_s, "created_at": label.created_at.isoformat(),
    }


def _trl_row(label, source: str) -> dict:
    c = label.comparison
    post, a, b = c.post, c.summary_a, c.summary_b
    choice, confidence, p_a, who = _verdict(label, source)
    chosen, rejected = (a, b) if choice == 0 else (b, a)
    row = {"prompt": _prompt(post), "chosen": _completion(post, chosen.text),
           "rejected": _completion(post, rejected.text)}
    if source == "human":
        key = label.import_key.split(":", 1)[1] if label.import_key and ":" in label.import_key else None
        row["id"] = key or f"label-{label.pk}"
        row["worker"] = who
        if confidence is not None:  # re-expressed with chosen first: 1 = surely chosen
            row["confidence"] = confidence if choice == 0 else 10 - confidence
    else:
        row["id"] = f"ai-{label.config.name}-{label.pk}"
        row["labeler"] = who
        row["p_chosen"] = p_a if choice == 0 else 1.0 - p_a
    return row


def preferences_export(
    *, out: TextIO, fmt: str, dataset: str | None = None, source: str = "human",
    labeler_config: str | None = None,
) -> int:
    """Write labels to `out`; returns the number of rows.

    trl: one JSON object per line with ``prompt``, ``chosen``, ``rejected`` (TL;DR prompts in
    the trainer's format, completions with a leading space), ``id`` and, for human labels,
    ``worker`` and ``confidence`` (OpenAI's 9-point scale with chosen as the first summary); for
    AI labels ``labeler`` and the soft label ``p_chosen`` (from AILabel.p_a). Importing the file
    as `trl` gives back the same preferences.
    csv: one row per label with ids, policies, texts, choice (0 = canonical A), confidence, p_a
    and annotator.
    """
    if fmt not in ("trl", "csv"):
        raise ValueError(f"unknown export format {fmt!r} (trl or csv)")
    labels = _labels(source=source, dataset=dataset, labeler_config=labeler_config)
    writer = formats.SafeDictWriter(out, fieldnames=CSV_COLUMNS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    n = 0
    for label in labels.iterator(chunk_size=2000):
        if writer:
            writer.writerow(_csv_row(label, source))
        else:
            out.write(json.dumps(_trl_row(label, source), ensure_ascii=False) + "\n")
        n += 1
    return n


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
