"""The hybrid label source (selector, export, training runs), the calibration section of the alignment
page, the Routing dashboard with its exports, and routing reports (page launch, command, real runs)."""
from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from evaluation import calibration
from evaluation.models import RoutingReport
from labeling.models import AILabel, Campaign, HumanLabel
from labeling.selectors.trust import hybrid_labels
from labeling.services.routing import routing_campaign_create
from training import services as training_services
from training.models import LabelSource, RunStatus

from .conftest import make_world

pytestmark = pytest.mark.django_db


def test_hybrid_labels_take_humans_where_there_are_some_with_provenance(world):
    comps = world["comps"]
    rows = hybrid_labels(dataset=world["dataset"], config=world["cfg_a"])
    assert [r.source for r in rows] == ["human"] * 8  # every pair has a human label
    HumanLabel.objects.filter(comparison__in=comps[4:]).delete()
    HumanLabel.objects.create(comparison=comps[0], worker_id="w2", choice=1)  # a split vote: p(A) 0.5
    rows = {r.comparison_id: r for r in hybrid_labels(dataset=world["dataset"], config=world["cfg_a"])}
    assert rows[comps[0].pk].source == "human" and rows[comps[0].pk].p_a == 0.5 and rows[comps[0].pk].n_human == 2
    assert rows[comps[1].pk].p_a == 0.0  # the human chose B
    assert rows[comps[4].pk].source == "ai" and rows[comps[4].pk].p_a == pytest.approx(0.52)
    assert rows[comps[4].pk].ai_label_id == AILabel.objects.get(config=world["cfg_a"], comparison=comps[4]).pk
    assert comps[7].pk not in rows  # no human label and a failed AI label: nothing to train on
    only = hybrid_labels(dataset=world["dataset"], config=world["cfg_a"], human_comparison_ids=[comps[1].pk])
    assert {r.comparison_id: r.source for r in only}[comps[0].pk] == "ai"


def test_export_preferences_source_hybrid(world, tmp_path, capsys):
    comps = world["comps"]
    HumanLabel.objects.filter(comparison__in=comps[2:]).delete()
    out = tmp_path / "h.csv"
    call_command("export_preferences", "--format", "csv", "--source", "hybrid", "--labeler-config",
                 world["cfg_a"].name, "--dataset", world["dataset"].name, str(out))
    assert "7 hybrid pairs (2 from humans, 5 from hy-cfg-a)" in capsys.readouterr().err
    rows = list(csv.DictReader(out.open()))
    assert [r["provenance"] for r in rows] == ["human", "human"] + ["ai"] * 5
    assert rows[2]["p_a"] == "0.9" and rows[2]["labeler"] == world["cfg_a"].name and rows[2]["preferred"] == "A"
    trl = tmp_path / "h.jsonl"
    call_command("export_preferences", "--format", "trl", "--source", "hybrid", "--labeler-config",
                 world["cfg_a"].name, str(trl))
    lines = [json.loads(x) for x in trl.read_text().splitlines()]
    assert len(lines) == 7 and lines[1]["provenance"] == "human" and lines[1]["p_chosen"] == 1.0
    assert lines[5]["provenance"] == "ai" and lines[5]["p_chosen"] == pytest.approx(0.55)  # p(A) 0.45: B chosen
    for args, msg in [(["--source", "hybrid"], "needs --labeler-config"),
                      (["--source", "human", "--labeler-config", "x"], "needs --source ai or hybrid"),
                      (["--source", "ai", "--human-campaign", "x"], "needs --source hybrid"),
                      (["--source", "hybrid", "--labeler-config", "nope"], "no labeler config named 'nope'"),
                      (["--source", "hybrid", "--labeler-config", world["cfg_a"].name, "--human-campaign", "nope"],
                       "no campaign named 'nope'")]:
        with pytest.raises(CommandError, match=msg):
            call_command("export_preferences", "--format", "csv", *args, str(tmp_path / "x.csv"))


