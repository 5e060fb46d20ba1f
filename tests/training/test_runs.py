"""Runs end to end through the services and the runner (the task body), on tiny models:
SFT -> RLHF RM and RLAIF RM -> RL against each -> sampling with comparisons queued; cancel,
worker loss, resume."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from labeling.models import Comparison, PolicyKind, Summary
from training import runner, services
from training.models import LabelSource, ModelArtifact, RunStatus, TrainingRun

from .conftest import TINY

pytestmark = pytest.mark.django_db


def _run(**kwargs) -> TrainingRun:
    run = services.training_run_create(enqueue=False, **kwargs)
    status = runner.execute_run(run.pk)
    run.refresh_from_db()
    assert status == run.status, run.error
    return run


@pytest.fixture
def sft_artifact(train_data) -> ModelArtifact:
    run = _run(kind="sft", dataset="tldr-test", base_artifact=train_data["lm"],
               hyperparameters=dict(TINY, max_length=96, max_summary_tokens=16, learning_rate=1e-3))
    assert run.status == RunStatus.DONE
    return run.artifacts.get()


def test_create_enqueues_on_commit_on_gpu_queue(train_data, monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    from training import tasks

    monkeypatch.setattr(tasks.run_training, "apply_async", lambda args, queue: sent.append((args, queue)))
    with django_capture_on_commit_callbacks(execute=True):
        run = services.training_run_create(kind="sft", dataset="tldr-test", base_artifact="tiny-gpt2", max_steps=1)
        assert sent == []  # nothing before the commit
    assert sent == [([run.pk], "gpu")]
    assert run.hyperparameters["max_steps"] == 1 and run.hyperparameters["learning_rate"] == 5e-5


@pytest.mark.parametrize("kwargs, field", [
    ({"kind": "sft", "dataset": "nope"}, "dataset"),
    ({"kind": "reward", "dataset": "tldr-test", "label_source": "ai"}, "labeler_config"),
    ({"kind": "rl", "dataset": "tldr-test", "base_artifact": "tiny-gpt2"}, "reward_artifact"),
    ({"kind": "sample", "dataset": "tldr-test", "base_artifact": "tiny-gpt2"}, "base_artifact"),
    ({"kind": "sft", "dataset": "tldr-test", "base_artifact": "tiny-gpt2", "hyperparameters": {"lr": 1}}, "hyperparameters"),
])
def test_create_rejects_bad_input_naming_the_field(train_data, kwargs, field):
    with pytest.raises(ValidationError) as err:
        services.training_run_create(enqueue=False, **kwargs)
    assert field in err.value.message_dict


def test_full_pipeline_rlhf_and_rlaif(train_data, sft_artifact, tiny_models):
    assert sft_artifact.policy.kind == PolicyKind.SFT
    assert sft_artifact.parents.get() == train_data["lm"]
    rm_kwargs = dict(dataset="tldr-test", base_artifact=train_data["lm"], eval_fraction=0.5,
                     hyperparameters=dict(TINY, max_length=96, learning_rate=1e-3))
    human_rm = _run(kind="reward", label_source="human", **rm_kwargs)
    ai_rm = _run(kind="reward", label_source="ai", labeler_config=train_data["config"], **rm_kwargs)
    for rm, source in [(human_rm, "human"), (ai_rm, "ai")]:
        assert rm.status == RunStatus.DONE, rm.error
        art = rm.artifacts.get()
        assert art.kind == "reward" and art.trained_on["source"] == source and art.trained_on["n_pairs"] > 0
        assert {"rm_accuracy", "longer_baseline_accuracy", "overlap_baseline_accuracy",
                "rm_accuracy_high_confidence"} <= set(rm.summary)
        assert [m["step"] for m in rm.metrics] == [1, 2]
    assert ai_rm.artifacts.get().trained_on["labeler_config"] == "noise"

    rl_params = dict(TINY, max_new_tokens=6, max_prompt_length=48, samples_per_prompt=2, max_examples=4)
    policies = {}
    for rm, kind in [(human_rm, PolicyKind.RLHF), (ai_rm, PolicyKind.RLAIF)]:
        rl = _run(kind="rl", dataset="tldr-test", base_artifact=sft_artifact, reward_artifact=rm.artifacts.get(),
                  hyperparameters=rl_params)
        assert rl.status == RunStatus.DONE, rl.error
        art = rl.artifacts.get()
        assert art.policy.kind == kind
        assert set(art.parents.all()) == {sft_artifact, rm.artifacts.get()}  # provenance to the labels
        assert art.trained_on["reward_trained_on"]["source"] == rm.label_source
        assert rl.metrics[0]["kl"] == pytest.approx(0.0, abs=1e-5)
        policies[kind] = art

    before = Comparison.objects.count()
    sample = _run(kind="sample", dataset="tldr-test", base_artifact=policies[PolicyKind.RLHF],
                  hyperparameters={"n_posts": 3, "max_new_tokens": 6, "eval_fraction": 0.5})
    assert sample.status == RunStatus.DONE, sample.error
    written = Summary.objects.filter(policy=policies[PolicyKind.RLHF].policy)
    assert written.count() == sample.summary["summaries"] > 0
    new = Comparison.objects.filter(pk__gt=0).count() - before
    assert new == sample.summary["new_comparisons"] > 0
    for c in Comparison.objects.filter(summary_a__in=written) | Comparison.objects.filter(summary_b__in=written):
        assert c.summary_a_id < c.summary_b_id and c.summary_a.post_id == c.summary_b.post_id == c.post_id


def test_failed_run_records_the_error(train_data, artifact_root):
    run = _run(kind="sft", dataset="tldr-test", base_checkpoint=str(artifact_root / "nonexistent" / "model"), max_steps=1)
    assert run.status == RunStatus.FAILED and "nonexistent" in run.error


def test_cancel_while_running_checkpoints_and_resume_finishes(train_data, monkeypatch):
    run = services.training_run_create(kind="sft", dataset="tldr-test", base_artifact="tiny-gpt2", enqueue=False,
                                       hyperparameters=dict(TINY, max_steps=4, epochs=2, checkpoint_every=100, max_length=64))
    monkeypatch.setattr(runner, "CANCEL_POLL_S", 0.0)
    seen = []

    def on_step(step, total, metrics):
        seen.append(step)
        if step == 2:
            services.training_run_cancel(run_id=run.pk)

    assert runner.execute_run(run.pk, on_step=on_step) == RunStatus.CANCELLED
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.step == 2 and run.checkpoint_path
    with pytest.raises(ValidationError):
        services.training_run_cancel(run_id=run.pk)
    services.training_run_resume(run_id=run.pk)
    assert runner.execute_run(run.pk) == RunStatus.DONE
    run.refresh_from_db()
    assert [m["step"] for m in run.metrics] == [1, 2, 3, 4] and run.artifacts.count() == 1


class _WorkerKilled(BaseException):
    """Stands for SIGKILL: no `except Exception` handler in the run sees it."""


def test_worker_lost_mid_run_is_marked_failed_and_resumes_from_checkpoint(train_data, monkeypatch):
    run = services.training_run_create(kind="sft", dataset="tldr-test", base_artifact="tiny-gpt2", enqueue=False,
                                       hyperparameters=dict(TINY, max_steps=4, epochs=2, checkpoint_every=2, max_length=64))

    def die(step, total, metrics):
        if step == 3:
            raise _WorkerKilled

    with pytest.raises(_WorkerKilled):
        runner.execute_run(run.pk, on_step=die)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING  # what a dead worker leaves behind
    # A live heartbeat protects it; a stale one gets it queued again from the checkpoint really
    # saved (step 2, though the run had logged step 3), up to the limit; then it fails saying so.
    assert services.training_runs_recover_stale() == 0
    stale = dict(heartbeat_at=timezone.now() - timedelta(minutes=10), step=3)
    TrainingRun.objects.filter(pk=run.pk).update(**stale)
    assert services.training_runs_recover_stale(max_recoveries=1) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and run.recoveries == 1 and run.lease_token == ""
    assert "queued again from the checkpoint saved at step 2 (recovery 1 of 1)" in run.log
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, **stale)
    assert services.training_runs_recover_stale(max_recoveries=1) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "lost 2 times" in run.error
    assert "checkpoint saved at step 2" in run.error and "step 3" not in run.error

    services.training_run_resume(run_id=run.pk)
    steps = []
    assert runner.execute_run(run.pk, on_step=lambda s, t, m: steps.append(s)) == RunStatus.DONE
    run.refresh_from_db()
    assert steps == [3, 4]  # continued from the checkpoint at step 2
    assert [m["step"] for m in run.metrics] == [1, 2, 3, 4]


def test_redelivered_job_of_a_dead_worker_takes_the_run_over(train_data, settings, monkeypatch):
    run = services.training_run_create(kind="sft", dataset="tldr-test", base_artifact="tiny-gpt2", enqueue=False,
                                       hyperparameters=dict(TINY, max_steps=2, max_length=64))
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_token="dead-worker",
                                                 heartbeat_at=timezone.now() - timedelta(hours=1))
    assert runner.execute_run(run.pk) == RunStatus.DONE
    run.refresh_from_db()
    assert run.recoveries == 1 and "its task was redelivered" in run.log and "taken over from the beginning" in run.log
    assert run.lease_token not in ("", "dead-worker") and run.artifacts.count() == 1

    # A duplicate delivery while a live worker's heartbeat keeps moving drops out and changes nothing.
    settings.JOB_STALE_S, settings.JOB_HEARTBEAT_S = 3, 0.5
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_token="live-worker",
                                                 heartbeat_at=timezone.now())
    beats = []

    def live_worker_beats(seconds):  # stands for the other worker's heartbeat thread
        beats.append(seconds)
        TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())

    monkeypatch.setattr(runner.time, "sleep", live_worker_beats)
    assert runner.execute_run(run.pk) == "skipped"
    run.refresh_from_db()
    assert beats and run.status == RunStatus.RUNNING and run.lease_token == "live-worker" and run.recoveries == 1


def test_direct_rlaif_reward_is_in_minus_one_one(train_data):
    fn = services.direct_rlaif_reward_fn(train_data["config"])
    rewards = fn([{"subreddit": "a", "title": "t", "post": "some post text " * 50}] * 2, ["short", "a summary"])
    assert len(rewards) == 2 and all(-1.0 <= r <= 1.0 for r in rewards)


def test_direct_rlaif_run_trains_a_direct_rlaif_policy(train_data, sft_artifact):
    run = _run(kind="rl", dataset="tldr-test", base_artifact=sft_artifact, labeler_config=train_data["config"],
               hyperparameters=dict(TINY, max_steps=1, max_new_tokens=4, max_prompt_length=48, max_examples=2))
    assert run.status == RunStatus.DONE and run.label_source == LabelSource.DIRECT_AI, run.error
    art = run.artifacts.get()
    assert art.policy.kind == PolicyKind.DIRECT_RLAIF and art.trained_on["labeler_config"] == "noise"
    assert -1.0 <= run.metrics[0]["reward"] <= 1.0


@pytest.mark.slow
def test_run_with_two_processes_under_accelerate_launch(train_data):
    """num_processes > 1: the worker trains through `accelerate launch` (CPU here, one per GPU there)."""
    run = _run(kind="sft", dataset="tldr-test", base_artifact="tiny-gpt2",
               hyperparameters=dict(TINY, max_steps=2, max_length=64, num_processes=2, precision="no"))
    assert run.status == RunStatus.DONE, run.error
    assert run.summary["processes"] == 2 and [m["step"] for m in run.metrics] == [1, 2]
    assert run.checkpoint_path and run.artifacts.get().policy.kind == PolicyKind.SFT
