"""AI labeling jobs as their page shows them: phases (queued, loading model, running, done),
progress that moves within a chunk, a cancelled job whose counts settle, "Latest labels" refreshed
by the progress poll, and the "test connection" probe of labeler configs (HTTP server and local
model), whose answer never shows the API key or a server path."""
from __future__ import annotations

import http.server
import json
import threading

import pytest
from django.template.loader import render_to_string
from django.urls import reverse

from labeling.judges import probe
from labeling.judges.labeler import PairResult
from labeling.models import AIChunk, AILabelingJob, Comparison, Dataset, JobStatus, LabelerConfig, Policy, Post, Summary
from labeling.selectors import ai as ai_selectors
from labeling.services import ai_labeling
from labeling.services import connection

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def six_pairs(db):
    ds = Dataset.objects.create(name="live-test")
    pa, pb = Policy.objects.create(name="ref"), Policy.objects.create(name="ppo")
    out = []
    for i in range(6):
        post = Post.objects.create(dataset=ds, external_id=f"p{i}", subreddit="cats", title=f"T{i}", text=f"Post {i}.")
        a = Summary.objects.create(post=post, policy=pa, text=f"a{i}")
        b = Summary.objects.create(post=post, policy=pb, text=f"b{i}")
        out.append(Comparison.objects.create(post=post, summary_a=a, summary_b=b))
    return out


def test_job_phases_and_progress_within_a_chunk(six_pairs, monkeypatch):
    config = LabelerConfig.objects.create(name="fake", model="fake-model", batch_size=2)
    job = ai_labeling.ai_labeling_job_create(config=config, comparisons=six_pairs, enqueue=False)
    assert job.phase == "queued"
    seen = []

    def fake_label_pairs(backend, spec, pairs, exemplars=()):
        j = AILabelingJob.objects.get(pk=job.pk)
        p = ai_selectors.ai_labeling_job_progress(job=j)
        seen.append((j.phase, len(pairs), p.in_flight, p.percent))
        shown = render_to_string("labeling/ai/_progress.html", {"job": j, "p": p})
        assert f"{p.in_flight} / 6 ({p.percent}%)" in shown and "Loading model" in shown
        return [PairResult(key=x.key, p_a=0.7, p_a_ab=0.7, p_a_ba=0.7, consistent=True) for x in pairs]

    monkeypatch.setattr(ai_labeling, "label_pairs", fake_label_pairs)
    done = ai_labeling.ai_labeling_job_run(job_id=job.pk, chunk_size=6, backend=object())
    # One chunk of 6 labelled 2 pairs at a time; before each slice the page already counts the
    # pairs scored so far (not yet committed), so the bar moves within the chunk.
    assert [(phase, n, in_flight) for phase, n, in_flight, _ in seen] == [
        ("running", 2, 0), ("running", 2, 2), ("running", 2, 4)]
    assert [pct for *_, pct in seen] == [0.0, round(100 * 2 / 6, 1), round(100 * 4 / 6, 1)]
    assert done.status == JobStatus.DONE and done.phase == "done" and done.done == 6
    assert ai_selectors.ai_labeling_job_progress(job=done).in_flight == 0


def test_loading_phase_is_written_before_the_model_loads(six_pairs, monkeypatch):
    config = LabelerConfig.objects.create(name="fake2", model="fake-model", batch_size=8)
    job = ai_labeling.ai_labeling_job_create(config=config, comparisons=six_pairs, enqueue=False)
    phases = []

    def backend_for(cfg):
        phases.append(AILabelingJob.objects.get(pk=job.pk).phase)
        raise OSError("no such model")

    monkeypatch.setattr(ai_labeling, "backend_for", backend_for)
    failed = ai_labeling.ai_labeling_job_run(job_id=job.pk)
    assert phases == ["loading"] and failed.status == JobStatus.FAILED


def test_progress_poll_refreshes_latest_labels_and_cancel_settles(client, staff_user, six_pairs, monkeypatch):
    config = LabelerConfig.objects.create(name="fake3", model="fake-model", batch_size=3)
    job = ai_labeling.ai_labeling_job_create(config=config, comparisons=six_pairs, enqueue=False)
    monkeypatch.setattr(ai_labeling, "label_pairs", lambda backend, spec, pairs, exemplars=(): [
        PairResult(key=x.key, p_a=0.25, p_a_ab=0.25, p_a_ba=0.25, consistent=True) for x in pairs])
    ai_labeling.ai_labeling_job_run(job_id=job.pk, chunk_size=6, backend=object())
    client.force_login(staff_user)
    html = client.get(reverse("labeling:ai_job_progress", args=[job.pk])).content.decode()
    assert 'id="latest-labels" hx-swap-oob="true"' in html and "0.250" in html and "No labels yet" not in html
    assert "hx-trigger" not in html.split('id="latest-labels"')[0]  # finished: the poll stops

    # Cancelled while a worker still holds a live chunk: the box keeps polling and says why.
    job2 = ai_labeling.ai_labeling_job_create(config=config, comparisons=six_pairs[:3], enqueue=False)
    ai_labeling.ai_labeling_job_cancel(job=job2)
    from django.utils import timezone

    AIChunk.objects.create(job=job2, index=0, first_comparison_id=six_pairs[0].pk, last_comparison_id=six_pairs[2].pk,
                           size=3, status="leased", leased_by="w", lease_expires_at=timezone.now() + timezone.timedelta(minutes=1))
    html = client.get(reverse("labeling:ai_job_progress", args=[job2.pk])).content.decode()
    assert 'id="settling"' in html and "every 2s" in html and "Resume" not in html
    AIChunk.objects.filter(job=job2).update(status="done")
    html = client.get(reverse("labeling:ai_job_progress", args=[job2.pk])).content.decode()
    assert 'id="cancelled-final"' in html and "every 2s" not in html and "Resume" in html