def test_training_refuses_hybrid_without_config_or_with_an_unknown_campaign(world):
    from training.models import ModelArtifact

    ModelArtifact.objects.create(name="base", kind="base", path="base")
    common = dict(kind="reward", dataset=world["dataset"].name, base_artifact="base", enqueue=False)
    for kwargs, field in [(dict(label_source="hybrid"), "labeler_config"),
                          (dict(label_source="hybrid", labeler_config=world["cfg_a"], hybrid_campaign="nope"),
                           "hyperparameters"),
                          (dict(label_source="human", hybrid_campaign="x"), "hyperparameters")]:
        with pytest.raises(ValidationError) as err:
            training_services.training_run_create(**common, **kwargs)
        assert field in err.value.message_dict
    run = training_services.training_run_create(**common, label_source="hybrid", labeler_config=world["cfg_a"])
    assert run.label_source == LabelSource.HYBRID and run.hyperparameters["hybrid_campaign"] == ""


def test_calibration_section_numbers_match_the_definitions(client, world, annotator):
    url = reverse("evaluation:calibration") + f"?dataset={world['dataset'].name}"
    assert client.get(url).status_code == 302
    client.force_login(annotator)
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert world["cfg_a"].name in html and "Trivial: prefer the longer summary" in html
    # cfg-a on pairs 0..6 (pair 7 failed): humans prefer A on even pairs
    p = [0.9, 0.9, 0.9, 0.9, 0.52, 0.45, 0.6]
    h = [1, 0, 1, 0, 1, 0, 1]
    expected = calibration.calibration_summary(p, h)
    data = json.loads(client.get(reverse("evaluation:calibration_export", args=["json"])
                                 + f"?dataset={world['dataset'].name}").content)
    row = next(r for r in data["rows"] if r["judge"] == world["cfg_a"].name)
    assert row["n"] == 7 and row["ece"] == pytest.approx(expected["ece"]) and row["brier"] == pytest.approx(expected["brier"])
    # by hand: right on 0, 2, 4(0.52 vs A), 5(0.45 vs B), 6 -> 5/7; Brier
    assert row["alignment"] == pytest.approx(5 / 7)
    assert row["brier"] == pytest.approx((0.01 + 0.81 + 0.01 + 0.81 + 0.2304 + 0.2025 + 0.16) / 7)
    assert b"hy-cfg-a" in client.get(reverse("evaluation:calibration_export", args=["csv"])).content
    assert client.get(reverse("evaluation:calibration_export", args=["xml"])).status_code == 404
    assert client.get(reverse("evaluation:calibration") + "?dataset=nope").status_code == 400
    # the alignment page loads the section
    alignment = client.get(reverse("evaluation:alignment"))
    assert alignment.status_code == 200 and reverse("evaluation:calibration").encode() in alignment.content


def test_routing_dashboard_curves_and_exports(client, world, annotator):
    client.force_login(annotator)
    q = f"?dataset={world['dataset'].name}&config={world['cfg_a'].name}&criterion=margin"
    page = client.get(reverse("evaluation:routing") + q)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="routing-chart"' in html and 'id="routing-data"' in html and "routing-headline" in html
    assert "Queue the three runs" not in html  # launching is for staff
    rows = list(csv.DictReader(io.StringIO(client.get(reverse("evaluation:routing_export", args=["csv"]) + q)
                                           .content.decode())))
    assert len(rows) == 21 and rows[0]["budget"] == "0.0" and float(rows[-1]["uncertainty"]) == 1.0
    # 7 usable pairs, the AI right on 5: random is the straight line from 5/7
    assert float(rows[0]["random"]) == pytest.approx(5 / 7)
    assert rows[10]["k"] == "4" and float(rows[10]["random"]) == pytest.approx(5 / 7 + 4 / 7 * 2 / 7)
    data = json.loads(client.get(reverse("evaluation:routing_export", args=["json"]) + q).content)
    assert data["n_used"] == 7 and data["headline"]["ai_accuracy"] == pytest.approx(5 / 7)
    assert client.get(reverse("evaluation:routing_export", args=["csv"])).status_code == 400
    assert client.get(reverse("evaluation:routing_export", args=["pdf"]) + q).status_code == 404
    assert client.get(reverse("evaluation:routing")).status_code == 200
    assert client.get(reverse("evaluation:routing") + "?dataset=nope&config=x").status_code == 400


