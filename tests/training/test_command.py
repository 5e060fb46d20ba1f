"""`manage.py train` runs a run here with a progress bar."""
from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from training.models import ModelArtifact, RunStatus, TrainingRun

pytestmark = pytest.mark.django_db


def test_train_command_runs_sft_with_a_progress_bar(train_data):
    out, err = io.StringIO(), io.StringIO()
    call_command("train", "--kind", "sft", "--dataset", "tldr-test", "--base", "tiny-gpt2",
                 "--set", "max_steps=2", "--set", "batch_size=4", "--set", "max_length=64", stdout=out, stderr=err)
    run = TrainingRun.objects.get()
    assert run.status == RunStatus.DONE and run.step == 2
    assert "done" in out.getvalue() and ModelArtifact.objects.filter(run=run, kind="policy").exists()
    assert "2/2" in err.getvalue()  # the tqdm bar


def test_train_command_reports_bad_input(train_data):
    with pytest.raises(CommandError, match="unknown field"):
        call_command("train", "--kind", "sft", "--dataset", "tldr-test", "--base", "tiny-gpt2", "--set", "lr=1")
    with pytest.raises(CommandError, match="labeler_config"):
        call_command("train", "--kind", "reward", "--dataset", "tldr-test", "--source", "ai")


def test_train_command_lists_params():
    out = io.StringIO()
    call_command("train", "--kind", "rl", "--dataset", "x", "--list-params", stdout=out)
    assert "kl_beta" in out.getvalue() and "0.05" in out.getvalue()


def test_train_command_resumes_a_cancelled_run(train_data):
    from training import services

    run = services.training_run_create(kind="sft", dataset="tldr-test", base_artifact="tiny-gpt2", enqueue=False,
                                       max_steps=1, batch_size=4, max_length=64)
    services.training_run_cancel(run_id=run.pk)
    out = io.StringIO()
    call_command("train", "--kind", "sft", "--dataset", "tldr-test", "--resume", str(run.pk), stdout=out,
                 stderr=io.StringIO())
    run.refresh_from_db()
    assert run.status == RunStatus.DONE and f"run {run.pk} done" in out.getvalue()
    with pytest.raises(CommandError, match="only failed or cancelled"):
        call_command("train", "--kind", "sft", "--dataset", "tldr-test", "--resume", str(run.pk))
