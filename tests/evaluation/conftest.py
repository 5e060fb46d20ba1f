"""Fixtures of the evaluation tests: a small hand-built world of policies, comparisons, human and
AI labels, and a loader of the shipped TL;DR comparisons (the labeling importer when present)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from labeling.models import (
    AILabel, Campaign, CampaignItem, Comparison, Dataset, HumanLabel, LabelerConfig, Policy, Post, Summary,
)

DATA = Path(__file__).resolve().parents[2] / "data"
TLDR = DATA / "tldr_comparisons_sample.jsonl"


@pytest.fixture(autouse=True)
def _empty_django_cache():
    """Refresh requests and their rate limit live in Django's cache, which outlives a test's
    database transaction: start each test without them."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def no_queue(monkeypatch):
    """Record enqueued dashboard refreshes instead of sending them to a broker."""
    from evaluation import tasks

    sent = []
    monkeypatch.setattr(tasks.refresh_dashboard_task, "delay", lambda payload: sent.append(payload))
    return sent


def make_comparison(post: Post, pol_x: Policy, text_x: str, pol_y: Policy, text_y: str) -> tuple[Comparison, bool]:
    """A canonical comparison of two new summaries; returns it and whether x is summary A."""
    sx = Summary.objects.get_or_create(post=post, policy=pol_x, text=text_x, defaults={})[0]
    sy = Summary.objects.get_or_create(post=post, policy=pol_y, text=text_y, defaults={})[0]
    a, b = (sx, sy) if sx.pk < sy.pk else (sy, sx)
    comp, _ = Comparison.objects.get_or_create(post=post, summary_a=a, summary_b=b)
    return comp, a.pk == sx.pk


@pytest.fixture
def small_world(db, annotator, staff_user):
    """Two policies, 6 comparisons; long summaries by "rl" win with humans 5 of 6 times.

    Humans: worker w1 labels all 6, worker w2 labels 4 (agreeing with w1 on 3).
    AI config "judge-good" agrees with w1 everywhere; "judge-biased" always prefers position 1.
    """
    ds = Dataset.objects.create(name="small", source="unit test")
    sft = Policy.objects.create(name="sft-<b>", kind="sft")
    rl = Policy.objects.create(name="rl", kind="rlhf")
    campaign = Campaign.objects.create(name="c1", dataset=ds)
    good = LabelerConfig.objects.create(name="judge-good", model="tiny", preamble="detailed", chain_of_thought=True)
    biased = LabelerConfig.objects.create(name="judge-biased", model="tiny", shots=1)
    w1 = [1, 1, 1, 1, 1, 0]  # 1 = rl preferred
    w2 = [1, 1, 0, 0, None, None]
    comps = []
    for n in range(6):
        post = Post.objects.create(dataset=ds, external_id=f"p{n}", title=f"post {n}",
                                   text=f"alpha beta gamma delta epsilon zeta story {n}")
        comp, rl_is_a = make_comparison(post, rl, f"alpha beta gamma delta long summary {n}", sft, f"short {n}")
        comps.append((comp, rl_is_a))
        CampaignItem.objects.create(campaign=campaign, comparison=comp, is_gold=(n == 0))
        if n == 0:
            comp.gold_choice = 0 if rl_is_a else 1
            comp.save()
        for who, labels, user in (("w1", w1, annotator), ("w2", w2, None)):
            pref_rl = labels[n]
            if pref_rl is None:
                continue
            choice = 0 if (pref_rl == 1) == rl_is_a else 1
            HumanLabel.objects.create(
                comparison=comp, annotator=user, worker_id="" if user else who, campaign=campaign,
                choice=choice, confidence=1 if choice == 0 else 9, time_taken_s=30.0,
            )
        p_rl = 0.9 if w1[n] == 1 else 0.1
        p_a = p_rl if rl_is_a else 1 - p_rl
        AILabel.objects.create(comparison=comp, config=good, p_a=p_a, p_a_ab=p_a, p_a_ba=p_a, consistent=True,
                               prompt_tokens=100, completion_tokens=20)
        AILabel.objects.create(comparison=comp, config=biased, p_a=0.5 if n % 2 else 0.6, p_a_ab=0.9,
                               p_a_ba=0.1 if n % 2 else 0.3, consistent=False, prompt_tokens=50)
    return {"dataset": ds, "sft": sft, "rl": rl, "good": good, "biased": biased, "comps": comps,
            "campaign": campaign, "w1": w1, "w2": w2}


def load_tldr(path: Path = TLDR, dataset: str = "tldr-sample") -> None:
    """Import the shipped TL;DR comparisons: the labeling importer, else a direct loader."""
    try:
        from labeling.services.imports import comparisons_import
    except ImportError:  # pragma: no cover - before the importer landed
        comparisons_import = None
    if comparisons_import is not None:
        comparisons_import(path=path, dataset=dataset)
        _analyze()
        return
    ds = Dataset.objects.create(name=dataset, source=str(path))  # pragma: no cover
    for line in path.open():  # pragma: no cover
        r = json.loads(line)
        post, _ = Post.objects.get_or_create(dataset=ds, external_id=r["post_id"],
                                             defaults={"title": r["title"], "text": r["post"], "subreddit": r["subreddit"]})
        pa = Policy.objects.get_or_create(name=r["policy_a"])[0]
        pb = Policy.objects.get_or_create(name=r["policy_b"])[0]
        comp, first_is_a = make_comparison(post, pa, r["summary_a"], pb, r["summary_b"])
        choice = r["choice"] if first_is_a else 1 - r["choice"]
        conf = r["confidence"] if first_is_a else 10 - r["confidence"]
        HumanLabel.objects.create(comparison=comp, worker_id=r["worker"], choice=choice, confidence=conf,
                                  import_key=r["id"])


def _analyze() -> None:
    """Give PostgreSQL's planner statistics for rows written inside the test transaction.

    Autovacuum cannot see uncommitted rows; without statistics the planner assumes near-empty
    tables and may pick nested loops over sequential scans, which at a thousand labels takes
    minutes.  Production tables are analyzed by autovacuum.
    """
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("ANALYZE")
