"""Staff pages and permissions: launch, run page with live progress, cancel, resume; the admin."""
from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from training import services
from training.models import RunStatus, TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(services, "_enqueue", lambda run_id: calls.append(run_id))
    return calls


@pytest.fixture
def run(train_data):
    return services.training_run_create(kind="sft", dataset="tldr-test", base_artifact="tiny-gpt2", enqueue=False)


def test_anonymous_is_sent_to_log_in(client, run):
    for url in [reverse("training:run_list"), reverse("training:run_new"), reverse("training:run_detail", args=[run.pk])]:
        response = client.get(url)
        assert response.status_code == 302 and reverse("login") in response["Location"]


def test_non_staff_cannot_see_launch_cancel_or_resume(client, annotator, run, sent):
    client.force_login(annotator)
    assert client.get(reverse("training:run_list")).status_code == 403
    assert client.get(reverse("training:run_new")).status_code == 403
    assert client.post(reverse("training:run_new"), {"kind": "sft"}).status_code == 403
    assert client.post(reverse("training:run_cancel", args=[run.pk])).status_code == 403
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED)
    assert client.post(reverse("training:run_resume", args=[run.pk])).status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and not run.cancel_requested and sent == []
    assert TrainingRun.objects.count() == 1


def test_new_run_form_shows_the_paper_defaults(client, staff_user, train_data):
    client.force_login(staff_user)
    page = client.get(reverse("training:run_new") + "?kind=rl").content.decode()
    assert 'name="hp_kl_beta"' in page and 'value="0.05"' in page  # beta
    assert 'name="hp_temperature"' in page and 'value="0.9"' in page
    page = client.get(reverse("training:run_new") + "?kind=reward").content.decode()
    assert 'value="1e-05"' in page and 'value="1152"' in page  # lr 1e-5, 1,152 tokens


def test_staff_launches_a_run_from_the_form(client, staff_user, train_data, sent, django_capture_on_commit_callbacks):
    client.force_login(staff_user)
    form = client.get(reverse("training:run_new") + "?kind=reward").context["form"]
    data = {"kind": "reward", "dataset": train_data["dataset"].pk, "base_artifact": train_data["lm"].pk,
            "label_source": "ai", "labeler_config": train_data["config"].pk}
    for name in form.param_names:
        value = form.fields[name].initial
        if not isinstance(value, bool) or value:
            data[name] = value
    data["hp_max_steps"] = 3
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("training:run_new"), data)
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("training:run_detail", args=[run.pk])
    assert run.created_by == staff_user and run.label_source == "ai" and run.labeler_config == train_data["config"]
    assert run.hyperparameters["max_steps"] == 3 and run.hyperparameters["learning_rate"] == 1e-5
    assert sent == [run.pk]


def test_form_errors_are_shown_not_queued(client, staff_user, train_data, sent):
    client.force_login(staff_user)
    form = client.get(reverse("training:run_new") + "?kind=reward").context["form"]
    data = {"kind": "reward", "dataset": train_data["dataset"].pk, "base_artifact": train_data["lm"].pk,
            "label_source": "ai"}
    data.update({n: form.fields[n].initial for n in form.param_names if form.fields[n].initial is not False})
    response = client.post(reverse("training:run_new"), data)
    assert response.status_code == 200 and "AI labels need a labeler config" in response.content.decode()
    assert TrainingRun.objects.count() == 0 and sent == []


def test_run_page_polls_while_active_and_escapes_text(client, staff_user, run):
    client.force_login(staff_user)
    TrainingRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, step=2, total_steps=4, progress=0.5, log="<script>alert(1)</script>",
        metrics=[{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}])
    from django.utils import timezone

    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())
    page = client.get(reverse("training:run_detail", args=[run.pk])).content.decode()
    assert "chart-4.6.1.umd.min.js" in page and 'hx-trigger="every 2s"' in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    partial = client.get(reverse("training:run_progress", args=[run.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert 'width: 50%' in partial and '"loss": 1.5' in partial and "Cancel" in partial
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.DONE, progress=1.0)
    partial = client.get(reverse("training:run_progress", args=[run.pk])).content.decode()
    assert "hx-trigger" not in partial and "Cancel" not in partial


def test_stale_run_is_recovered_by_the_sweeper_not_by_a_view_and_can_be_resumed(client, staff_user, run, sent,
                                                                                django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from training import services

    client.force_login(staff_user)
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING,
                                                 heartbeat_at=timezone.now() - timedelta(hours=1))
    client.get(reverse("training:run_progress", args=[run.pk]))
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING  # a GET writes nothing: the sweeper finds dead workers
    assert services.training_runs_recover_stale(max_recoveries=0) == 1
    partial = client.get(reverse("training:run_progress", args=[run.pk])).content.decode()
    assert "worker running this run was lost once" in partial and "Resume" in partial
    with django_capture_on_commit_callbacks(execute=True):
        partial = client.post(reverse("training:run_resume", args=[run.pk]), HTTP_HX_REQUEST="true").content.decode()
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and sent == [run.pk] and 'hx-trigger="every 2s"' in partial


def test_staff_cancels_with_csrf(staff_user, run):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    url = reverse("training:run_cancel", args=[run.pk])
    assert client.post(url).status_code == 403  # no CSRF token
    client.get(reverse("training:run_detail", args=[run.pk]))
    token = client.cookies["csrftoken"].value
    assert client.post(url, HTTP_X_CSRFTOKEN=token).status_code == 302
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED


def test_admin_add_opens_the_launch_form_and_lists_runs(client, staff_user, run):
    client.force_login(staff_user)
    response = client.get(reverse("admin:training_trainingrun_add"))
    assert response.status_code == 302 and response["Location"] == reverse("training:run_new")
    assert client.get(reverse("admin:training_trainingrun_changelist")).status_code == 200
    assert client.get(reverse("admin:training_modelartifact_changelist")).status_code == 200
    assert client.get(reverse("training:run_list")).status_code == 200


def test_admin_cancel_action(client, staff_user, run):
    client.force_login(staff_user)
    response = client.post(reverse("admin:training_trainingrun_changelist"),
                           {"action": "cancel_runs", "_selected_action": [run.pk]})
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
