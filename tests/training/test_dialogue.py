"""SFT, reward models and RL on the shipped HH-RLHF (dialogue) data, from the shell and the form."""
from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from training import selectors, services
from training.models import ModelArtifact, RunStatus, TrainingRun
from .conftest import DATA

pytestmark = pytest.mark.django_db


@pytest.fixture
def hh(tmp_path, tiny_models, artifact_root):
    """The first 24 shipped HH comparisons as dataset 'hh-test', and the tiny GPT-2 as a base artifact."""
    from labeling.services.imports import comparisons_import

    lines = (DATA / "hh_rlhf_helpful_comparisons_sample.jsonl").read_text(encoding="utf-8").splitlines()[:24]
    path = tmp_path / "hh.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    comparisons_import(path=path, dataset="hh-test")
    ModelArtifact.objects.get_or_create(name="tiny-gpt2", defaults={"kind": "base", "path": str(tiny_models["causal_lm"])})
    from labeling.models import Dataset

    return Dataset.objects.get(name="hh-test")


def _train(*args: str) -> TrainingRun:
    out = io.StringIO()
    call_command("train", *args, stdout=out, stderr=io.StringIO())
    run = TrainingRun.objects.order_by("-pk").first()
    assert run.status == RunStatus.DONE, run.error
    return run


def test_sft_examples_of_a_dialogue_dataset_are_the_preferred_replies(hh):
    from labeling.models import HumanLabel

    examples = selectors.sft_examples(dataset=hh)
    assert len(examples) == HumanLabel.objects.filter(comparison__post__dataset=hh).count() == 24
    label = HumanLabel.objects.select_related("comparison__summary_a", "comparison__summary_b").first()
    preferred = label.comparison.summary_b if label.choice else label.comparison.summary_a
    assert any(ex["summary"] == preferred.text and ex["post"] == label.comparison.post.text for ex in examples)
    assert all(ex["post"].startswith("Human:") for ex in examples)


def test_sft_reward_and_rl_run_on_hh_from_the_shell(hh):
    sft = _train("--kind", "sft", "--dataset", "hh-test", "--base", "tiny-gpt2", "--set", "max_steps=1",
                 "--set", "batch_size=4", "--set", "max_length=96")
    rm = _train("--kind", "reward", "--dataset", "hh-test", "--base", "tiny-gpt2", "--source", "human",
                "--set", "max_steps=1", "--set", "max_length=96", "--set", "micro_batch_size=8")
    assert rm.hyperparameters["batch_size"] == 32  # the paper's dialogue RM batch size, as the task's default
    assert rm.summary["eval_pairs"] > 0
    rl = _train("--kind", "rl", "--dataset", "hh-test", "--base", f"artifact:{sft.artifacts.get().pk}",
                "--reward-artifact", f"artifact:{rm.artifacts.get().pk}", "--set", "max_steps=1",
                "--set", "batch_size=2", "--set", "max_new_tokens=4", "--set", "max_prompt_length=64",
                "--set", "optimizer=adamw")
    assert rl.step == 1


def test_the_dialogue_batch_default_applies_unless_set(train_data, hh):
    tldr = services.training_run_create(kind="reward", dataset="tldr-test", base_artifact="tiny-gpt2", enqueue=False)
    dialogue = services.training_run_create(kind="reward", dataset="hh-test", base_artifact="tiny-gpt2",
                                            enqueue=False)
    chosen = services.training_run_create(kind="reward", dataset="hh-test", base_artifact="tiny-gpt2",
                                          enqueue=False, batch_size=64)
    assert [r.hyperparameters["batch_size"] for r in (tldr, dialogue, chosen)] == [128, 32, 64]
    sft = services.training_run_create(kind="sft", dataset="hh-test", base_artifact="tiny-gpt2", enqueue=False)
    assert sft.hyperparameters["batch_size"] == 128  # only the reward model's differs in the paper


def test_the_form_leaves_the_batch_size_to_the_dataset(client, hh, monkeypatch, django_user_model):
    monkeypatch.setattr(services, "_enqueue", lambda run_id: None)
    staff = django_user_model.objects.create_user("boss", password="x-pass-123", is_staff=True, is_superuser=True)
    client.force_login(staff)
    form = client.get(reverse("training:run_new") + "?kind=reward").context["form"]
    assert form.fields["hp_batch_size"].initial == "" and "32 on dialogue datasets" in form.fields["hp_batch_size"].help_text
    data = {"kind": "reward", "dataset": hh.pk, "base_artifact": ModelArtifact.objects.get(name="tiny-gpt2").pk,
            "label_source": "human"}
    for name in form.param_names:
        value = form.fields[name].initial
        if not isinstance(value, bool) or value:
            data[name] = value
    response = client.post(reverse("training:run_new"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert TrainingRun.objects.get().hyperparameters["batch_size"] == 32
