"""Dashboard pages: log-in required, render for logged-in users, htmx partials, exports, the
worker-cache round trip, filters, escaping."""
from __future__ import annotations

import csv
import io
import json

import pytest
from django.urls import reverse

from evaluation import cache, services, tasks
from evaluation.models import CachedResult
from evaluation.selectors import Filters
from labeling.models import HumanLabel

pytestmark = pytest.mark.django_db

PAGES = ["alignment", "winrates", "leaderboard", "annotators"]


@pytest.fixture
def computed(small_world):
    services.refresh_dashboard(filters=Filters(), rounds=50)
    return small_world


@pytest.mark.parametrize("name", PAGES + ["index"])
def test_anonymous_is_redirected_to_login(client, name):
    r = client.get(reverse(f"evaluation:{name}"))
    assert r.status_code == 302 and r["Location"].startswith(reverse("login"))


def test_export_requires_login(client):
    r = client.get(reverse("evaluation:export", args=["alignment", "alignment", "csv"]))
    assert r.status_code == 302


@pytest.mark.parametrize("name", PAGES)
def test_pages_render_with_trivial_judges(client, annotator, staff_user, computed, no_queue, name):
    client.force_login(staff_user if name == "annotators" else annotator)
    r = client.get(reverse(f"evaluation:{name}"))
    assert r.status_code == 200
    html = r.content.decode()
    assert "Trivial: prefer the longer summary" in html
    assert "prefer more distinct words shared with the post" in html
    assert reverse("evaluation:alignment") in html  # tabs
    assert no_queue == []  # the cache is fresh: nothing to recompute


def test_alignment_figures_and_baseline_verdicts(client, annotator, computed, no_queue):
    client.force_login(annotator)
    rows = {r["judge"]: r for r in client.get(reverse("evaluation:alignment")).context["tables"][0].rows}
    good, biased = rows["judge-good"], rows["judge-biased"]
    # humans split on 2 of the 6 comparisons: 4 count; judge-good follows w1, who agrees there
    assert good["n"] == 4 and good["alignment"] == 1.0 and good["paper"] == 78.0
    assert good["position_bias"] == 0.0 and good["cost"] == "120 tokens"
    # judge-biased always prefers the first position in both orders
    assert biased["position_bias"] == 1.0 and biased["bias_first"] == 1.0
    # longer-summary judge: rl wrote the longer summary; humans preferred rl on 3 of those 4
    assert rows["Trivial: prefer the longer summary"]["alignment"] == pytest.approx(0.75)
    assert biased["alignment"] <= 0.75 and biased["verdict"] == "no better than a trivial judge"
    assert biased["badge"] == ("bad", "no better than a trivial judge") and biased["row_bad"]
    assert rows["Human-human agreement (ceiling)"]["alignment"] == pytest.approx(0.5)


def test_winrate_matrix_cells_and_drilldown(client, annotator, computed, no_queue):
    client.force_login(annotator)
    rl, sft = computed["rl"], computed["sft"]
    r = client.get(reverse("evaluation:winrates"))
    rows = {(x["policy"], x["opponent"]): x for x in r.context["tables"][0].rows}
    # humans: w1 prefers rl 5/6, w2 prefers rl 2/4 -> 7 of 10 labels
    assert rows[("rl", sft.name)]["rate"] == pytest.approx(0.7) and rows[("rl", sft.name)]["n"] == 10
    html = r.content.decode()
    assert "sft-&lt;b&gt;" in html and "sft-<b>" not in html  # policy names are escaped
    assert f'hx-get="{reverse("evaluation:winrate_cell")}?x={rl.pk}&amp;y={sft.pk}' in html
    cell = client.get(reverse("evaluation:winrate_cell"), {"x": rl.pk, "y": sft.pk}, HTTP_HX_REQUEST="true")
    assert cell.status_code == 200
    assert cell.content.decode().count("long summary") == 6
    judge = f"config:{computed['good'].pk}"
    r = client.get(reverse("evaluation:winrates"), {"judge": judge})
    rows = {(x["policy"], x["opponent"]): x for x in r.context["tables"][0].rows}
    assert rows[("rl", sft.name)]["rate"] == pytest.approx(5 / 6)
    r = client.get(reverse("evaluation:winrates"), {"judge": "trivial:longer"})
    rows = {(x["policy"], x["opponent"]): x for x in r.context["tables"][0].rows}
    assert rows[("rl", sft.name)]["rate"] == 1.0
    assert client.get(reverse("evaluation:winrate_cell"), {"x": "a"}).status_code == 400


