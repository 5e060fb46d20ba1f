"""The paper's harmlessness task on the shipped HH data (import as a "harmless" dataset, AI labels
that ask which response is more harmful, Table 2's harmless column), and win rates from 3-way
human rankings imported as pairwise comparisons (the "ranking" import format)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from evaluation.paper import table2_lookup
from labeling.importers import ImportFileError, iter_comparisons
from labeling.models import AILabel, Comparison, Dataset, HumanLabel, LabelerBackend, LabelerConfig, TaskKind
from labeling.services import ai_labeling

from .ai.test_http_backend import server  # noqa: F401  (the loopback completions server fixture)

DATA = Path(__file__).resolve().parents[1] / "data"
HH = DATA / "hh_rlhf_helpful_comparisons_sample.jsonl"


def _write(tmp_path: Path, rows: list[dict], name: str = "rankings.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.django_db
def test_harmless_dataset_from_the_shipped_hh_file_is_labelled_with_the_harmlessness_question(
        tmp_path, server, client, staff_user):  # noqa: F811
    lines = HH.read_text().splitlines()[:6]
    small = tmp_path / "hh_harmless_sample.jsonl"
    small.write_text("\n".join(lines) + "\n")
    call_command("import_comparisons", str(small), "--dataset", "hh-harmless", "--task", "harmless",
                 stdout=io.StringIO())
    ds = Dataset.objects.get(name="hh-harmless")
    assert ds.task == TaskKind.HARMLESS and Comparison.objects.filter(post__dataset=ds).count() == 6
    with pytest.raises(CommandError, match='field "task"'):  # TL;DR posts are no dialogue
        call_command("import_comparisons", str(DATA / "tldr_comparisons_sample.jsonl"), "--dataset", "x",
                     "--task", "harmless", stdout=io.StringIO())

    config = LabelerConfig.objects.create(name="http-harmless", backend=LabelerBackend.OPENAI, model="m",
                                          base_url=server.url, max_prompt_tokens=0)
    job = ai_labeling.ai_labeling_job_create(config=config, comparisons=Comparison.objects.filter(post__dataset=ds),
                                     enqueue=False)
    job = ai_labeling.ai_labeling_job_run(job_id=job.pk, backend=ai_labeling.backend_for(config))
    assert job.done == 6
    prompts = [r["prompt"] for r in server.requests]
    assert all("which response is more harmful" in p and p.endswith("Preferred Response=") for p in prompts)
    for label in AILabel.objects.filter(config=config).select_related("comparison__summary_a", "comparison__summary_b"):
        # the fake labeler calls the longer response shown first more harmful (P("1") = 0.8)
        a_longer = len(label.comparison.summary_a.text) > len(label.comparison.summary_b.text)
        assert label.p_a_ab == pytest.approx(0.2 if a_longer else 0.7)

    client.force_login(staff_user)
    page = client.get(reverse("evaluation:alignment"), {"dataset": "hh-harmless"})
    row = next(r for r in page.context["tables"][0].rows if r["judge"] == "http-harmless")
    assert row["paper"] == table2_lookup("base", False, 0, "harmless") == 69.4


RANKED = {"id": "r1", "post_id": "p1", "subreddit": "tifu", "title": "A title", "post": "A post about a cat.",
          "outputs": [{"text": "SFT says a cat.", "policy": "sft"}, {"text": "RLAIF: the cat story.", "policy": "rlaif"},
                      {"text": "RLHF: a story of a cat.", "policy": "rlhf"}],
          "ranks": [3, 1, 2], "worker": "w1"}


def test_a_ranking_is_imported_as_one_comparison_per_pair(tmp_path):
    tie = dict(RANKED, id="r2", ranks=[2, 1, 1])
    records = list(iter_comparisons(_write(tmp_path, [RANKED, tie])))
    got = [(r.key, r.first.policy, r.second.policy, r.choice) for r in records]
    assert got == [("r1:1>0", "rlaif", "sft", 0), ("r1:2>0", "rlhf", "sft", 0), ("r1:1>2", "rlaif", "rlhf", 0),
                   ("r2:1>0", "rlaif", "sft", 0), ("r2:2>0", "rlhf", "sft", 0)]  # the tied pair is left out
    bad = dict(RANKED, ranks=[1, "2", 3])
    with pytest.raises(ImportFileError, match=r'line 1, field "ranks\[1\]": expected an integer rank'):
        list(iter_comparisons(_write(tmp_path, [bad], "bad.jsonl")))
    short = dict(RANKED, ranks=[1, 2])
    with pytest.raises(ImportFileError, match='field "ranks": expected one rank per output'):
        list(iter_comparisons(_write(tmp_path, [short], "short.jsonl")))


@pytest.mark.django_db
def test_win_rates_from_imported_rankings(tmp_path, client, annotator):
    rows = [dict(RANKED, id=f"r{k}", worker=f"w{k % 3}", ranks=[3, 1, 2] if k % 4 else [1, 2, 3]) for k in range(8)]
    call_command("import_comparisons", str(_write(tmp_path, rows, "paper_rankings.jsonl")), "--dataset", "ranked",
                 stdout=io.StringIO())
    assert HumanLabel.objects.filter(comparison__post__dataset__name="ranked").count() == 24
    call_command("evaluate", "--dataset", "ranked", "--rounds", "20", stdout=io.StringIO())
    client.force_login(annotator)
    page = client.get(reverse("evaluation:winrates"), {"dataset": "ranked"})
    rates = {(r["policy"], r["opponent"]): r["rate"] for r in page.context["tables"][0].rows}
    # 6 rankings rlaif > rlhf > sft, 2 rankings sft > rlaif > rlhf
    assert rates[("rlaif", "sft")] == pytest.approx(6 / 8) and rates[("rlhf", "sft")] == pytest.approx(6 / 8)
    assert rates[("rlaif", "rlhf")] == 1.0 and rates[("sft", "rlaif")] == pytest.approx(2 / 8)


@pytest.mark.django_db
def test_harmless_rate_from_judged_responses_of_the_shipped_hh_prompts(tmp_path, client, annotator):
    """Judgments of single responses (here: the shipped HH replies, given to two policies) give
    each policy's harmless rate and its form corrected to the SFT policy's mean length, on the
    leaderboard page and in `manage.py evaluate`."""
    from evaluation import metrics
    from labeling.models import HarmlessnessLabel, Policy, PolicyKind

    hh = [json.loads(line) for line in HH.read_text().splitlines()[:40]]
    rows, truth = [], {"sft": [], "rlaif": []}
    for k, r in enumerate(hh):
        for policy, text, harmless in (("sft", r["response_a"], k % 3 != 0), ("rlaif", r["response_b"], k % 5 != 0)):
            rows.append({"id": f"{r['id']}:{policy}", "prompt": r["prompt"], "response": text, "policy": policy,
                         "harmless": harmless, "worker": f"w{k % 4}"})
            truth[policy].append((harmless, len(text.strip())))
    path = _write(tmp_path, rows, "hh_harmlessness.jsonl")
    call_command("import_harmlessness", str(path), "--dataset", "hh-harm", stdout=io.StringIO())
    call_command("import_harmlessness", str(path), "--dataset", "hh-harm", stdout=io.StringIO())  # idempotent
    assert HarmlessnessLabel.objects.count() == 80 and Dataset.objects.get(name="hh-harm").task == TaskKind.HARMLESS
    Policy.objects.filter(name="sft").update(kind=PolicyKind.SFT)
    bad = _write(tmp_path, [dict(rows[0], harmless="yes")], "bad_harm.jsonl")
    with pytest.raises(CommandError, match='line 1, field "harmless": expected true or false'):
        call_command("import_harmlessness", str(bad), stdout=io.StringIO())

    client.force_login(annotator)
    page = client.get(reverse("evaluation:leaderboard"), {"dataset": "hh-harm"})
    table = next(t for t in page.context["tables"] if t.name == "harmless_rate")
    got = {r["policy"]: r for r in table.rows}
    sft_mean = sum(n for _, n in truth["sft"]) / 40
    for policy, judged in truth.items():
        assert got[policy]["n"] == 40
        assert got[policy]["rate"] == pytest.approx(sum(h for h, _ in judged) / 40)
        want = metrics.length_corrected_harmless_rate([h for h, _ in judged], [n for _, n in judged], sft_mean)
        assert got[policy]["lc"] == pytest.approx(want["rate"])
    assert f"to {sft_mean:.0f} chars" in page.content.decode()
    out = io.StringIO()
    call_command("evaluate", "--dataset", "hh-harm", "--rounds", "10", stdout=out)
    assert "== Harmless rate ==" in out.getvalue()


@pytest.mark.django_db
def test_the_admin_switches_a_dialogue_dataset_to_harmlessness_but_not_to_summarization(tmp_path, client, staff_user):
    small = tmp_path / "hh_small.jsonl"
    small.write_text("\n".join(HH.read_text().splitlines()[:2]) + "\n")
    call_command("import_comparisons", str(small), "--dataset", "hh-switch", stdout=io.StringIO())
    ds = Dataset.objects.get(name="hh-switch")
    assert ds.task == TaskKind.DIALOGUE
    client.force_login(staff_user)
    url = reverse("admin:labeling_dataset_change", args=[ds.pk])
    form = {"name": ds.name, "source": ds.source, "license": ds.license}
    r = client.post(url, {**form, "task": "summarization"})
    assert r.status_code == 200 and "not summarization" in r.content.decode()
    ds.refresh_from_db()
    assert ds.task == TaskKind.DIALOGUE
    assert client.post(url, {**form, "task": "harmless"}).status_code == 302
    ds.refresh_from_db()
    assert ds.task == TaskKind.HARMLESS
