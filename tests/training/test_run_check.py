"""training_run_check (Zulip's check_* half of training_run_create): it resolves and validates a
run's settings, fills in the kind's defaults, and writes nothing."""
from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from training import services
from training.models import LabelSource, TrainingRun

pytestmark = pytest.mark.django_db


def test_check_returns_the_fields_a_run_gets_and_writes_nothing(train_data):
    fields = services.training_run_check(kind="sft", dataset="tldr-test", base_artifact="tiny-gpt2", max_steps=2)
    assert TrainingRun.objects.count() == 0
    assert fields["dataset"].name == "tldr-test"
    assert fields["base_artifact"].name == "tiny-gpt2"
    assert fields["base_checkpoint"] == f"artifact:{fields['base_artifact'].pk}"
    assert fields["label_source"] == LabelSource.REFERENCES
    assert fields["hyperparameters"]["max_steps"] == 2 and fields["hyperparameters"]["learning_rate"] == 5e-5
    run = services.training_run_create(enqueue=False, kind="sft", dataset="tldr-test", base_artifact="tiny-gpt2",
                                       max_steps=2)
    assert {k: getattr(run, k) for k in fields} == fields


def test_check_refuses_naming_the_field_and_writes_nothing(train_data):
    with pytest.raises(ValidationError) as err:
        services.training_run_check(kind="reward", dataset="tldr-test", label_source="hybrid")
    assert err.value.message_dict == {"labeler_config": ["Hybrid labels need a labeler config"]}
    assert TrainingRun.objects.count() == 0


@pytest.mark.parametrize("kind, kwargs, algorithm, extra", [
    ("sft", {}, "sft", set()),
    ("reward", {"base_artifact": "tiny-gpt2", "label_source": "human"}, "reward", {"eval_data"}),
])
def test_several_processes_go_through_launch_with_the_kinds_data(train_data, monkeypatch, kind, kwargs, algorithm,
                                                                 extra):
    from training import runner
    from training.ml.common import TrainResult
    from training.models import RunStatus

    calls = []

    def fake_launch(algo_name, algo, records, out_dir, rec, processes, resume_from, **kw):
        calls.append((algo_name, len(records), processes, set(kw)))
        return TrainResult("stopped", 0, 1)

    monkeypatch.setattr(runner, "_launch", fake_launch)
    run = services.training_run_create(enqueue=False, kind=kind, dataset="tldr-test",
                                       **{"base_artifact": "tiny-gpt2", **kwargs}, num_processes=2, max_steps=1)
    assert runner.execute_run(run.pk) == RunStatus.CANCELLED
    [(name, n_records, processes, kw)] = calls
    assert (name, processes, kw) == (algorithm, 2, extra) and n_records > 0
