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
