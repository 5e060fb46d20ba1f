"""The training pages: phases written by the runner at each transition, charts only for the
metrics a run kind has, the warning on a reward model no better than a trivial judge, and
compare-runs (several runs' curves on one chart; a GET that writes nothing)."""
from __future__ import annotations

import json

import pytest
from django.urls import reverse

from training import runner, services
from training.models import RunPhase, RunStatus, TrainingRun

from .conftest import TINY

pytestmark = pytest.mark.django_db


def test_runner_writes_each_phase(train_data, monkeypatch):
    seen: list[str] = []
    real = services.training_run_phase_set

    def record(*, run_id, phase, token=None):
        seen.append(phase)
        real(run_id=run_id, phase=phase, token=token)

    monkeypatch.setattr(services, "training_run_phase_set", record)
    at_step: dict[int, str] = {}
    run = services.training_run_create(
        kind="reward", label_source="human", dataset="tldr-test", base_artifact=train_data["lm"], eval_fraction=0.5,
        enqueue=False, hyperparameters=dict(TINY, max_length=96))
    assert run.phase == RunPhase.QUEUED
    runner.execute_run(run.pk, on_step=lambda step, total, m: at_step.setdefault(
        step, TrainingRun.objects.get(pk=run.pk).phase))
    run.refresh_from_db()
    assert run.status == RunStatus.DONE, run.error
    # loading model -> running -> evaluating (after the last step, on held-out labels) -> saving -> done
    assert seen == ["loading", "running", "evaluating", "saving"]
    assert at_step == {1: "running", 2: "evaluating"} and run.phase == RunPhase.DONE


def _done_run(kind: str, metrics: list[dict], summary: dict | None = None, name: str = "") -> TrainingRun:
    return TrainingRun.objects.create(kind=kind, name=name, base_checkpoint="x", status=RunStatus.DONE,
                                      phase=RunPhase.DONE, progress=1.0, metrics=metrics, summary=summary or {})


def test_charts_only_for_the_metrics_of_the_run_kind(client, staff_user):
    client.force_login(staff_user)
    sft = _done_run("sft", [{"step": 1, "loss": 2.0, "tokens_per_s": 10.0}])
    html = client.get(reverse("training:run_detail", args=[sft.pk])).content.decode()
    assert 'id="chart-loss"' in html and 'id="chart-speed"' in html
    assert 'id="chart-kl"' not in html and 'id="chart-reward"' not in html
    rl = _done_run("rl", [{"step": 1, "loss": 1.0, "reward": 0.1, "kl": 0.01, "samples_per_s": 3.0}])
    html = client.get(reverse("training:run_detail", args=[rl.pk])).content.decode()
    assert all(f'id="chart-{c}"' in html for c in ("loss", "reward", "kl", "speed"))


@pytest.mark.parametrize("rm, warned", [(0.57, True), (0.62, True), (0.70, False)])
def test_reward_model_no_better_than_a_trivial_judge_is_warned(client, staff_user, rm, warned):
    client.force_login(staff_user)
    run = _done_run("reward", [{"step": 1, "loss": 0.7}], summary={
        "rm_accuracy": rm, "longer_baseline_accuracy": 0.62, "overlap_baseline_accuracy": 0.66, "eval_pairs": 50})
    html = client.get(reverse("training:run_detail", args=[run.pk])).content.decode()
    assert ("no better than a trivial judge" in html) is (rm <= 0.66)
    assert ("beats trivial judges" in html) is (not warned)
    assert "0.660" in html  # the best trivial judge's accuracy is stated


def test_no_verdict_without_held_out_figures(client, staff_user):
    client.force_login(staff_user)
    run = _done_run("reward", [{"step": 1, "loss": 0.7}], summary={"train_pairs": 10})
    assert 'id="rm-verdict"' not in client.get(reverse("training:run_detail", args=[run.pk])).content.decode()


def test_compare_runs_overlays_chosen_runs_and_writes_nothing(client, staff_user, django_assert_max_num_queries):
    client.force_login(staff_user)
    a = _done_run("sft", [{"step": s, "loss": 3.0 - s / 10} for s in range(1, 6)], name="sft-a")
    b = _done_run("reward", [{"step": s, "loss": 0.7 - s / 100, "accuracy": 0.5 + s / 100} for s in range(1, 4)],
                  name="rm-b")
    url = reverse("training:run_compare") + f"?runs={a.pk}&runs={b.pk}&runs=999999&runs=x"
    before = TrainingRun.objects.values_list("pk", "phase", "status").order_by("pk")
    before = list(before)
    page = client.get(url)
    assert page.status_code == 200
    series = page.context["series"]
    assert [s["id"] for s in series] == [a.pk, b.pk]
    assert series[0]["points"] == [[s, 3.0 - s / 10] for s in range(1, 6)]
    assert page.context["metrics"] == ["loss", "accuracy"] and page.context["metric"] == "loss"
    acc = client.get(url + "&metric=accuracy").context["series"]
    assert acc[0]["points"] == [] and len(acc[1]["points"]) == 3
    assert list(TrainingRun.objects.values_list("pk", "phase", "status").order_by("pk")) == before
    assert json.loads(page.content.decode().split('id="compare-series" type="application/json">')[1]
                      .split("</script>")[0])[1]["label"].endswith("rm-b")


def test_training_pages_are_staff_only_with_the_site_403(client, annotator):
    client.force_login(annotator)
    for url in (reverse("training:run_list"), reverse("training:run_compare")):
        page = client.get(url)
        assert page.status_code == 403 and 'id="forbidden"' in page.content.decode()