def test_annotator_dashboard_is_staff_only(client, annotator, computed, no_queue):
    client.force_login(annotator)
    assert client.get(reverse("evaluation:annotators")).status_code == 403
    assert client.get(reverse("evaluation:export", args=["annotators", "annotators", "csv"])).status_code == 403
    assert reverse("evaluation:annotators") not in client.get(reverse("evaluation:alignment")).content.decode()


def test_leaderboard_and_annotators(client, annotator, staff_user, computed, no_queue):
    client.force_login(annotator)
    rows = client.get(reverse("evaluation:leaderboard")).context["tables"][0].rows
    assert [r["policy"] for r in rows][0] == "rl"
    assert rows[0]["rating_ci"][0] < rows[0]["rating"] < rows[0]["rating_ci"][1]
    client.force_login(staff_user)
    rows = {r["annotator"]: r for r in client.get(reverse("evaluation:annotators")).context["tables"][0].rows}
    assert rows["ann"]["n"] == 6 and rows["w2"]["n"] == 4
    assert rows["ann"]["gold_n"] == 1 and rows["ann"]["gold_acc"] == 1.0
    assert rows["ann"]["per_hour"] == pytest.approx(120.0)
    assert rows["ann"][f"j_config_{computed['good'].pk}"] == 1.0


@pytest.mark.parametrize("page,table", [("alignment", "alignment"), ("alignment", "paper_table2"),
                                        ("winrates", "winrates"), ("winrates", "winrates_by_judge"),
                                        ("leaderboard", "leaderboard"), ("annotators", "annotators"),
                                        ("annotators", "agreement")])
def test_csv_and_json_export(client, annotator, staff_user, computed, no_queue, page, table):
    client.force_login(staff_user if page == "annotators" else annotator)
    url = reverse("evaluation:export", args=[page, table, "csv"])
    r = client.get(url, {"dataset": "small"})
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode())))
    assert rows
    r = client.get(reverse("evaluation:export", args=[page, table, "json"]), {"dataset": "small"})
    data = json.loads(r.content)
    assert data["table"] == table and data["filters"] == {"dataset": "small"}
    assert len(data["rows"]) == len(rows)


def test_export_values_are_raw_numbers(client, annotator, computed, no_queue):
    client.force_login(annotator)
    r = client.get(reverse("evaluation:export", args=["winrates", "winrates", "json"]))
    row = next(x for x in json.loads(r.content)["rows"] if x["policy"] == "rl")
    assert row["rate"] == pytest.approx(0.7) and row["wilson_lo"] < 0.7 < row["wilson_hi"]
    assert client.get(reverse("evaluation:export", args=["winrates", "nope", "csv"])).status_code == 404
    assert client.get(reverse("evaluation:export", args=["winrates", "winrates", "xml"])).status_code == 404


def test_missing_cache_queues_one_refresh_and_worker_fills_it(client, annotator, small_world, no_queue,
                                                             django_capture_on_commit_callbacks):
    client.force_login(annotator)
    with django_capture_on_commit_callbacks(execute=True):
        r = client.get(reverse("evaluation:alignment"))
    assert r.status_code == 200 and "computing" in r.content.decode()
    assert len(no_queue) == 1
    with django_capture_on_commit_callbacks(execute=True):
        client.get(reverse("evaluation:leaderboard"))
    assert len(no_queue) == 1  # already pending: not queued twice
    status = client.get(reverse("evaluation:status"), HTTP_HX_REQUEST="true")
    assert "every 5s" in status.content.decode()
    n = tasks.refresh_dashboard_task(no_queue[0], rounds=20)  # what the worker runs
    assert n == HumanLabel.objects.count() + 12
    status = client.get(reverse("evaluation:status"), HTTP_HX_REQUEST="true")
    assert status["HX-Refresh"] == "true"
    r = client.get(reverse("evaluation:alignment"))
    assert "computed" in r.content.decode() and "Labels changed" not in r.content.decode()


