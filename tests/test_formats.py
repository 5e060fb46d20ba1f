"""One home per shared rule (`labeling.formats`): every caller gives the same answer."""
from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest

from evaluation import metrics
from labeling import formats, importers
from labeling.selectors.rating import agreement_report
from training.ml import common
from training.ml.reward import baseline_margins, evaluate


def test_tldr_prompt_has_one_definition_and_no_empty_subreddit_line():
    for subreddit in ("tifu", ""):
        want = formats.format_tldr_prompt(subreddit, "A title", "The post.")
        assert importers.format_tldr_prompt(subreddit, "A title", "The post.") == want
        assert common.format_prompt(subreddit, "A title", "The post.") == want
        assert formats.parse_tldr_prompt(want) == (subreddit, "A title", "The post.")
    assert formats.format_tldr_prompt("", "T", "P") == "TITLE: T\nPOST: P\nTL;DR:"
    assert formats.format_tldr_prompt("tifu", "T", "P") == "SUBREDDIT: r/tifu\nTITLE: T\nPOST: P\nTL;DR:"


def test_labeler_text_of_a_post_without_subreddit_has_no_empty_subreddit_line():
    """The AI labeler's `Text - ` used to read `SUBREDDIT: r/` for a post with a title only."""
    from labeling.services.ai_labeling import post_text

    post = SimpleNamespace(subreddit="", title="A title", text="The post.")
    assert post_text(post) == "TITLE: A title\nPOST: The post."
    assert "SUBREDDIT" not in post_text(post)
    reddit = SimpleNamespace(subreddit="tifu", title="A title", text="The post.")
    assert post_text(reddit) == "SUBREDDIT: r/tifu\nTITLE: A title\nPOST: The post."
    # the labeler's text is the policy prompt without its ending
    assert formats.format_tldr_prompt("tifu", "A title", "The post.") == post_text(reddit) + "\nTL;DR:"
    dialogue = SimpleNamespace(subreddit="", title="", text="Human: hi")
    assert post_text(dialogue) == "Human: hi"


def test_direct_rlaif_rates_the_same_text_as_the_pairwise_labeler(monkeypatch):
    """training.services' direct-RLAIF reward shows the labeler the same post text (no `SUBREDDIT: r/`)."""
    from labeling.judges.base import Scored
    from labeling.services import ai_labeling
    from training.services import direct_rlaif_reward_fn

    seen = []

    class FakeBackend:
        def count_tokens(self, prompt):
            return len(prompt.text) // 4

        def rate(self, prompts, context):
            seen.extend(p.text for p in prompts)
            return [Scored([0.1] * 10) for _ in prompts]

    monkeypatch.setattr(ai_labeling, "backend_for", lambda config: FakeBackend())
    reward = direct_rlaif_reward_fn(SimpleNamespace(max_prompt_tokens=2048))
    reward([{"subreddit": "", "title": "A title", "post": "The post."},
            {"subreddit": "", "title": "", "post": "Human: hi"}], ["A summary.", "Hello."])
    assert "Text - TITLE: A title\nPOST: The post.\n\n" in seen[0] and "SUBREDDIT" not in seen[0]
    assert "Text - Human: hi\n\n" in seen[1]


def test_dialogue_prompt_ends_with_the_assistant_turn_once():
    assert formats.format_dialogue_prompt("Human: hi") == "Human: hi\n\nAssistant:"
    assert formats.format_dialogue_prompt("Human: hi\n\nAssistant:") == "Human: hi\n\nAssistant:"
    assert formats.policy_prompt("", "", "Human: hi") == "Human: hi\n\nAssistant:"
    assert formats.policy_prompt("tifu", "T", "P") == "SUBREDDIT: r/tifu\nTITLE: T\nPOST: P\nTL;DR:"
    assert formats.policy_prompt("", "", "An article.", task="summarization") == "TITLE: \nPOST: An article.\nTL;DR:"


@pytest.mark.django_db
def test_text_digest_has_one_definition():
    from labeling import models

    assert models.text_digest is formats.text_digest is importers.text_digest
    assert models.Post.content_digest("s", "t", "x") == importers.post_digest("s", "t", "x") == formats.post_digest(
        "s", "t", "x")


