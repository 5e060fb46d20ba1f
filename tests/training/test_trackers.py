"""Experiment trackers through accelerate: off by default; a named tracker that is not installed
is skipped with a note; an installed one receives the run's configuration and every step's
numeric metrics, and is finished; a tracker that fails is dropped without failing the run."""
from __future__ import annotations

import pytest
from accelerate.tracking import GeneralTracker

from training import runner, services
from training.ml import trackers
from training.models import RunStatus

from .conftest import TINY


class FakeTracker(GeneralTracker):
    name = "fake"
    requires_logging_directory = False
    made: list[FakeTracker] = []

    def __init__(self, run_name, logging_dir, fail_on_log=False):
        super().__init__()
        self.run_name, self.logging_dir, self.fail_on_log = run_name, logging_dir, fail_on_log
        self.config, self.logged, self.finished = None, [], False
        FakeTracker.made.append(self)

    @property
    def tracker(self):
        return self

    def start(self):
        pass

    def store_init_configuration(self, values):
        self.config = values

    def log(self, values, step=None, **kwargs):
        if self.fail_on_log:
            raise RuntimeError("server gone")
        self.logged.append((step, values))

    def finish(self):
        self.finished = True


@pytest.fixture
def fake_registry(monkeypatch):
    FakeTracker.made.clear()
    monkeypatch.setitem(trackers.REGISTRY, "fake", (lambda: True, lambda run, d: FakeTracker(run, d)))
    monkeypatch.setitem(trackers.REGISTRY, "flaky", (lambda: True, lambda run, d: FakeTracker(run, d, fail_on_log=True)))
    monkeypatch.setitem(trackers.REGISTRY, "absent", (lambda: False, lambda run, d: FakeTracker(run, d)))
    return FakeTracker.made


def test_skips_unknown_and_missing_and_drops_a_failing_tracker(fake_registry, tmp_path):
    t = trackers.open_trackers("fake, absent, nope, flaky, fake", run_name="run-1", logging_dir=tmp_path,
                               config={"batch_size": 4, "nested": {"x": 1}})
    assert t.names == ["fake", "fake"] and len(fake_registry) == 2  # "fake" and "flaky" (one class), once each
    assert any("absent is not installed" in n for n in t.notes) and any("'nope' is unknown" in n for n in t.notes)
    t.log({"loss": 1.5, "note": "text", "ok": True}, step=3)
    assert fake_registry[0].logged == [(3, {"loss": 1.5})] and fake_registry[0].config == {"batch_size": 4}
    assert len(t.trackers) == 1 and any("stopped: could not log (RuntimeError)" in n for n in t.notes)
    t.finish()
    assert fake_registry[0].finished


@pytest.mark.django_db
def test_a_run_logs_to_the_configured_tracker(train_data, fake_registry, settings):
    tensorboard_missing = not trackers.REGISTRY["tensorboard"][0]()
    settings.TRAINING_TRACKERS = ["fake", "tensorboard"] if tensorboard_missing else ["fake"]
    run = services.training_run_create(kind="sft", dataset="tldr-test", base_artifact=train_data["lm"], enqueue=False,
                                       hyperparameters=dict(TINY, max_length=96, max_summary_tokens=16))
    runner.execute_run(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.DONE, run.error
    (fake,) = fake_registry
    assert fake.run_name == f"run-{run.pk}" and fake.config["kind"] == "sft" and fake.config["max_steps"] == 2
    assert [step for step, _ in fake.logged] == [1, 2] and all("loss" in m for _, m in fake.logged)
    assert fake.finished and "logging to fake" in run.log
    if tensorboard_missing:  # named but not installed: a note, not a failure
        assert "tracker tensorboard is not installed on this worker; skipped" in run.log


@pytest.mark.django_db
def test_trackers_are_off_by_default(train_data, fake_registry, settings):
    assert settings.TRAINING_TRACKERS == []
    run = services.training_run_create(kind="sft", dataset="tldr-test", base_artifact=train_data["lm"], enqueue=False,
                                       hyperparameters=dict(TINY, max_length=96, max_summary_tokens=16))
    runner.execute_run(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.DONE and fake_registry == [] and "logging to" not in run.log
