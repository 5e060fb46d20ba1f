"""Reads of the training app: runs, artifacts, and the training data built from the labels.

The data builders return plain dicts in the shapes `training.ml` takes, so the ML code never sees
a model instance. Held-out data is split by post: a post's place is fixed by its content digest,
so the same post is always on the same side, whatever run or dataset import order.
"""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db.models import QuerySet

from labeling import formats
from labeling.models import AILabel, Dataset, HumanLabel, Post, Summary, TaskKind
from .models import ModelArtifact, RunKind, TrainingRun


def post_is_held_out(content_sha256: str, eval_fraction: float) -> bool:
    """Deterministic split by post: the first 8 hex digits of its digest as a number in [0, 1)."""
    return int(content_sha256[:8], 16) / 16**8 < eval_fraction


def _post_fields(post: Post) -> dict:
    return {"post_id": post.pk, "subreddit": post.subreddit, "title": post.title, "post": post.text}


def sft_examples(*, dataset: Dataset, eval_fraction: float = 0.0, max_examples: int = 0) -> list[dict]:
    """Reference summaries of the dataset's training posts: {subreddit, title, post, summary}.

    A dialogue dataset (HH-RLHF) ships no references: its examples are the replies the humans
    preferred (the majority of each comparison's labels; even splits left out), as in HH SFT.
    """
    if dataset.task in (TaskKind.DIALOGUE, TaskKind.HARMLESS):
        out = _preferred_replies(dataset, eval_fraction)
    else:
        rows = (Summary.objects.filter(post__dataset=dataset, is_reference=True)
                .select_related("post").order_by("pk"))
        out = [dict(_post_fields(s.post), summary=s.text) for s in rows.iterator()
               if not post_is_held_out(s.post.content_sha256, eval_fraction)]
    return out[:max_examples] if max_examples else out


def _preferred_replies(dataset: Dataset, eval_fraction: float) -> list[dict]:
    votes: dict[int, list[int]] = {}
    comparisons = {}
    labels = (HumanLabel.objects.filter(comparison__post__dataset=dataset)
              .select_related("comparison__post", "comparison__summary_a", "comparison__summary_b").order_by("pk"))
    for label in labels.iterator():
        c = label.comparison
        if post_is_held_out(c.post.content_sha256, eval_fraction):
            continue
        comparisons.setdefault(c.pk, c)
        votes.setdefault(c.pk, [0, 0])[label.choice] += 1
    out, seen = [], set()
    for pk, (votes_a, votes_b) in votes.items():
        choice = formats.majority_choice(votes_a, votes_b)
        if choice is None:
            continue
        c = comparisons[pk]
        reply = c.summary_a if choice == 0 else c.summary_b
        if reply.pk not in seen:
            seen.add(reply.pk)
            out.append(dict(_post_fields(c.post), summary=reply.text))
    return out


def _pair_fields(comparison) -> dict:
    return dict(_post_fields(comparison.post), comparison_id=comparison.pk,
                summary_a=comparison.summary_a.text, summary_b=comparison.summary_b.text)


def human_pairs(*, dataset: Dataset, held_out: bool, eval_fraction: float) -> list[dict]:
    """One pair per human label: p_a (1 or 0) for training, choice and confidence for evaluation."""
    labels = (HumanLabel.objects.filter(comparison__post__dataset=dataset)
              .select_related("comparison__post", "comparison__summary_a", "comparison__summary_b")
              .order_by("pk"))
    out = []
    for label in labels.iterator():
        c = label.comparison
        if post_is_held_out(c.post.content_sha256, eval_fraction) != held_out:
            continue
        out.append(dict(_pair_fields(c), label_id=label.pk, p_a=1.0 - label.choice, choice=label.choice,
                        confidence=label.confidence))
    return out


def ai_pairs(*, dataset: Dataset, labeler_config, eval_fraction: float) -> list[dict]:
    """One pair per usable AI label of this config on training posts, with the soft label p_a."""
    labels = (AILabel.objects.filter(comparison__post__dataset=dataset, config=labeler_config, p_a__isnull=False)
              .select_related("comparison__post", "comparison__summary_a", "comparison__summary_b")
              .order_by("pk"))
    return [dict(_pair_fields(label.comparison), label_id=label.pk, p_a=label.p_a) for label in labels.iterator()
            if not post_is_held_out(label.comparison.post.content_sha256, eval_fraction)]


def hybrid_pairs(*, dataset: Dataset, labeler_config, eval_fraction: float, human_campaign: str = "") -> list[dict]:
    """One pair per comparison of the training posts: the humans' vote share p_a where the pair has
    human labels (only those of `human_campaign`'s pairs when given), the config's AI soft label
    elsewhere; `provenance` says which (`labeling.selectors.trust.hybrid_labels`)."""
    from labeling.models import Campaign, Comparison
    from labeling.selectors.trust import campaign_comparison_ids, hybrid_labels

    human_ids = None
    if human_campaign:
        human_ids = campaign_comparison_ids(Campaign.objects.get(name=human_campaign))
    rows = hybrid_labels(dataset=dataset, config=labeler_config, human_comparison_ids=human_ids)
    comps = Comparison.objects.select_related("post", "summary_a", "summary_b").in_bulk([r.comparison_id for r in rows])
    return [dict(_pair_fields(comps[r.comparison_id]), label_id=r.ai_label_id, p_a=r.p_a, provenance=r.source,
                 n_human=r.n_human)
            for r in rows if not post_is_held_out(comps[r.comparison_id].post.content_sha256, eval_fraction)]