@pytest.mark.django_db
def test_high_confidence_is_the_same_set_everywhere(monkeypatch):
    """metrics (numpy), the reward model's evaluation (Python) and the dashboards' SQL agree."""
    from django.db import connection

    confidences = [1, 2, 3, 4, 5, 6, 7, 8, 9, 2.5, 7.5, 1.5]
    want = [c in (1, 2, 8, 9, 1.5) for c in confidences]
    hv = metrics.human_majority(list(range(len(confidences))), [0] * len(confidences), confidences)
    assert hv.high_confidence.tolist() == want
    assert [formats.is_high_confidence(c) for c in confidences] == want
    assert not formats.is_high_confidence(None) and not formats.is_high_confidence(float("nan"))
    union = " UNION ALL ".join(f"SELECT {i} AS i, {float(c)} AS c" for i, c in enumerate(confidences))
    with connection.cursor() as cur:
        cur.execute(f"SELECT i FROM ({union}) v WHERE {formats.high_confidence_sql('c')} ORDER BY i")
        assert [r[0] for r in cur.fetchall()] == [i for i, w in enumerate(want) if w]

    # the reward model's evaluation counts the same subset (its margins patched: no model needed)
    import training.ml.reward as reward

    pairs = [{"post": "p", "title": "", "summary_a": "a", "summary_b": "bb", "choice": 0, "confidence": c}
             for c in [1, 2, 3, 8, 9, None]]
    monkeypatch.setattr(reward, "score_pairs", lambda *a, **k: [1.0] * len(pairs))
    assert evaluate(None, None, pairs, max_length=16)["eval_pairs_high_confidence"] == 4


def test_majority_rule_is_the_same_for_the_quality_report_and_the_metrics():
    rng = random.Random(3)
    labels = []
    for item in range(200):
        for who in rng.sample(["ann", "bob", "cat", "dan", "eve"], rng.randint(1, 5)):
            labels.append((who, item, rng.randint(0, 1)))
    report = agreement_report(labels)
    items, raters, choices = zip(*[(i, w, c) for w, i, c in labels])
    m = metrics.agreement_with_others_majority(items, raters, choices)
    for who, stats in report.items():
        assert stats.agree_n == m[who].n
        assert stats.agree == pytest.approx(m[who].value * m[who].n)
    # the human verdict per comparison
    hv = metrics.human_majority([1, 1, 1, 2, 2, 3], [0, 0, 1, 0, 1, 1])
    assert hv.score.tolist() == [1.0, 0.5, 0.0]
    assert [formats.majority_choice(2, 1), formats.majority_choice(1, 1), formats.majority_choice(0, 1)] == [0, None, 1]


def test_overlap_judge_reads_title_and_post_alike_in_training_and_dashboards():
    """The reward trainer's baseline and the dashboards' judge: one rule (title + post, one regex)."""
    rng = random.Random(5)
    vocab = ["cat", "dog", "don't", "mat", "ran", "über", "x1", "sat", "hat", "far"]
    pairs = []
    for _ in range(300):
        pairs.append({"title": " ".join(rng.sample(vocab, 2)), "post": " ".join(rng.sample(vocab, 4)),
                      "summary_a": " ".join(rng.sample(vocab, rng.randint(1, 4))),
                      "summary_b": " ".join(rng.sample(vocab, rng.randint(1, 4)))})
    margins = baseline_margins(pairs)
    judged = metrics.trivial_judges([formats.overlap_source(p["title"], p["post"]) for p in pairs],
                                    [p["summary_a"] for p in pairs], [p["summary_b"] for p in pairs])
    assert judged["overlap"].tolist() == [formats.margin_score(x) for x in margins["overlap"]]
    assert judged["longer"].tolist() == [formats.margin_score(x) for x in margins["longer"]]
    # the dashboards' worker reads the comparisons' stored facts instead of the texts: same verdicts
    facts = [formats.comparison_facts(p["title"], p["post"], p["summary_a"], p["summary_b"]) for p in pairs]
    stored = metrics.trivial_judges_from_facts(*([f[k] for f in facts] for k in ("len_a", "len_b", "overlap_a", "overlap_b")))
    assert stored["overlap"].tolist() == judged["overlap"].tolist() and stored["longer"].tolist() == judged["longer"].tolist()
    # the title counts: "hat" is only in the title
    only_title = [{"title": "hat", "post": "cat", "summary_a": "hat", "summary_b": "dog"}]
    assert baseline_margins(only_title)["overlap"] == [1.0]
    assert np.array_equal(metrics.trivial_judges([formats.overlap_source("hat", "cat")], ["hat"], ["dog"])["overlap"],
                          [1.0])


@pytest.mark.django_db
def test_dashboard_rows_give_the_overlap_judge_title_and_post():
    from evaluation import selectors
    from labeling.models import Comparison, Dataset, Policy, Post, Summary

    ds = Dataset.objects.create(name="fmt")
    post = Post.objects.create(dataset=ds, external_id="p1", subreddit="s", title="Hat title", text="cat")
    pa, pb = Policy.objects.create(name="pa"), Policy.objects.create(name="pb")
    sa = Summary.objects.create(post=post, policy=pa, text="hat")
    sb = Summary.objects.create(post=post, policy=pb, text="dog")
    c = Comparison.objects.create(post=post, summary_a=sa, summary_b=sb)
    rows = selectors.comparison_rows([c.pk], with_texts=True)
    assert rows["source"] == [formats.overlap_source("Hat title", "cat")]
    assert metrics.trivial_judges(rows["source"], rows["text_a"], rows["text_b"])["overlap"].tolist() == [1.0]
    assert rows["overlap"].tolist() == [1.0]  # from the stored facts
