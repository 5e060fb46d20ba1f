"""Issue 11, item 2: training settings are validated once (ranges declared beside each config
field) and refused alike by the service, the run form, the CLI and the plain-Python loops; a base
checkpoint is an artifact, a path inside ARTIFACT_ROOT or a Hugging Face id, never a server path."""
from __future__ import annotations

import dataclasses
import os

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from training import params as run_params
from training import services
from training.ml.common import ConfigValueError, config_from_dict
from training.ml.sft import SFTConfig
from training.models import ModelArtifact, TrainingRun

BAD = [
    ("sft", {"batch_size": -4}, "batch_size"),
    ("sft", {"batch_size": 0}, "batch_size"),
    ("reward", {"micro_batch_size": 0}, "micro_batch_size"),
    ("rl", {"checkpoint_every": 0}, "checkpoint_every"),
    ("reward", {"learning_rate": -1}, "learning_rate"),
    ("sft", {"learning_rate": 0}, "learning_rate"),
    ("sft", {"learning_rate": "nan"}, "learning_rate"),
    ("sft", {"max_steps": -5}, "max_steps"),
    ("rl", {"epochs": 10**9}, "epochs"),
    ("sft", {"num_processes": 1000}, "num_processes"),
    ("sft", {"optimizer": "sgd"}, "optimizer"),
    ("rl", {"temperature": 0}, "temperature"),
    ("sample", {"n_posts": -1}, "n_posts"),
    ("sft", {"policy_name": "p" * 201}, "policy_name"),
    ("sft", {"policy_name": "a\x00b"}, "policy_name"),
    ("sft", {"batch_size": "many"}, "batch_size"),
]


@pytest.fixture
def setup(db, settings, tmp_path):
    from labeling.models import Dataset, Policy, PolicyKind

    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    (settings.ARTIFACT_ROOT / "base").mkdir(parents=True)
    ds = Dataset.objects.create(name="hard")
    policy = Policy.objects.create(name="pol", kind=PolicyKind.SFT)
    base = ModelArtifact.objects.create(name="base-lm", kind="base", path=str(settings.ARTIFACT_ROOT / "base"))
    pol = ModelArtifact.objects.create(name="pol-art", kind="policy", path="base", policy=policy)
    return {"dataset": ds, "base": base, "policy_artifact": pol, "root": settings.ARTIFACT_ROOT}


def _create(setup, kind: str, hp: dict, **kwargs) -> TrainingRun:
    base = setup["policy_artifact"] if kind in ("sample", "rl") else setup["base"]
    if kind == "rl":
        kwargs.setdefault("label_source", "reward_model")
        kwargs.setdefault("reward_artifact", ModelArtifact.objects.create(name="rm", kind="reward", path="rm"))
    kwargs.setdefault("base_artifact", base)
    return services.training_run_create(kind=kind, dataset=setup["dataset"], hyperparameters=hp, enqueue=False,
                                        **kwargs)


@pytest.mark.parametrize("kind, hp, field", BAD)
def test_service_refuses_out_of_range_values_naming_the_field(setup, kind, hp, field):
    with pytest.raises(ValidationError) as err:
        _create(setup, kind, hp)
    message = " ".join(err.value.message_dict["hyperparameters"])
    assert field in message
    assert not TrainingRun.objects.exists()


def test_defaults_and_edge_values_are_accepted(setup):
    run = _create(setup, "sft", {"max_steps": 0, "batch_size": 1, "micro_batch_size": 1, "checkpoint_every": 1,
                                 "num_processes": 8, "epochs": 100})
    assert run.hyperparameters["max_steps"] == 0  # 0 is explicit: run all epochs
    assert _create(setup, "sample", {"temperature": 0}).hyperparameters["temperature"] == 0


def test_process_limit_comes_from_settings(setup, settings):
    settings.TRAINING_MAX_PROCESSES = 2
    with pytest.raises(ValidationError, match="num_processes"):
        _create(setup, "sft", {"num_processes": 3})
    assert _create(setup, "sft", {"num_processes": 2}).hyperparameters["num_processes"] == 2


def test_unknown_keys_refused(setup):
    with pytest.raises(ValidationError, match="lr"):
        _create(setup, "sft", {"lr": 1})
    with pytest.raises(ValidationError, match="hyperparameters"):
        _create(setup, "sft", [("batch_size", 4)])