def posts_for(*, dataset: Dataset, held_out: bool, eval_fraction: float, limit: int = 0) -> list[dict]:
    """Posts of one side of the split, in id order: {post_id, subreddit, title, post}."""
    out = []
    for post in Post.objects.filter(dataset=dataset).order_by("pk").iterator():
        if post_is_held_out(post.content_sha256, eval_fraction) == held_out:
            out.append(_post_fields(post))
            if limit and len(out) >= limit:
                break
    return out


# --- runs and artifacts -----------------------------------------------------------------------


def posts_with_references(*, dataset: Dataset, eval_fraction: float, limit: int) -> list[dict]:
    """The first held-out posts (id order) that have a reference summary, with it as `reference`."""
    out = []
    refs = (Summary.objects.filter(post__dataset=dataset, is_reference=True).select_related("post")
            .order_by("post_id", "pk"))
    seen: set[int] = set()
    for s in refs.iterator():
        if s.post_id in seen or not post_is_held_out(s.post.content_sha256, eval_fraction):
            continue
        seen.add(s.post_id)
        out.append(dict(_post_fields(s.post), reference=s.text))
        if len(out) >= limit:
            break
    return out


def artifact_abspath(artifact: ModelArtifact) -> Path:
    path = Path(artifact.path)
    return path if path.is_absolute() else Path(settings.ARTIFACT_ROOT) / path


def training_run_list() -> QuerySet[TrainingRun]:
    return TrainingRun.objects.select_related("created_by", "dataset", "base_artifact").order_by("-created_at")


def training_run_get(pk: int) -> TrainingRun:
    return (TrainingRun.objects.select_related("created_by", "dataset", "base_artifact", "reward_artifact",
                                               "labeler_config").get(pk=pk))


def training_run_cancel_requested(*, run_id: int) -> bool:
    """Whether someone asked the run to stop (the worker polls this)."""
    return TrainingRun.objects.filter(pk=run_id, cancel_requested=True).exists()


def training_run_heartbeat_at(*, run_id: int):
    """When the run's worker last showed it was alive (None: never)."""
    return TrainingRun.objects.values_list("heartbeat_at", flat=True).get(pk=run_id)


def training_run_checkpoint_step(run: TrainingRun) -> int | None:
    """The step of the checkpoint really saved (the runner records it with the path), None without one."""
    if not run.checkpoint_path:
        return None
    return int((run.summary or {}).get("checkpoint_step") or 0)


def training_run_artifacts(run: TrainingRun) -> QuerySet[ModelArtifact]:
    return run.artifacts.select_related("policy").prefetch_related("parents").order_by("pk")


def default_base_artifact(kind: str) -> ModelArtifact | None:
    """The artifact a new run of this kind most likely starts from (for the form's initial value)."""
    qs = ModelArtifact.objects.order_by("-created_at")
    if kind == RunKind.SFT:
        return qs.filter(kind=ModelArtifact.Kind.BASE, name__icontains="gpt").first() or qs.filter(
            kind=ModelArtifact.Kind.BASE).first()
    if kind == RunKind.REWARD:
        return qs.filter(kind=ModelArtifact.Kind.BASE, name__icontains="minilm").first() or qs.filter(
            kind=ModelArtifact.Kind.BASE).first()
    if kind == RunKind.RL:
        return qs.filter(kind=ModelArtifact.Kind.POLICY, run__kind=RunKind.SFT).first()
    return qs.filter(kind=ModelArtifact.Kind.POLICY).first()


def training_runs_by_ids(ids) -> list[TrainingRun]:
    """The runs with these ids, oldest first, so a run keeps its colour however the runs were
    ticked (unknown ids are left out)."""
    found = TrainingRun.objects.select_related("dataset", "base_artifact").in_bulk(list(ids))
    return [found[i] for i in sorted(found)]


def reward_model_verdict(run: TrainingRun) -> dict | None:
    """For a finished reward model: its held-out accuracy against the best trivial judge's
    ("longer summary", "more words shared with the post", from `training.ml.reward.evaluate`);
    None when the run has no such figures (not a reward model, or no held-out human labels)."""
    s = run.summary or {}
    rm = s.get("rm_accuracy")
    baselines = {name: s.get(f"{key}_accuracy") for name, key in
                 (("prefer the longer summary", "longer_baseline"), ("prefer more words shared with the post", "overlap_baseline"))}
    baselines = {k: v for k, v in baselines.items() if isinstance(v, (int, float))}
    if not isinstance(rm, (int, float)) or not baselines:
        return None
    best_name, best = max(baselines.items(), key=lambda kv: kv[1])
    return {"rm": rm, "best_name": best_name, "best": best, "baselines": baselines, "beats": rm > best,
            "eval_pairs": s.get("eval_pairs")}


def comparable_metrics(runs, wanted: list[str]) -> list[str]:
    """The metrics of `wanted` that at least one of the runs logged (["loss"] when none did)."""
    present = {k for run in runs for row in (run.metrics or []) for k, v in row.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return [m for m in wanted if m in present] or ["loss"]


def metric_series(runs, metric: str) -> list[dict]:
    """One curve per run for the compare page: {id, label, kind, points: [[step, value], ...]}."""
    return [{"id": r.pk, "label": f"#{r.pk} {r.name or r.get_kind_display()}", "kind": r.kind,
             "points": [[row["step"], row[metric]] for row in (r.metrics or [])
                        if "step" in row and isinstance(row.get(metric), (int, float))]}
            for r in runs]
