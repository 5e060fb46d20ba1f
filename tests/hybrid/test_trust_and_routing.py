"""Stored trust signals (written with the label, backfilled for old ones), routed campaigns (service,
command, staff page, admin action) and what annotators see of them."""
from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from labeling.models import AILabel, AILabelTrust, Campaign, LabelerConfig, RoutingPick
from labeling.services import ai_labeling
from labeling.services.assignments import CampaignError
from labeling.services.routing import routing_campaign_create, trust_signals_backfill

from .conftest import make_world

pytestmark = pytest.mark.django_db


def test_a_job_stores_the_signals_with_each_label_including_sample_spread(sample_backend):
    w = make_world(n=3, name="job")
    AILabel.objects.all().delete()
    cfg = LabelerConfig.objects.create(name="sc3", model="fake", chain_of_thought=True, self_consistency_n=2,
                                       temperature=0.7)
    job = ai_labeling.ai_labeling_job_create(config=cfg, comparisons=w["comps"], enqueue=False)
    ai_labeling.ai_labeling_job_run(job_id=job.pk, backend=sample_backend)
    labels = AILabel.objects.filter(config=cfg).select_related("trust")
    assert labels.count() == 3
    for label in labels:
        assert label.p_a == pytest.approx(0.65)
        t = label.trust
        assert t.margin == pytest.approx(0.15) and t.consistent is True
        assert t.order_gap == pytest.approx(0.1)
        assert t.sample_p_a == pytest.approx([0.75, 0.55]) and t.sample_spread == pytest.approx(0.1)
        assert t.n_other_configs == 0 and t.config_agreement is None


def test_a_second_config_refreshes_agreement_between_configs(world):
    c0 = world["comps"][0]
    a = AILabel.objects.get(config=world["cfg_a"], comparison=c0).trust
    assert a.n_other_configs == 1 and a.config_agreement == 0.0  # 0.9 vs 0.2
    far = world["comps"][5]
    assert AILabel.objects.get(config=world["cfg_a"], comparison=far).trust.config_agreement is None
    # a third config agreeing with cfg-a on pair 0 (through the same update the jobs call)
    cfg_c = LabelerConfig.objects.create(name="cfg-c", model="fake")
    AILabel.objects.create(comparison=c0, config=cfg_c, p_a=0.7, p_a_ab=0.7, p_a_ba=0.7, consistent=True)
    from labeling.services.routing import trust_signals_update

    trust_signals_update(comparison_ids=[c0.pk])
    a = AILabel.objects.get(config=world["cfg_a"], comparison=c0).trust
    assert a.n_other_configs == 2 and a.config_agreement == pytest.approx(0.5)


def test_backfill_command_fills_missing_rows_and_keeps_samples(world):
    label = AILabel.objects.get(config=world["cfg_a"], comparison=world["comps"][6])
    AILabelTrust.objects.filter(label=label).update(sample_p_a=[0.2, 0.4])
    AILabelTrust.objects.exclude(label=label).delete()
    call_command("trust_signals", "--missing-only")
    assert AILabelTrust.objects.count() == AILabel.objects.count()
    t = AILabelTrust.objects.get(label=label)
    assert t.consistent is False and t.order_gap == pytest.approx(0.2) and t.sample_p_a == [0.2, 0.4]
    call_command("trust_signals", "--config", world["cfg_a"].name)
    assert AILabelTrust.objects.get(label=label).sample_spread == pytest.approx(0.1)
    with pytest.raises(CommandError, match="no labeler config"):
        call_command("trust_signals", "--config", "nope")


def test_routing_picks_least_trusted_pairs_with_reasons(world):
    campaign = routing_campaign_create(name="r1", dataset=world["dataset"], config=world["cfg_a"].name, budget=3,
                                       criterion="margin", exclude_human_labeled=False)
    picks = list(RoutingPick.objects.filter(campaign=campaign).order_by("rank"))
    ids = [p.comparison_id for p in picks]
    comps = world["comps"]
    # the failed label first, then the smallest margins: 0.52 (pair 4), 0.45 (pair 5)
    assert ids == [comps[7].pk, comps[4].pk, comps[5].pk]
    assert picks[0].risk is None and "no usable AI label (prompt too long)" in picks[0].reason
    assert picks[1].risk == pytest.approx(0.96) and "margin 0.020" in picks[1].reason
    assert sorted(campaign.items.values_list("comparison_id", flat=True)) == sorted(ids)
    # by inconsistency: the pair whose orders disagree comes right after the failed label
    c2 = routing_campaign_create(name="r2", dataset=world["dataset"], config=world["cfg_a"], budget=2,
                                 criterion="inconsistency", exclude_human_labeled=False)
    assert list(c2.routing_picks.order_by("rank").values_list("comparison_id", flat=True)) == [comps[7].pk, comps[6].pk]
    # by disagreement: the four pairs cfg-b contradicts
    c3 = routing_campaign_create(name="r3", dataset=world["dataset"], config=world["cfg_a"], budget=5,
                                 criterion="disagreement", exclude_human_labeled=False)
    assert set(c3.routing_picks.values_list("comparison_id", flat=True)) == {c.pk for c in comps[:4]} | {comps[7].pk}