def test_routing_report_launch_is_staff_only_with_csrf(client, world, staff_user, annotator, monkeypatch,
                                                        django_capture_on_commit_callbacks):
    from training.models import ModelArtifact

    ModelArtifact.objects.create(name="tiny-base", kind="base", path="base")
    sent = []
    monkeypatch.setattr(training_services, "_enqueue", lambda run_id: sent.append(run_id))
    url = reverse("evaluation:routing_report_launch")
    data = {"dataset": world["dataset"].name, "config": world["cfg_a"].name, "criterion": "margin", "budget": 0.3,
            "hyperparameters": "max_steps=2\neval_fraction=0.25"}
    client.force_login(annotator)
    assert client.post(url, data).status_code == 403
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff_user)
    assert strict.post(url, data).status_code == 403
    client.force_login(staff_user)
    assert client.get(url).status_code == 405
    bad = client.post(url, {**data, "hyperparameters": "lr=1"})
    assert bad.status_code == 400 and b"unknown field" in bad.content
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(url, data)
    assert r.status_code == 302
    report = RoutingReport.objects.get()
    runs = [report.hybrid_run, report.human_run, report.ai_run]
    assert [x.label_source for x in runs] == ["hybrid", "human", "ai"] and sorted(sent) == sorted(x.pk for x in runs)
    assert report.hybrid_run.hyperparameters["hybrid_campaign"] == report.campaign.name
    assert all(str(x.hyperparameters["max_steps"]) == "2" for x in runs)
    assert not report.campaign.is_active and report.campaign.routing_picks.count() >= 1
    # the page shows the accuracies once the runs are done
    for run, acc in zip(runs, (0.61, 0.66, 0.52)):
        run.status, run.summary = RunStatus.DONE, {"rm_accuracy": acc, "eval_pairs": 3, "train_pairs": 5}
        run.save()
    page = client.get(reverse("evaluation:routing") + f"?dataset={world['dataset'].name}&config={world['cfg_a'].name}")
    html = page.content.decode()
    assert "0.610" in html and "0.660" in html and "0.520" in html and "Queue the three runs" in html


def test_routing_report_command_simulates_and_validates(world, capsys):
    call_command("routing_report", "--config", world["cfg_a"].name, "--simulate-only")
    out = capsys.readouterr().out
    assert "7 pairs, AI agreement 71.4%" in out and "random routing reaches" in out
    with pytest.raises(CommandError, match="no labeler config"):
        call_command("routing_report", "--config", "nope")
    with pytest.raises(CommandError, match="budget: must be a share strictly between 0 and 1"):
        call_command("routing_report", "--config", world["cfg_a"].name, "--budget", "1.5")
    with pytest.raises(CommandError, match="--set 'x': expected KEY=VALUE"):
        call_command("routing_report", "--config", world["cfg_a"].name, "--set", "x")
    assert not RoutingReport.objects.exists() and not Campaign.objects.exists()


@pytest.mark.slow
def test_routing_report_runs_three_reward_models_here(train_data, capsys):
    from labeling.services.routing import trust_signals_backfill

    trust_signals_backfill()
    call_command("routing_report", "--config", "noise", "--dataset", "tldr-test", "--budget", "0.3", "--run-here",
                 "--base", "tiny-gpt2", "--set", "max_steps=2", "--set", "batch_size=4", "--set", "micro_batch_size=4",
                 "--set", "max_length=96", "--set", "eval_fraction=0.5")
    out = capsys.readouterr().out
    report = RoutingReport.objects.get()
    runs = {"hybrid": report.hybrid_run, "human": report.human_run, "ai": report.ai_run}
    for run in runs.values():
        run.refresh_from_db()
        assert run.status == RunStatus.DONE, run.error
        assert run.summary["rm_accuracy"] is not None and run.summary["eval_pairs"] > 0
    trained = runs["hybrid"].artifacts.get().trained_on
    routed = report.campaign.items.count()
    assert trained["n_human_pairs"] == routed and trained["n_ai_pairs"] > 0
    assert runs["human"].summary["eval_pairs"] == runs["hybrid"].summary["eval_pairs"] == runs["ai"].summary["eval_pairs"]
    assert out.count("held-out accuracy") == 3
