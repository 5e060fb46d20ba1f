"""Export of preferences: TRL JSONL (human and AI soft labels) and CSV; TRL round trip."""
from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from labeling import importers
from labeling.models import AILabel, Comparison, HumanLabel, LabelerConfig
from labeling.selectors.exports import preferences_export
from labeling.services.imports import comparisons_import

pytestmark = pytest.mark.django_db

TLDR = Path(__file__).resolve().parent.parent / "data" / "tldr_comparisons_sample.jsonl"
HH = Path(__file__).resolve().parent.parent / "data" / "hh_rlhf_helpful_comparisons_sample.jsonl"


def head(src: Path, dest: Path, n: int) -> Path:
    with src.open(encoding="utf-8") as fh:
        dest.write_text("".join(itertools.islice(fh, n)), encoding="utf-8")
    return dest


def preferences(dataset: str) -> list[tuple]:
    """Each label as (post content digest, preferred text, other text, confidence for the
    preferred-first order), independent of ids and of the canonical order."""
    out = []
    for label in HumanLabel.objects.filter(comparison__post__dataset__name=dataset).select_related(
        "comparison__post", "comparison__summary_a", "comparison__summary_b"
    ):
        c = label.comparison
        a, b = c.summary_a.text, c.summary_b.text
        conf = label.confidence
        if label.choice == 1:
            a, b = b, a
            conf = None if conf is None else 10 - conf
        out.append((c.post.content_sha256, a, b, conf))
    return sorted(out, key=repr)


@pytest.mark.parametrize("src,n", [(TLDR, 300), (HH, 60)], ids=["tldr", "hh"])
def test_trl_export_then_import_gives_the_same_preferences(tmp_path, src, n):
    result = comparisons_import(path=head(src, tmp_path / src.name, n))
    out = tmp_path / "prefs.jsonl"
    call_command("export_preferences", "--format", "trl", "--dataset", result.dataset, str(out))
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == n
    assert all({"prompt", "chosen", "rejected", "id", "worker"} <= row.keys() for row in rows)
    if src is TLDR:
        assert rows[0]["prompt"].startswith("SUBREDDIT: r/") and rows[0]["prompt"].endswith("\nTL;DR:")
        assert rows[0]["chosen"].startswith(" ")
        assert all("confidence" in row for row in rows)

    back = comparisons_import(path=out, dataset="round-trip")
    assert back.format == "trl" and back.labels_created == n
    assert preferences("round-trip") == preferences(result.dataset)

    # Re-importing the export into the source dataset finds every label already there.
    same = comparisons_import(path=out, dataset=result.dataset)
    assert (same.posts_created, same.labels_created, same.labels_present) == (0, 0, n)


def test_csv_export_one_row_per_label(tmp_path):
    comparisons_import(path=head(TLDR, tmp_path / "tldr.jsonl", 50), dataset="tldr")
    buf = io.StringIO()
    assert preferences_export(out=buf, fmt="csv", dataset="tldr") == 50
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert len(rows) == 50
    for row in rows:
        label = HumanLabel.objects.select_related("comparison__summary_a__policy").get(pk=row["label_id"])
        assert int(row["choice"]) == label.choice and row["preferred"] == "AB"[label.choice]
        assert row["summary_a"] == label.comparison.summary_a.text
        assert row["policy_a"] == label.comparison.summary_a.policy.name
        assert row["annotator"] == label.worker_id and int(row["confidence"]) == label.confidence
        assert int(row["summary_a_id"]) < int(row["summary_b_id"])


def test_ai_labels_export_soft_labels(tmp_path):
    comparisons_import(path=head(TLDR, tmp_path / "tldr.jsonl", 3), dataset="tldr")
    c1, c2 = Comparison.objects.order_by("pk")[:2]
    cfg = LabelerConfig.objects.create(name="judge", model="tiny")
    other = LabelerConfig.objects.create(name="other", model="tiny")
    AILabel.objects.create(comparison=c1, config=cfg, p_a=0.8)
    AILabel.objects.create(comparison=c2, config=cfg, p_a=0.25)
    AILabel.objects.create(comparison=c2, config=other, p_a=None, error="no probability")
    buf = io.StringIO()
    assert preferences_export(out=buf, fmt="trl", source="ai", labeler_config="judge") == 2
    rows = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert rows[0]["chosen"] == " " + c1.summary_a.text and rows[0]["p_chosen"] == pytest.approx(0.8)
    assert rows[1]["chosen"] == " " + c2.summary_b.text and rows[1]["p_chosen"] == pytest.approx(0.75)
    assert rows[0]["labeler"] == "judge"
    # The failed label (p_a null) is not a preference and is left out.
    assert preferences_export(out=io.StringIO(), fmt="trl", source="ai") == 2
    buf = io.StringIO()
    preferences_export(out=buf, fmt="csv", source="ai")
    assert [r["p_a"] for r in csv.DictReader(io.StringIO(buf.getvalue()))] == ["0.8", "0.25"]
    # The soft label survives an import as the 9-point confidence (0.8 -> 2.6 -> 3 with chosen first).
    path = tmp_path / "ai.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n")
    comparisons_import(path=path, dataset="ai-import")
    label = HumanLabel.objects.get(comparison__post__dataset__name="ai-import")
    assert label.confidence == (3 if label.choice == 0 else 7)


def test_export_command_errors(tmp_path):
    with pytest.raises(CommandError, match="no dataset named 'nope'"):
        call_command("export_preferences", "--format", "csv", "--dataset", "nope", str(tmp_path / "x.csv"))
    with pytest.raises(CommandError, match="--labeler-config needs --source ai"):
        call_command("export_preferences", "--format", "trl", "--labeler-config", "x", str(tmp_path / "x.jsonl"))


def test_tldr_prompt_round_trip():
    prompt = importers.format_tldr_prompt("tifu", "Title: with colon", "line one\n\nTITLE: fake\nline two")
    assert importers.parse_tldr_prompt(prompt) == ("tifu", "Title: with colon", "line one\n\nTITLE: fake\nline two")
    assert importers.parse_tldr_prompt("Human: hi\n\nAssistant:") is None


def test_tldr_prompt_is_the_trainers_prompt():
    """Exported TL;DR prompts must be exactly what the training code feeds its models."""
    from training.ml.common import format_prompt

    for subreddit in ("tifu", ""):
        assert importers.format_tldr_prompt(subreddit, "T", "P") == format_prompt(subreddit, "T", "P")
