"""Every page of the rating, campaign, AI labeling and training flows in chromium at 390x844 (a
phone) and 1366x768: no page scrolls sideways (a wide table scrolls inside its own box), the
styled 403 page keeps the site's navigation, and compare-runs draws two runs' loss curves on one
chart."""
from __future__ import annotations

import pytest
from django.utils import timezone

from labeling.models import AILabel, AILabelingJob, JobStatus, LabelerConfig
from labeling.services.assignments import campaign_create, label_submit, assignment_next
from training.models import RunPhase, RunStatus, TrainingRun

from .conftest import LAPTOP, PHONE, log_in, new_page, no_horizontal_scroll, screenshot, typical_dataset

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.slow]


def _world(django_user_model):
    staff = django_user_model.objects.create_user("ui-staff", password="ui-pass-123", is_staff=True, is_superuser=True)
    rater = django_user_model.objects.create_user("ui-rater", password="ui-pass-123")
    ds = typical_dataset("ui-typical")
    campaign = campaign_create(name="UI campaign with a rather long name to wrap", dataset=ds,
                               annotators=[staff, rater], overlap=2)
    for user, side in ((staff, "left"), (rater, "right")):
        a = assignment_next(campaign=campaign, user=user)
        label_submit(user=user, assignment_id=a.pk, preferred=side, certainty=3, note_left="a fairly long note " * 8)
    config = LabelerConfig.objects.create(name="ui-config-with-a-long-name", backend="openai",
                                          model="meta-llama/Meta-Llama-3.1-70B-Instruct-with-a-long-suffix",
                                          base_url="http://127.0.0.1:9/v1", reachable=False,
                                          reachability_detail="connection refused: no server listens there",
                                          reachability_checked_at=timezone.now())
    job = AILabelingJob.objects.create(config=config, status=JobStatus.DONE, phase="done", total=3, done=3,
                                       started_at=timezone.now(), finished_at=timezone.now())
    comps = list(ds.posts.first().comparisons.all()[:1])
    job.comparisons.set(comps)
    AILabel.objects.create(comparison=comps[0], config=config, job=job, p_a=0.61, p_a_ab=0.6, p_a_ba=0.62,
                           consistent=True, error="")
    runs = []
    for i, (kind, offset) in enumerate((("sft", 0.0), ("sft", 0.4))):
        runs.append(TrainingRun.objects.create(
            kind=kind, name=f"sft-{i}", base_checkpoint="tiny", status=RunStatus.DONE, phase=RunPhase.DONE,
            progress=1.0, step=20, total_steps=20, hyperparameters={"max_steps": 20, "batch_size": 16},
            metrics=[{"step": s, "loss": 3.0 - s * 0.1 + offset, "tokens_per_s": 100.0} for s in range(1, 21)],
            log="step 1/20 loss=3\n" * 5))
    rm = TrainingRun.objects.create(
        kind="reward", name="rm-weak", base_checkpoint="tiny", status=RunStatus.DONE, phase=RunPhase.DONE,
        progress=1.0, metrics=[{"step": 1, "loss": 0.69, "accuracy": 0.5, "pairs_per_s": 9.0}],
        summary={"rm_accuracy": 0.57, "longer_baseline_accuracy": 0.62, "overlap_baseline_accuracy": 0.66,
                 "eval_pairs": 50})
    running = TrainingRun.objects.create(kind="rl", name="rl-running", base_checkpoint="tiny",
                                         status=RunStatus.RUNNING, phase=RunPhase.LOADING, total_steps=10)
    return {"campaign": campaign, "job": job, "runs": runs, "rm": rm, "running": running}