def test_plain_python_configs_refuse_too():
    """training.ml.launch and any caller without Django go through config_from_dict."""
    with pytest.raises(ConfigValueError) as err:
        config_from_dict(SFTConfig, {"micro_batch_size": 0})
    assert err.value.field == "micro_batch_size"
    assert config_from_dict(SFTConfig, {"batch_size": "16"}).batch_size == 16


def test_every_tunable_field_declares_its_range():
    """A new number or text field must say what it accepts (`training.ml.common.ranged`); a bool needs nothing."""
    for kind, cls in run_params.ALGORITHM_CONFIGS.items():
        undeclared = [f.name for f in dataclasses.fields(cls) if f.name not in run_params.HIDDEN
                      and "limits" not in f.metadata and not isinstance(f.default, bool)]
        assert undeclared == [], f"{cls.__name__}: {undeclared}"
    undeclared = [f.name for f in dataclasses.fields(run_params.DataParams) if "limits" not in f.metadata]
    assert undeclared == []


@pytest.mark.parametrize("value", ["/etc", "../../..", "/", "~root", "a/b/c", "org/../../etc", "x\x00y"])
def test_base_checkpoint_refuses_server_paths(setup, value):
    with pytest.raises(ValidationError) as err:
        _create(setup, "sft", {}, base_artifact=None, base_checkpoint=value)
    assert "base_checkpoint" in err.value.message_dict


def test_base_checkpoint_resolves_symlinks_and_dotdot(setup):
    root = setup["root"]
    os.symlink("/etc", root / "evil")
    for value in [str(root / "evil"), str(root / "base" / ".." / ".." / "x"), str(root) + "/../../etc"]:
        with pytest.raises(ValidationError, match="outside ARTIFACT_ROOT"):
            _create(setup, "sft", {}, base_artifact=None, base_checkpoint=value)


def test_base_checkpoint_accepts_artifacts_root_paths_and_hub_ids(setup):
    root = setup["root"]
    inside = _create(setup, "sft", {}, base_artifact=None, base_checkpoint=str(root / "base" / "sub" / ".." ))
    assert inside.base_checkpoint == str((root / "base").resolve())
    hub = _create(setup, "sft", {}, base_artifact=None, base_checkpoint="HuggingFaceTB/SmolLM2-135M-Instruct")
    assert hub.base_checkpoint == "HuggingFaceTB/SmolLM2-135M-Instruct"
    art = _create(setup, "sft", {}, base_artifact=None, base_checkpoint=f"artifact:{setup['base'].pk}")
    assert art.base_artifact == setup["base"]


def test_cli_refuses_with_the_field_named(setup):
    with pytest.raises(CommandError, match="batch_size must be at least 1"):
        call_command("train", "--kind", "sft", "--dataset", "hard", "--base", "base-lm", "--set", "batch_size=-4",
                     "--enqueue")
    with pytest.raises(CommandError, match="base_checkpoint"):
        call_command("train", "--kind", "sft", "--dataset", "hard", "--base", "/etc", "--enqueue")
    assert not TrainingRun.objects.exists()


def test_form_puts_the_error_on_the_field(setup, client, staff_user):
    client.force_login(staff_user)
    data = {"kind": "sft", "dataset": setup["dataset"].pk, "base_artifact": setup["base"].pk, "label_source": "references"}
    data.update({f"hp_{name}": value for name, value in run_params.defaults("sft").items()})
    data["hp_checkpoint_every"] = 0
    response = client.post(reverse("training:run_new"), data)
    assert response.status_code == 200
    form = response.context["form"]
    assert "checkpoint_every must be at least 1" in " ".join(form.errors["hp_checkpoint_every"])
    data.update(hp_checkpoint_every=10, base_artifact="", base_checkpoint="/etc")
    response = client.post(reverse("training:run_new"), data)
    assert response.status_code == 200 and "base_checkpoint" in response.context["form"].errors
    assert not TrainingRun.objects.exists()
    data.update(base_checkpoint="", base_artifact=setup["base"].pk)
    assert client.post(reverse("training:run_new"), data).status_code == 302
    assert TrainingRun.objects.count() == 1
