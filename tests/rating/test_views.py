"""Rating pages and JSON API: access, CSRF, escaping, htmx partial flow, staff report."""
from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from labeling.models import Assignment, HumanLabel
from labeling.services.assignments import campaign_create, label_submit, assignment_next

from .conftest import make_dataset

pytestmark = pytest.mark.django_db

XSS = '<script>window.__pwned = 1</script><b>bold?</b>'


@pytest.fixture
def campaign(users):
    return campaign_create(name="web", dataset=make_dataset("web", n=4, summary_text=XSS), annotators=users[:2])


def test_campaign_list_shows_only_my_campaigns(client, campaign, users, django_user_model):
    campaign_create(name="not-mine", dataset=make_dataset("other", n=1), annotators=[users[3]])
    client.force_login(users[0])
    page = client.get(reverse("labeling:campaign_list")).content.decode()
    assert "web" in page and "not-mine" not in page


def test_rating_pages_refuse_outsiders(client, campaign, users):
    client.force_login(users[3])
    assert client.get(reverse("labeling:rate", args=[campaign.pk])).status_code == 404
    assert client.post(reverse("labeling:pair_next", args=[campaign.pk])).status_code == 404
    assert client.post(reverse("labeling:api_next", args=[campaign.pk])).status_code == 404
    assert not Assignment.objects.exists()


def test_anonymous_is_sent_to_login(client, campaign):
    response = client.post(reverse("labeling:api_next", args=[campaign.pk]))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_htmx_flow_escapes_text_and_maps_answer(client, campaign, users):
    client.force_login(users[0])
    page = client.get(reverse("labeling:rate", args=[campaign.pk])).content.decode()
    assert 'hx-post="%s"' % reverse("labeling:pair_next", args=[campaign.pk]) in page
    part = client.post(reverse("labeling:pair_next", args=[campaign.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in part and "<script>window.__pwned" not in part
    a = Assignment.objects.get(annotator=users[0])
    url = reverse("labeling:pair_submit", args=[campaign.pk, a.pk])
    part = client.post(url, {"preferred": "right", "certainty": "3", "note_right": "<i>x</i>"}).content.decode()
    assert "Saved" in part and "&lt;i&gt;" not in part  # notes are not echoed; next pair shown
    label = HumanLabel.objects.get()
    assert label.choice == (1 if a.a_shown_first else 0)
    assert label.confidence == (8 if a.a_shown_first else 2)
    assert (label.note_b if a.a_shown_first else label.note_a) == "<i>x</i>"
    undo = client.post(reverse("labeling:pair_undo", args=[campaign.pk])).content.decode()
    assert "Undone" in undo and not HumanLabel.objects.exists()


def test_csrf_is_enforced_on_htmx_and_api_posts(campaign, users):
    client = Client(enforce_csrf_checks=True)
    client.force_login(users[0])
    assert client.post(reverse("labeling:pair_next", args=[campaign.pk])).status_code == 403
    assert client.post(reverse("labeling:api_next", args=[campaign.pk])).status_code == 403
    client.get(reverse("labeling:rate", args=[campaign.pk]))
    token = client.cookies["csrftoken"].value
    assert client.post(reverse("labeling:api_next", args=[campaign.pk]), HTTP_X_CSRFTOKEN=token).status_code == 200


def test_json_api_next_submit_idempotent_and_foreign_lease_refused(client, campaign, users):
    client.force_login(users[0])
    data = client.post(reverse("labeling:api_next", args=[campaign.pk])).json()
    assert data["assignment"] and data["left"]["text"] and data["post"]["title"]
    submit = reverse("labeling:api_submit", args=[data["assignment"]])
    first = client.post(submit, {"preferred": "left"})
    again = client.post(submit, {"preferred": "left"})
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["label"] == again.json()["label"] and HumanLabel.objects.count() == 1
    assert client.post(submit, {"preferred": "middle"}).status_code == 400
    other = assignment_next(campaign=campaign, user=users[1])
    response = client.post(reverse("labeling:api_submit", args=[other.pk]), {"preferred": "left"})
    assert response.status_code == 403 and HumanLabel.objects.count() == 1


def test_api_next_reports_done(client, users):
    c = campaign_create(name="tiny", dataset=make_dataset("tiny", n=1), annotators=[users[0]])
    client.force_login(users[0])
    a = client.post(reverse("labeling:api_next", args=[c.pk])).json()["assignment"]
    client.post(reverse("labeling:api_submit", args=[a]), {"preferred": "left"})
    assert client.post(reverse("labeling:api_next", args=[c.pk])).json() == {"assignment": None}
    part = client.post(reverse("labeling:pair_next", args=[c.pk])).content.decode()
    assert 'id="all-done"' in part


def test_history_and_staff_quality_report(client, campaign, users, staff_user):
    for u, side in ((users[0], "left"), (users[1], "right")):
        a = assignment_next(campaign=campaign, user=u)
        label_submit(user=u, assignment_id=a.pk, preferred=side)
    client.force_login(users[0])
    assert "1 answered" in client.get(reverse("labeling:history", args=[campaign.pk])).content.decode()
    denied = client.get(reverse("labeling:quality", args=[campaign.pk]))  # not staff: the site's 403 page
    assert denied.status_code == 403 and 'id="forbidden"' in denied.content.decode()
    assert 'id="site-nav"' in denied.content.decode() and "Only staff can see campaign" in denied.content.decode()
    client.force_login(staff_user)
    page = client.get(reverse("labeling:quality", args=[campaign.pk]))
    assert page.status_code == 200
    names = {s.annotator: s.n_labels for s in page.context["annotators"]}
    assert names == {users[0].username: 1, users[1].username: 1}
    assert client.get(reverse("labeling:quality_index")).status_code == 200


def test_admin_add_campaign_fills_items(client, staff_user, users):
    ds = make_dataset("admin-ds", n=3)
    client.force_login(staff_user)
    response = client.post(reverse("admin:labeling_campaign_add"), {
        "name": "from-admin", "dataset": ds.pk, "overlap": 2, "annotators": [users[0].pk],
        "guidelines": "Be careful.", "gold_share": 0, "lease_seconds": 600, "undo_seconds": 30, "is_active": "on",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    from labeling.models import Campaign

    c = Campaign.objects.get(name="from-admin")
    assert c.items.count() == 3 and c.created_by == staff_user


def test_admin_refuses_gold_share_without_gold_pairs(client, staff_user):
    ds = make_dataset("no-gold", n=2)
    client.force_login(staff_user)
    response = client.post(reverse("admin:labeling_campaign_add"), {
        "name": "gold-less", "dataset": ds.pk, "overlap": 1, "guidelines": "x", "gold_share": 0.3,
        "lease_seconds": 600, "undo_seconds": 30, "is_active": "on",
    })
    assert response.status_code == 200 and "no gold pairs" in response.content.decode()
    from labeling.models import Campaign

    assert not Campaign.objects.filter(name="gold-less").exists()