STAFF_PAGES = [
    ("campaigns", "/labeling/campaigns/"),
    ("history", "/labeling/campaigns/{campaign}/history/"),
    ("rate", "/labeling/campaigns/{campaign}/"),
    ("campaign-list", "/labeling/quality/"),
    ("campaign-page", "/labeling/quality/{campaign}/"),
    ("campaign-new", "/labeling/campaigns/new/"),
    ("ai-jobs", "/labeling/ai/"),
    ("ai-launch", "/labeling/ai/new/"),
    ("ai-job", "/labeling/ai/jobs/{job}/"),
    ("runs", "/training/"),
    ("run-new", "/training/new/"),
    ("run-sft", "/training/{sft}/"),
    ("run-rm", "/training/{rm}/"),
    ("run-running", "/training/{running}/"),
    ("compare", "/training/compare/?runs={sft}&runs={sft2}"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size, touch", [(PHONE, True), (LAPTOP, False)], ids=["phone", "laptop"])
def test_no_page_scrolls_sideways(require_postgres, live_server, browser_page, django_user_model, size, touch):
    w = _world(django_user_model)
    ids = {"campaign": w["campaign"].pk, "job": w["job"].pk, "sft": w["runs"][0].pk, "sft2": w["runs"][1].pk,
           "rm": w["rm"].pk, "running": w["running"].pk}
    page = new_page(browser_page, size, touch=touch)
    log_in(page, live_server.url, "ui-staff", "ui-pass-123")
    tag = "phone" if touch else "laptop"
    wide = []
    for name, path in STAFF_PAGES:
        page.goto(live_server.url + path.format(**ids))
        page.wait_for_load_state("networkidle")
        screenshot(page, f"{name}-{tag}")
        if not no_horizontal_scroll(page):
            wide.append(name)
    assert wide == []
    # The 403 page: styled, with the site's navigation, and no sideways scroll either.
    page.context.clear_cookies()
    log_in(page, live_server.url, "ui-rater", "ui-pass-123")
    resp = page.goto(live_server.url + "/training/")
    assert resp.status == 403
    assert page.locator("#forbidden").is_visible() and page.locator("#site-nav a", has_text="My campaigns").count() == 1
    screenshot(page, f"403-{tag}")
    assert no_horizontal_scroll(page)
    page.context.close()


@pytest.mark.django_db(transaction=True)
def test_compare_runs_overlays_two_loss_curves(require_postgres, live_server, browser_page, django_user_model):
    w = _world(django_user_model)
    a, b = w["runs"]
    page = new_page(browser_page, LAPTOP)
    log_in(page, live_server.url, "ui-staff", "ui-pass-123")
    # Tick the two runs on the run list, then compare.
    page.goto(f"{live_server.url}/training/")
    page.check(f'#runs input[name="runs"][value="{a.pk}"]')
    page.check(f'#runs input[name="runs"][value="{b.pk}"]')
    page.click("#compare-btn")
    page.wait_for_function("() => window.compareChart && window.compareChart.data.datasets.length > 0")
    screenshot(page, "compare-laptop")
    curves = page.evaluate("""() => window.compareChart.data.datasets.filter(d => !d.raw)
        .map(d => ({label: d.label, n: d.data.length, last: d.data[d.data.length - 1].y}))""")
    assert [c["label"] for c in curves] == [f"#{a.pk} sft-0", f"#{b.pk} sft-1"]
    assert all(c["n"] == 20 for c in curves)
    # No smoothing: the curves are the logged losses themselves.
    page.fill("#smoothing", "0")
    page.dispatch_event("#smoothing", "input")
    raw = page.evaluate("() => window.compareChart.data.datasets.map(d => d.data.map(p => p.y))")
    assert raw == [[3.0 - s * 0.1 for s in range(1, 21)],
                   [3.0 - s * 0.1 + 0.4 for s in range(1, 21)]]
    # Zoom on steps 5..10.
    page.fill("#x-min", "5")
    page.fill("#x-max", "10")
    assert page.evaluate("() => [window.compareChart.scales.x.min, window.compareChart.scales.x.max]") == [5, 10]
    # The chart is drawn (pixels on the canvas), and lies inside the page.
    assert page.evaluate("() => document.getElementById('compare-chart').getBoundingClientRect().height") > 100
    page.context.close()