def test_routing_refuses_bad_input_with_the_field_named(world):
    ds, cfg = world["dataset"], world["cfg_a"]
    for kwargs, msg in [
        (dict(budget=0), "budget: must be at least 1"),
        (dict(budget=99, exclude_human_labeled=False), "budget: 99 pairs asked for"),
        (dict(budget=2), "budget: 2 pairs asked for, but .* only 0 eligible"),  # every pair has a human label
        (dict(budget=2, criterion="vibes"), "criterion: must be one of"),
        (dict(budget=2, config="nope"), "config: no labeler config called 'nope'"),
        (dict(budget=2, criterion="combined", weights={"margin": -1}), "weights:"),
        (dict(budget=2, weights={"colour": 1}), "weights:"),
    ]:
        args = dict(name="bad", dataset=ds, config=cfg, exclude_human_labeled=True)
        args.update(kwargs)
        with pytest.raises(CampaignError, match=msg):
            routing_campaign_create(**args)
    assert not Campaign.objects.filter(name="bad").exists()


def test_create_campaign_command_from_ai_uncertainty(world, annotator, capsys):
    call_command("create_campaign", "--name", "cmd", "--dataset", world["dataset"].name, "--from-ai-uncertainty",
                 world["cfg_a"].name, "--budget", "2", "--criterion", "combined", "--weights",
                 "margin=2,inconsistency=1", "--include-human-labeled", "--annotators", annotator.username)
    assert "2 pairs" in capsys.readouterr().out
    campaign = Campaign.objects.get(name="cmd")
    assert campaign.routing_picks.count() == 2 and set(campaign.routing_picks.values_list("criterion", flat=True)) == {"combined"}
    with pytest.raises(CommandError, match="needs --budget"):
        call_command("create_campaign", "--name", "x", "--dataset", world["dataset"].name,
                     "--from-ai-uncertainty", world["cfg_a"].name)
    with pytest.raises(CommandError, match="need --from-ai-uncertainty"):
        call_command("create_campaign", "--name", "x", "--dataset", world["dataset"].name, "--budget", "3")
    with pytest.raises(CommandError, match="--weights: expected NAME=NUMBER"):
        call_command("create_campaign", "--name", "x", "--dataset", world["dataset"].name, "--from-ai-uncertainty",
                     world["cfg_a"].name, "--budget", "2", "--weights", "margin")
    with pytest.raises(CommandError, match="budget: 50 pairs"):
        call_command("create_campaign", "--name", "x", "--dataset", world["dataset"].name, "--from-ai-uncertainty",
                     world["cfg_a"].name, "--budget", "50", "--include-human-labeled")
    # the plain form still works
    call_command("create_campaign", "--name", "plain", "--dataset", world["dataset"].name, "--limit", "3")
    assert Campaign.objects.get(name="plain").items.count() == 3


def test_staff_page_creates_a_routed_campaign_and_annotators_never_see_the_ai(client, world, staff_user, annotator):
    url = reverse("labeling:routing_new")
    assert client.get(url).status_code == 302  # log-in required
    client.force_login(annotator)
    assert client.get(url).status_code == 403
    assert client.post(url, {}).status_code == 403
    client.force_login(staff_user)
    page = client.get(url + f"?config={world['cfg_a'].pk}")
    assert page.status_code == 200 and b"csrfmiddlewaretoken" in page.content
    data = {"name": "web <b>", "dataset": world["dataset"].pk, "config": world["cfg_a"].pk, "budget": 3,
            "criterion": "margin", "annotators": [annotator.pk], "overlap": 1}
    bad = client.post(url, {**data, "budget": 500})
    assert bad.status_code == 200 and b"budget: 500 pairs asked for" in bad.content
    # every pair already has a human label
    assert b"only 0 eligible" in client.post(url, {**data, "exclude_human_labeled": "on"}).content
    done = client.post(url, data)  # the box unticked: pairs with human labels may be picked
    campaign = Campaign.objects.get(name="web <b>")
    assert done.status_code == 302 and done.url == reverse("labeling:routing_detail", args=[campaign.pk])
    detail = client.get(done.url)
    assert b"web &lt;b&gt;" in detail.content and b"no usable AI label" in detail.content
    assert b"margin 0.020" in detail.content
    listing = client.get(url)
    assert b"web &lt;b&gt;" in listing.content

    # the annotator rates the routed campaign without any trace of the AI's choice or the reasons
    client.force_login(annotator)
    assert client.get(reverse("labeling:routing_detail", args=[campaign.pk])).status_code == 403
    rate = client.get(reverse("labeling:rate", args=[campaign.pk]), follow=True)
    assert rate.status_code == 200
    text = rate.content.decode()
    assert "p(A)" not in text and "margin" not in text.lower() and "risk" not in text.lower()
    assert world["cfg_a"].name not in text


def test_csrf_is_enforced_on_the_routing_form(world, staff_user):
    from django.test import Client

    c = Client(enforce_csrf_checks=True)
    c.force_login(staff_user)
    r = c.post(reverse("labeling:routing_new"), {"name": "x", "dataset": world["dataset"].pk,
                                                 "config": world["cfg_a"].pk, "budget": 1, "criterion": "margin"})
    assert r.status_code == 403 and not Campaign.objects.filter(name="x").exists()


def test_admin_action_opens_the_form_with_the_config(client, world, staff_user):
    client.force_login(staff_user)
    r = client.post(reverse("admin:labeling_labelerconfig_changelist"),
                    {"action": "route_from_ai_uncertainty", "_selected_action": [world["cfg_a"].pk]})
    assert r.status_code == 302 and r.url == reverse("labeling:routing_new") + f"?config={world['cfg_a'].pk}"
    page = client.get(r.url)
    assert f'<option value="{world["cfg_a"].pk}" selected>'.encode() in page.content
    assert client.get(reverse("admin:labeling_routingpick_changelist")).status_code == 200
    assert client.get(reverse("admin:labeling_ailabeltrust_changelist")).status_code == 200