# --- test connection ----------------------------------------------------------------------------


class _Models(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        if self.headers.get("Authorization") != "Bearer sk-secret-123":
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b"bad key sk-secret-123 for /srv/private/path")
            return
        body = json.dumps({"data": [{"id": "served-model"}, {"id": "other"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def models_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_probe_http(models_server):
    assert probe.probe_http(models_server, "served-model", api_key="sk-secret-123").ok
    wrong = probe.probe_http(models_server, "missing-model", api_key="sk-secret-123")
    assert not wrong.ok and "does not serve missing-model" in wrong.detail and "served-model" in wrong.detail
    denied = probe.probe_http(models_server, "served-model", api_key="nope")
    assert not denied.ok and "HTTP 401" in denied.detail and "sk-secret" not in denied.detail
    assert "/srv/private" not in denied.detail
    refused = probe.probe_http("http://127.0.0.1:9/v1", "m", timeout=2)
    assert not refused.ok and "refused" in refused.detail


def test_probe_local(tiny_models, tmp_path):
    ok = probe.probe_local(str(tiny_models["causal_lm"]))
    assert ok.ok and str(tiny_models["causal_lm"]) not in ok.detail
    missing = probe.probe_local(str(tmp_path / "nowhere"))
    assert not missing.ok and str(tmp_path) not in missing.detail


def test_connection_test_from_page_and_admin(client, staff_user, models_server, monkeypatch,
                                            django_capture_on_commit_callbacks):
    monkeypatch.setenv("RLAIF_LABELER_TEST_KEY", "sk-secret-123")
    config = LabelerConfig.objects.create(name="served", backend="openai", model="served-model",
                                          base_url=models_server, api_key_env="RLAIF_LABELER_TEST_KEY")
    down = LabelerConfig.objects.create(name="down", backend="openai", model="m", base_url="http://127.0.0.1:9/v1")
    queued = []
    from labeling.tasks import connection as task_module

    monkeypatch.setattr(task_module.probe_labeler_connection, "apply_async",
                        lambda args, queue: queued.append((args[0], queue)))
    client.force_login(staff_user)
    with django_capture_on_commit_callbacks(execute=True):
        row = client.post(reverse("labeling:labeler_config_test", args=[config.pk]), HTTP_HX_REQUEST="true")
    assert row.status_code == 200 and "testing" in row.content.decode() and "every 2s" in row.content.decode()
    assert queued == [(config.pk, "gpu")]
    # The worker side (what the task runs on queue gpu):
    connection.labeler_config_test_run(config_id=config.pk)
    connection.labeler_config_test_run(config_id=down.pk, timeout=2)
    config.refresh_from_db(), down.refresh_from_db()
    assert config.reachable is True and down.reachable is False
    page = client.get(reverse("labeling:ai_job_list")).content.decode()
    assert "reachable" in page and "cannot be reached" in page and "sk-secret-123" not in page
    launch = client.get(reverse("labeling:ai_job_launch")).content.decode()
    assert 'id="unreachable-configs"' in launch and "down" in launch
    # Admin action queues the same probe.
    client.post(reverse("admin:labeling_labelerconfig_changelist"),
                {"action": "test_connection", "_selected_action": [down.pk]})
    down.refresh_from_db()
    assert down.reachable is None and down.reachability_detail.startswith("Testing")


def test_read_only_admin_change_pages_offer_no_save_button(client, staff_user, six_pairs):
    from training.models import TrainingRun

    config = LabelerConfig.objects.create(name="adm", model="m")
    job = ai_labeling.ai_labeling_job_create(config=config, comparisons=six_pairs, enqueue=False)
    run = TrainingRun.objects.create(kind="sft", base_checkpoint="x")
    client.force_login(staff_user)
    for url in (reverse("admin:labeling_ailabelingjob_change", args=[job.pk]),
                reverse("admin:training_trainingrun_change", args=[run.pk])):
        html = client.get(url).content.decode()
        assert 'name="_save"' not in html and 'name="_continue"' not in html and 'name="_addanother"' not in html
    # an editable one keeps them
    assert 'name="_save"' in client.get(reverse("admin:labeling_labelerconfig_change", args=[config.pk])).content.decode()