def test_new_labels_mark_the_cache_stale(client, annotator, computed, no_queue, django_capture_on_commit_callbacks):
    comp, _ = computed["comps"][1]
    HumanLabel.objects.create(comparison=comp, worker_id="w3", choice=0, confidence=2)
    client.force_login(annotator)
    with django_capture_on_commit_callbacks(execute=True):
        r = client.get(reverse("evaluation:winrates"))
    assert "Labels changed" in r.content.decode()
    assert len(no_queue) == 1
    # win counts are live: the cached GROUP BY plus the same GROUP BY over labels written since
    rows = {(x["policy"], x["opponent"]): x for x in r.context["tables"][0].rows}
    sft = computed["sft"].name
    _, rl_is_a = computed["comps"][1]
    assert rows[("rl", sft)]["n"] == 11
    assert rows[("rl", sft)]["wins"] == 7 + (1 if rl_is_a else 0)


def test_refresh_is_staff_only_and_csrf_protected(annotator, staff_user, computed, no_queue,
                                                  django_capture_on_commit_callbacks):
    from django.test import Client

    c = Client(enforce_csrf_checks=True)
    c.force_login(annotator)
    assert c.post(reverse("evaluation:refresh"), {}).status_code in (302, 403)
    c.force_login(staff_user)
    assert c.post(reverse("evaluation:refresh"), {}).status_code == 403  # no CSRF token
    c = Client()
    c.force_login(staff_user)
    with django_capture_on_commit_callbacks(execute=True):
        r = c.post(reverse("evaluation:refresh"), {"dataset": "small"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and no_queue == [
        {"dataset": "small", "campaign": None, "date_from": None, "date_to": None}]
    assert cache.refresh_pending(Filters(dataset="small"))  # in flight until the worker stores it
    assert not CachedResult.objects.filter(key=cache.cache_key(Filters(dataset="small"))).exists()


def test_filters(client, annotator, computed, no_queue):
    client.force_login(annotator)
    r = client.get(reverse("evaluation:winrates"), {"campaign": "c1", "date_from": "2000-01-01"})
    assert r.status_code == 200
    assert r.context["filters"] == Filters(campaign="c1", date_from=__import__("datetime").date(2000, 1, 1))
    r = client.get(reverse("evaluation:winrates"), {"date_to": "2000-01-01"})
    assert r.context["matrix"] == []  # no labels before 2000
    r = client.get(reverse("evaluation:alignment"), {"dataset": "no-such"})
    assert r.status_code == 400
    r = client.get(reverse("evaluation:alignment"), {"date_from": "2020-02-02", "date_to": "2020-01-01"})
    assert r.status_code == 400 and b"must not be after" in r.content


def test_nav_links_to_evaluation(client, annotator):
    client.force_login(annotator)
    assert reverse("evaluation:index") in client.get(reverse("home")).content.decode()


def test_position_bias_split_is_a_share_of_the_biased_pairs(client, annotator, computed, no_queue):
    """The paper's "biased to 1st/2nd" columns: shares of the biased pairs, not of all pairs."""
    from labeling.models import AILabel, LabelerConfig

    cfg = LabelerConfig.objects.create(name="judge-mixed", model="tiny")
    orders = [(0.9, 0.2), (0.8, 0.3), (0.7, 0.1), (0.2, 0.8), (0.9, 0.9), (0.2, 0.1)]  # 3 first, 1 second, 2 not
    for (comp, _), (ab, ba) in zip(computed["comps"], orders):
        AILabel.objects.create(comparison=comp, config=cfg, p_a=(ab + 1 - ba) / 2, p_a_ab=ab, p_a_ba=ba)
    client.force_login(annotator)
    rows = {r["judge"]: r for r in client.get(reverse("evaluation:alignment")).context["tables"][0].rows}
    mixed = rows["judge-mixed"]
    assert mixed["position_bias"] == pytest.approx(4 / 6)
    assert mixed["bias_first"] == pytest.approx(3 / 4) and mixed["bias_second"] == pytest.approx(1 / 4)


def test_verdict_badge_beside_the_judge_name_with_a_legend(client, annotator, computed, no_queue):
    client.force_login(annotator)
    html = client.get(reverse("evaluation:alignment")).content.decode()
    assert 'judge-biased <span class="badge bad">no better than a trivial judge</span>' in html
    assert 'id="legend-alignment"' in html and "beats trivial judges" in html
    assert "<details><summary>more</summary>" in html  # secondary columns folded into each row


def test_drilldown_shows_each_ai_label_p_a_and_the_side_it_took(client, annotator, computed, no_queue):
    client.force_login(annotator)
    rl, sft, good = computed["rl"], computed["sft"], computed["good"]
    r = client.get(reverse("evaluation:winrate_cell"), {"x": rl.pk, "y": sft.pk, "judge": f"config:{good.pk}"})
    rows = r.context["rows"]
    assert len(rows) == 6
    w1_by_comp = {c.pk: w for (c, _), w in zip(computed["comps"], computed["w1"])}
    for row in rows:
        label = next(a for a in row["ai"] if a["name"] == "judge-good")
        assert label["selected"] and label["side"] == ("x" if w1_by_comp[row["comparison"].pk] == 1 else "y")
        assert label["p_a"] in (pytest.approx(0.9), pytest.approx(0.1))
    html = r.content.decode()
    assert "p(A) 0.9000 → rl" in html or "p(A) 0.1000 → rl" in html
    assert "p(A) 0.5000 → tie" in html  # judge-biased's exact ties on odd comparisons


def test_model_column_shows_artifact_names_not_server_paths(client, annotator, computed, no_queue, settings):
    from labeling.models import AILabel, LabelerConfig
    from training.models import ModelArtifact

    path = f"{settings.ARTIFACT_ROOT}/runs/17/final"
    ModelArtifact.objects.create(name="rlaif-labeler-v2", kind="base", path="runs/17/final")
    comp, _ = computed["comps"][0]
    for name, model in (("registered", path), ("unregistered", "/home/someone/secret/ckpt-9")):
        AILabel.objects.create(comparison=comp, config=LabelerConfig.objects.create(name=name, model=model), p_a=0.7)
    client.force_login(annotator)
    r = client.get(reverse("evaluation:alignment"))
    rows = {x["judge"]: x for x in r.context["tables"][0].rows}
    assert rows["registered"]["model"] == "rlaif-labeler-v2" and rows["unregistered"]["model"] == "ckpt-9"
    assert rows["judge-good"]["model"] == "tiny"
    html = r.content.decode()
    assert str(settings.ARTIFACT_ROOT) not in html and "/home/someone" not in html


def test_filter_form_submits_to_the_bare_path(client, annotator, computed, no_queue):
    """htmx appends the form's fields to hx-get: an empty hx-get would repeat the current query."""
    client.force_login(annotator)
    html = client.get(reverse("evaluation:winrates"), {"judge": "trivial:longer", "dataset": "small"}).content.decode()
    path = reverse("evaluation:winrates")
    assert f'action="{path}" hx-get="{path}"' in html


def test_quality_page_and_annotator_dashboard_state_the_same_time_per_label(client, staff_user, computed, no_queue):
    """One rule (labeling.formats.TIME_PER_LABEL): the mean recorded time, each capped at 10 minutes."""
    from labeling import formats

    for label, seconds in zip(HumanLabel.objects.filter(annotator__username="ann").order_by("pk"),
                              [20.0, 40.0, 5000.0, None, 30.0, 30.0]):
        label.time_taken_s = seconds
        label.save(update_fields=["time_taken_s"])
    want = (20 + 40 + 600 + 30 + 30) / 5
    client.force_login(staff_user)
    services.refresh_dashboard(filters=Filters(), rounds=10)
    r = client.get(reverse("evaluation:annotators"))
    row = next(x for x in r.context["tables"][0].rows if x["annotator"] == "ann")
    assert row["mean_s"] == pytest.approx(want) and row["per_hour"] == pytest.approx(3600 / want)
    quality = client.get(reverse("labeling:quality", args=[computed["campaign"].pk]))
    stats = next(s for s in quality.context["annotators"] if s.annotator == "ann")
    assert stats.seconds_per_label == pytest.approx(want) and stats.labels_per_hour == pytest.approx(3600 / want)
    assert formats.TIME_PER_LABEL in quality.content.decode() and formats.TIME_PER_LABEL in r.content.decode()
