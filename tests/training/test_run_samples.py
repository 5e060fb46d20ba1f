"""A policy's run shows, at its end, its own summaries of a few held-out posts beside their references."""
from __future__ import annotations

import pytest
from django.urls import reverse

from training import runner, services
from training.models import RunStatus

pytestmark = pytest.mark.django_db


def test_sft_run_stores_held_out_samples_and_its_page_shows_them(train_data, client, staff_user):
    run = services.training_run_create(
        kind="sft", dataset="tldr-test", base_artifact=train_data["lm"], enqueue=False,
        hyperparameters={"max_steps": 1, "batch_size": 4, "micro_batch_size": 4, "max_length": 96,
                         "max_summary_tokens": 16, "eval_fraction": 0.5, "show_samples": 2})
    assert runner.execute_run(run.pk) == RunStatus.DONE
    run.refresh_from_db()
    samples = run.summary["samples"]
    assert 1 <= len(samples) <= 2
    for s in samples:
        assert s["reference"] and isinstance(s["sample"], str) and s["title"] is not None
    client.force_login(staff_user)
    page = client.get(reverse("training:run_detail", args=[run.pk])).content.decode()
    assert "Sampled summaries of held-out posts" in page
    from django.utils.html import escape

    assert escape(samples[0]["reference"]) in page


def test_show_samples_zero_writes_none(train_data):
    run = services.training_run_create(
        kind="sft", dataset="tldr-test", base_artifact=train_data["lm"], enqueue=False,
        hyperparameters={"max_steps": 1, "batch_size": 4, "micro_batch_size": 4, "max_length": 96,
                         "max_summary_tokens": 16, "show_samples": 0})
    assert runner.execute_run(run.pk) == RunStatus.DONE
    run.refresh_from_db()
    assert run.summary["samples"] == []
