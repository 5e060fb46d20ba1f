"""Import of every format: good files, bad files (file/line/field named, nothing written),
atomicity across chunks, idempotent re-import, the canonical A/B mapping of labels."""
from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db.models import F

from labeling import importers
from labeling.importers import ImportFileError
from labeling.models import Comparison, Dataset, HumanLabel, Policy, PolicyKind, Post, Summary, TaskKind
from labeling.services import imports
from labeling.services.imports import comparisons_import, posts_import

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parent.parent / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TLDR = DATA / "tldr_comparisons_sample.jsonl"
REFS = DATA / "tldr_sft_reference_summaries.jsonl"
HH = DATA / "hh_rlhf_helpful_comparisons_sample.jsonl"


def read(path: Path, n: int | None = None) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in itertools.islice(fh, n)]


def write(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def counts() -> tuple[int, ...]:
    return (Dataset.objects.count(), Post.objects.count(), Summary.objects.count(), Comparison.objects.count(),
            HumanLabel.objects.count(), Policy.objects.count())


def to_openai(r: dict) -> dict:
    """A normalized TL;DR record written back in OpenAI's published layout (summaries with their
    leading space, as in the originals)."""
    return {
        "info": {"id": r["post_id"], "post": r["post"], "title": r["title"], "subreddit": r["subreddit"],
                 "site": None, "article": None},
        "summaries": [{"text": " " + r["summary_a"], "policy": r["policy_a"], "note": r["note_a"]},
                      {"text": " " + r["summary_b"], "policy": r["policy_b"], "note": r["note_b"]}],
        "choice": r["choice"], "worker": r["worker"], "batch": r["batch"], "split": r["split"],
        "extra": {"confidence": r["confidence"]},
    }


def preferred_texts(label: HumanLabel) -> tuple[str, str]:
    c = label.comparison
    a, b = c.summary_a.text, c.summary_b.text
    return (a, b) if label.choice == 0 else (b, a)


def test_post_digest_matches_the_model():
    assert importers.post_digest("r", "t", "x") == Post.content_digest("r", "t", "x")


def test_shipped_tldr_file_imports_fast_correctly_and_idempotently():
    records = read(TLDR)
    t0 = time.perf_counter()
    result = comparisons_import(path=TLDR)
    elapsed = time.perf_counter() - t0
    assert elapsed < 30, f"1240-line import took {elapsed:.1f}s"

    # Expected counts computed from the file itself.
    posts = {r["post_id"] for r in records}
    summaries = {(r["post_id"], r[f"policy_{s}"], r[f"summary_{s}"]) for r in records for s in "ab"}
    pairs = {(r["post_id"], frozenset([(r["policy_a"], r["summary_a"]), (r["policy_b"], r["summary_b"])]))
             for r in records}
    assert (result.dataset, result.format, result.records) == ("tldr", "normalized", len(records))
    assert (result.posts_created, result.summaries_created, result.comparisons_created, result.labels_created) == (
        len(posts), len(summaries), len(pairs), len(records))
    ds = Dataset.objects.get(name="tldr")
    assert ds.task == TaskKind.SUMMARIZATION and "OpenAI" in ds.license
    assert Policy.objects.get(name="ref").kind == PolicyKind.REFERENCE
    assert Policy.objects.get(name="sup4_ppo_rm4_t.7").kind == PolicyKind.IMPORTED
    assert not Comparison.objects.filter(summary_a_id__gte=F("summary_b_id")).exists()

    # Every label, mapped to canonical A/B, still prefers the text the worker preferred, and its
    # confidence (re-expressed for the canonical order) agrees with its choice.
    by_key = {f"tldr:{r['id']}": r for r in records}
    flips = 0
    for label in HumanLabel.objects.select_related("comparison__summary_a", "comparison__summary_b"):
        r = by_key[label.import_key]
        chosen = r["summary_b"] if r["choice"] else r["summary_a"]
        assert preferred_texts(label)[0] == chosen
        assert label.worker_id == r["worker"]
        assert label.comparison.summary_a_id < label.comparison.summary_b_id
        shown_first_is_a = label.comparison.summary_a.text == r["summary_a"]
        assert label.a_shown_first is shown_first_is_a
        flips += not shown_first_is_a
        assert (label.confidence < 5) == (label.choice == 0)
        assert label.confidence == (r["confidence"] if shown_first_is_a else 10 - r["confidence"])
        assert (label.note_a, label.note_b) == tuple(
            (n or "") for n in ((r["note_a"], r["note_b"]) if shown_first_is_a else (r["note_b"], r["note_a"])))
    assert flips > 100  # both orders occur in the real data

    before = counts()
    again = comparisons_import(path=TLDR)
    assert counts() == before
    assert (again.posts_created, again.summaries_created, again.comparisons_created, again.labels_created) == (0,) * 4
    assert (again.posts_present, again.summaries_present, again.comparisons_present, again.labels_present) == (
        len(posts), len(summaries), len(pairs), len(records))


def test_openai_format_matches_the_normalized_import(tmp_path):
    records = read(TLDR, 40)
    raw = write(tmp_path / "batch13.json", [to_openai(r) for r in records])
    result = comparisons_import(path=raw)
    assert (result.format, result.dataset) == ("openai", "tldr")  # OpenAI batch files of Reddit posts
    assert result.labels_created == 40
    assert Summary.objects.filter(text__startswith=" ").count() == 0  # the leading space is stripped
    assert Post.objects.filter(subreddit=records[0]["subreddit"]).exists()
    choices = {(l.comparison_id, l.worker_id): preferred_texts(l) for l in HumanLabel.objects.all()}

    again = comparisons_import(path=write(tmp_path / "norm.jsonl", records), dataset="tldr", fmt="normalized")
    assert (again.posts_created, again.summaries_created, again.comparisons_created) == (0, 0, 0)
    for label in HumanLabel.objects.filter(import_key__startswith="tldr:batch"):
        assert choices[(label.comparison_id, label.worker_id)] == preferred_texts(label)


def test_openai_null_confidence_and_missing_post_id(tmp_path):
    r = to_openai(read(TLDR, 1)[0])
    r["extra"] = {"confidence": None}
    r["info"]["id"] = None
    r["info"]["subreddit"] = "r/" + r["info"]["subreddit"]
    comparisons_import(path=write(tmp_path / "batch99.jsonl", [r]))
    label = HumanLabel.objects.get()
    assert label.confidence is None
    post = Post.objects.get()
    assert post.external_id.startswith("sha256-") and not post.subreddit.startswith("r/")


def test_hh_dialogue_normalized(tmp_path):
    records = read(HH, 60)  # the first empty response in the shipped file is on line 88
    result = comparisons_import(path=write(tmp_path / HH.name, records))
    assert (result.dataset, result.labels_created) == ("hh-rlhf-helpful", 60)
    ds = Dataset.objects.get(name="hh-rlhf-helpful")
    assert ds.task == TaskKind.DIALOGUE
    assert set(Policy.objects.values_list("name", flat=True)) == {importers.UNKNOWN_POLICY}
    assert Post.objects.filter(text=records[0]["prompt"], title="", subreddit="").exists()
    assert set(HumanLabel.objects.values_list("a_shown_first", flat=True)) == {None}
    for label in HumanLabel.objects.all():
        r = next(x for x in records if label.import_key == f"hh-rlhf-helpful:{x['id']}")
        assert preferred_texts(label)[0] == (r["response_b"] if r["choice"] else r["response_a"]).strip()


def test_trl_import_parses_tldr_prompts_and_soft_labels(tmp_path):
    prompt = importers.format_tldr_prompt("AskReddit", "A title", "The post\n\nwith paragraphs.")
    rows = [
        {"prompt": prompt, "chosen": " Good summary.", "rejected": " Bad summary.", "p_chosen": 0.875},
        {"prompt": prompt, "chosen": " Other good.", "rejected": " Good summary.", "confidence": 3, "worker": "w9"},
    ]
    path = write(tmp_path / "prefs.jsonl", rows)
    result = comparisons_import(path=path, dataset="mine")
    assert (result.format, result.posts_created, result.summaries_created, result.labels_created) == ("trl", 1, 3, 2)
    post = Post.objects.get()
    assert (post.subreddit, post.title, post.text) == ("AskReddit", "A title", "The post\n\nwith paragraphs.")
    assert Dataset.objects.get(name="mine").task == TaskKind.SUMMARIZATION
    labels = {preferred_texts(l): l for l in HumanLabel.objects.select_related("comparison__summary_a",
                                                                                "comparison__summary_b")}
    first = labels[("Good summary.", "Bad summary.")]
    # p_chosen 0.875 -> 2 on OpenAI's scale with chosen first; re-expressed for the canonical order.
    assert first.confidence == (2 if first.choice == 0 else 8)
    assert first.worker_id == importers.DEFAULT_TRL_WORKER and first.a_shown_first is None
    second = labels[("Other good.", "Good summary.")]
    assert second.confidence == (3 if second.choice == 0 else 7) and second.worker_id == "w9"
    assert first.import_key.startswith("mine:sha256-")
    assert comparisons_import(path=path, dataset="mine").labels_created == 0


def test_trl_plain_prompt_is_a_dialogue(tmp_path):
    path = write(tmp_path / "chat.jsonl", [{"prompt": "Human: hi\n\nAssistant:", "chosen": "Hello!",
                                            "rejected": "Go away.", "id": 7}])
    result = comparisons_import(path=path)
    assert result.dataset == "chat"
    assert Dataset.objects.get(name="chat").task == TaskKind.DIALOGUE
    assert HumanLabel.objects.get().import_key == "chat:7"


def test_posts_import_reuses_posts_under_other_ids_and_makes_pairs(tmp_path):
    comparisons = read(TLDR, 30)
    comparisons_import(path=write(tmp_path / "tldr_comparisons.jsonl", comparisons))
    seen = {r["post_id"]: r for r in comparisons}
    known = list(seen.values())[:2]
    refs = read(REFS, 3)
    rows = [
        {"id": f"oai1b-x{i}", "subreddit": r["subreddit"], "title": r["title"], "post": r["post"],
         "summary": f"Reference {i}.", "policy_summary": f"Policy sample {i}.", "policy": "openai_ppo_original_1.3b"}
        for i, r in enumerate(known)
    ] + refs
    path = write(tmp_path / "tldr_sft_reference_summaries.jsonl", rows)
    before_posts = Post.objects.count()
    result = posts_import(path=path)
    assert result.dataset == "tldr"
    assert (result.posts_created, result.posts_present) == (3, 2)
    assert Post.objects.count() == before_posts + 3
    for i, r in enumerate(known):  # the comparison post (t3_ id) got the reference, not a copy
        post = Post.objects.get(dataset__name="tldr", external_id=r["post_id"])
        ref = post.summaries.get(text=f"Reference {i}.")
        assert ref.is_reference and ref.policy.name == "ref" and ref.policy.kind == PolicyKind.REFERENCE
    assert result.comparisons_created == 5
    pair = Comparison.objects.get(post__external_id=refs[0]["id"])
    assert {pair.summary_a.text, pair.summary_b.text} == {refs[0]["summary"], refs[0]["policy_summary"]}
    assert not pair.human_labels.exists()
    assert Policy.objects.get(name="openai_ppo_original_1.3b").kind == PolicyKind.IMPORTED

    before = counts()
    again = posts_import(path=path)
    assert counts() == before and (again.posts_created, again.summaries_created, again.comparisons_created) == (0, 0, 0)


def test_posts_import_no_pairs_and_existing_ref_summary_becomes_reference(tmp_path):
    comparisons = [r for r in read(TLDR) if r["policy_a"] == "ref"][:1]
    assert comparisons, "batch18 rows compare the reference"
    r = comparisons[0]
    comparisons_import(path=write(tmp_path / "tldr_comparisons.jsonl", [r]))
    ref = Summary.objects.get(policy__name="ref")
    assert not ref.is_reference
    row = {"id": "oai1b-1", "subreddit": r["subreddit"], "title": r["title"], "post": r["post"],
           "summary": r["summary_a"], "policy_summary": "A new sample.", "policy": "p"}
    result = posts_import(path=write(tmp_path / "refs.jsonl", [row]), dataset="tldr", make_pairs=False)
    assert (result.summaries_created, result.summaries_present, result.comparisons_created) == (1, 1, 0)
    ref.refresh_from_db()
    assert ref.is_reference
    assert Comparison.objects.count() == 1


GOOD_NORMALIZED = read(TLDR, 1)[0]
GOOD_TRL = {"prompt": "Human: hi", "chosen": "Hello!", "rejected": "Go away."}
GOOD_OPENAI = to_openai(GOOD_NORMALIZED)


def _with(record: dict, **changes) -> dict:
    out = json.loads(json.dumps(record))
    for dotted, value in changes.items():
        target = out
        *parents, leaf = dotted.split("__")
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        if value is _DELETE:
            del target[leaf]
        else:
            target[leaf] = value
    return out


_DELETE = object()

BAD_CASES = [
    # (name, good record, bad line (str or dict), field named, words in the message)
    ("broken-json", GOOD_NORMALIZED, '{"id": "x", "choice": 1', None, "broken JSON"),
    ("missing-field", GOOD_NORMALIZED, _with(GOOD_NORMALIZED, summary_b=_DELETE), "summary_b", "missing"),
    ("wrong-type", GOOD_NORMALIZED, _with(GOOD_NORMALIZED, post=["x"]), "post", "expected a string"),
    ("choice-2", GOOD_NORMALIZED, _with(GOOD_NORMALIZED, choice=2), "choice", "expected 0 or 1, got 2"),
    ("choice-str", GOOD_NORMALIZED, _with(GOOD_NORMALIZED, choice="1"), "choice", "expected 0 or 1"),
    ("empty-summary", GOOD_NORMALIZED, _with(GOOD_NORMALIZED, summary_a="  "), "summary_a", "empty"),
    ("identical", GOOD_NORMALIZED, _with(GOOD_NORMALIZED, summary_b=GOOD_NORMALIZED["summary_a"]), "summary_b",
     "identical"),
    ("confidence-10", GOOD_NORMALIZED, _with(GOOD_NORMALIZED, confidence=10), "confidence", "1..9, got 10"),
    ("confidence-0", GOOD_NORMALIZED, _with(GOOD_NORMALIZED, confidence=0), "confidence", "1..9, got 0"),
    ("openai-missing-info-post", GOOD_OPENAI, _with(GOOD_OPENAI, info__post=_DELETE), "info.post", "missing"),
    ("openai-empty-summary", GOOD_OPENAI, _with(GOOD_OPENAI, summaries__1__text=" "), "summaries[1].text", "empty"),
    ("openai-choice", GOOD_OPENAI, _with(GOOD_OPENAI, choice=3), "choice", "got 3"),
    ("openai-confidence", GOOD_OPENAI, _with(GOOD_OPENAI, extra__confidence=10), "extra.confidence", "got 10"),
    ("openai-one-summary", GOOD_OPENAI, _with(GOOD_OPENAI, summaries=[GOOD_OPENAI["summaries"][0]]), "summaries",
     "expected 2"),
    ("openai-identical", GOOD_OPENAI,
     _with(GOOD_OPENAI, summaries__1__text=GOOD_OPENAI["summaries"][0]["text"]), "summaries", "identical"),
    ("trl-missing", GOOD_TRL, _with(GOOD_TRL, rejected=_DELETE), "rejected", "missing"),
    ("trl-wrong-type", GOOD_TRL, _with(GOOD_TRL, chosen=5), "chosen", "expected a string, got an integer"),
    ("trl-identical", GOOD_TRL, _with(GOOD_TRL, rejected=" Hello! "), "rejected", "identical"),
    ("trl-soft-label", GOOD_TRL, _with(GOOD_TRL, p_chosen=1.5), "p_chosen", "[0, 1]"),
    ("trl-confidence", GOOD_TRL, _with(GOOD_TRL, confidence=10), "confidence", "got 10"),
    ("not-an-object", GOOD_TRL, "[1, 2]", None, "expected a JSON object"),
]


@pytest.mark.parametrize("name,good,bad,field,words", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_record_names_file_line_field_and_writes_nothing(tmp_path, name, good, bad, field, words):
    if "info" in good:
        good_lines = [_with(good, worker=f"w{i}") for i in range(3)]
    elif "chosen" in good:
        good_lines = [_with(good, chosen=f"ok {i}") for i in range(3)]
    else:
        good_lines = [_with(good, id=f"g{i}") for i in range(3)]
    path = write(tmp_path / "data.jsonl", good_lines + [bad])
    before = counts()
    with pytest.raises(ImportFileError) as info:
        comparisons_import(path=path)
    msg = str(info.value)
    assert msg.startswith("data.jsonl, line 4")
    if field:
        assert f'field "{field}"' in msg
    assert words in msg
    assert (info.value.file, info.value.line, info.value.field) == ("data.jsonl", 4, field)
    assert counts() == before


@pytest.mark.parametrize("fixture,line,field", [
    ("bad_choice_normalized.jsonl", 1, "choice"),
    ("broken_json_trl.jsonl", 2, None),
    ("empty_summary_openai.jsonl", 1, "summaries[1].text"),
])
def test_bad_fixture_files(fixture, line, field):
    with pytest.raises(ImportFileError) as info:
        comparisons_import(path=FIXTURES / fixture)
    assert (info.value.file, info.value.line, info.value.field) == (fixture, line, field)
    assert counts() == (0,) * 6


def test_bad_posts_file(tmp_path):
    row = {"id": "p1", "subreddit": "s", "title": "t", "post": "text", "summary": "ref", "policy_summary": "x",
           "policy": "p"}
    for bad, field in [(_with(row, summary=""), "summary"), (_with(row, policy=_DELETE), "policy"),
                       (_with(row, policy_summary="ref"), "policy_summary"), (_with(row, id=None), "id")]:
        path = write(tmp_path / "refs.jsonl", [_with(row, id="p0"), bad])
        with pytest.raises(ImportFileError) as info:
            posts_import(path=path)
        assert (info.value.line, info.value.field) == (2, field)
    assert counts() == (0,) * 6


def test_bad_line_500_rolls_back_chunks_already_written(tmp_path, monkeypatch):
    comparisons_import(path=write(tmp_path / "seed.jsonl", read(TLDR, 5)), dataset="tldr")
    before = counts()
    monkeypatch.setattr(imports, "CHUNK", 50)  # so 9 chunks are written before line 500 is read
    records = read(TLDR, 600)
    lines = records[:499] + [_with(records[499], choice=2)] + records[500:]
    seen = []
    with pytest.raises(ImportFileError, match=r'line 500, field "choice"'):
        comparisons_import(path=write(tmp_path / "big.jsonl", lines), progress=seen.append, dataset="tldr")
    assert seen and seen[-1] == 450  # rows were written inside the transaction...
    assert counts() == before  # ...and rolled back


def test_format_detection_errors(tmp_path):
    with pytest.raises(ImportFileError, match="use import_posts"):
        comparisons_import(path=write(tmp_path / "refs.jsonl", read(REFS, 1)))
    with pytest.raises(ImportFileError, match="no records"):
        comparisons_import(path=write(tmp_path / "empty.jsonl", []))
    with pytest.raises(ImportFileError, match='line 1, field "post": missing'):
        comparisons_import(path=write(tmp_path / "x.jsonl", [{"id": "1", **GOOD_TRL}]), fmt="normalized")
    with pytest.raises(ImportFileError, match='field "format": unknown format'):
        comparisons_import(path=write(tmp_path / "x.jsonl", [GOOD_TRL]), fmt="csv")


def test_commands_show_progress_and_fail_with_the_message(tmp_path, capsys):
    path = write(tmp_path / "tldr_comparisons_sample.jsonl", read(TLDR, 20))
    call_command("import_comparisons", str(path))
    out = capsys.readouterr()
    assert "20 records into dataset 'tldr'" in out.out and "records" in out.err
    assert HumanLabel.objects.count() == 20
    call_command("import_posts", str(write(tmp_path / "refs.jsonl", read(REFS, 4))), "--dataset", "tldr",
                 "--no-pairs")
    assert Summary.objects.filter(is_reference=True).count() >= 4
    with pytest.raises(CommandError, match=r'bad_choice_normalized.jsonl, line 1, field "choice"'):
        call_command("import_comparisons", str(FIXTURES / "bad_choice_normalized.jsonl"), "--format", "normalized")
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_posts", str(tmp_path / "missing.jsonl"))


def test_parsers_stream_line_by_line(tmp_path):
    """The first records come out before a later line is even read (no whole-file load)."""
    records = read(TLDR, 2)
    path = write(tmp_path / "x.jsonl", records + ['{"broken'])
    parsed = importers.iter_comparisons(path)
    assert next(parsed).key == records[0]["id"] and next(parsed).key == records[1]["id"]
    with pytest.raises(ImportFileError, match="line 3"):
        next(parsed)


def test_long_record_ids_make_distinct_import_keys(tmp_path):
    rows = [{**GOOD_TRL, "chosen": f"c{i}", "id": "x" * 199 + str(i)} for i in range(2)]
    result = comparisons_import(path=write(tmp_path / "x.jsonl", rows), dataset="d" * 150)
    assert result.labels_created == 2
    assert len(set(HumanLabel.objects.values_list("import_key", flat=True))) == 2
    assert comparisons_import(path=tmp_path / "x.jsonl", dataset="d" * 150).labels_created == 0


def test_import_file_task_runs_the_service_and_removes_uploads(tmp_path):
    from labeling.tasks.imports import import_file

    refs = write(tmp_path / "refs.jsonl", read(REFS, 3))
    assert import_file(str(refs), kind="posts", dataset="tldr")["comparisons_created"] == 3
    bad = write(tmp_path / "bad.jsonl", [_with(GOOD_TRL, chosen=1)])
    with pytest.raises(ImportFileError, match='bad.jsonl, line 1, field "chosen"'):
        import_file(str(bad), delete_after=True)
    assert not bad.exists() and refs.exists()
    with pytest.raises(ValueError, match="unknown import kind"):
        import_file(str(refs), kind="labels")


@pytest.mark.postgres
def test_concurrent_imports_of_one_file_give_one_copy(transactional_db, require_postgres, tmp_path):
    import threading

    from django.db import connection

    path = write(tmp_path / "tldr_comparisons.jsonl", read(TLDR, 200))
    Dataset.objects.create(name="tldr")  # an existing dataset: its row does not serialize the imports
    results, errors = [], []

    def run():
        try:
            results.append(comparisons_import(path=path))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.labels_created for r in results) == [0, 200]
    assert HumanLabel.objects.count() == 200
