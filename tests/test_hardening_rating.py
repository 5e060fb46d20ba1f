"""Issue 11, item 4: the JSON submit applies the rating page's campaign rule. After an annotator is
taken off a campaign, or the campaign is deactivated, neither route stores an answer (404, as the
rating page answers for a campaign the user may not rate); skipping is refused the same way."""
from __future__ import annotations

import pytest
from django.urls import reverse

from labeling.models import Campaign, HumanLabel
from labeling.services import assignments
from tests.rating.conftest import make_dataset

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def setup(require_postgres, django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    users = [django_user_model.objects.create_user(f"r{i}", password="x-pass-123") for i in range(2)]
    campaign = assignments.campaign_create(name="closing", dataset=make_dataset("closing", n=4), annotators=users)
    return campaign, users


def _lease(client, campaign) -> int:
    return client.post(reverse("labeling:api_next", args=[campaign.pk])).json()["assignment"]


def _close(campaign: Campaign, user, how: str) -> None:
    if how == "removed":
        campaign.annotators.remove(user)
    else:
        Campaign.objects.filter(pk=campaign.pk).update(is_active=False)


@pytest.mark.parametrize("how", ["removed", "deactivated"])
def test_json_submit_refused_like_the_rating_page(client, setup, how):
    campaign, (me, _) = setup
    client.force_login(me)
    lease = _lease(client, campaign)
    assert lease
    _close(campaign, me, how)

    api = client.post(reverse("labeling:api_submit", args=[lease]), {"preferred": "left"})
    assert api.status_code == 404 and api.json()["error"] == "campaign_closed"
    page = client.post(reverse("labeling:pair_submit", args=[campaign.pk, lease]), {"preferred": "left"},
                       HTTP_HX_REQUEST="true")
    assert page.status_code == 404
    with pytest.raises(assignments.CampaignClosed):
        assignments.assignment_skip(user=me, assignment_id=lease)
    assert HumanLabel.objects.count() == 0


def test_the_rule_follows_the_assignment_not_the_url(client, setup, django_user_model):
    """A lease of a closed campaign cannot be answered through the URL of another, open campaign."""
    campaign, (me, _) = setup
    client.force_login(me)
    lease = _lease(client, campaign)
    other = assignments.campaign_create(name="open", dataset=make_dataset("open", n=2), annotators=[me])
    _close(campaign, me, "deactivated")
    client.post(reverse("labeling:pair_submit", args=[other.pk, lease]), {"preferred": "left"}, HTTP_HX_REQUEST="true")
    assert HumanLabel.objects.count() == 0


def test_members_of_an_open_campaign_still_submit(client, setup):
    campaign, (me, other) = setup
    client.force_login(me)
    lease = _lease(client, campaign)
    campaign.annotators.remove(other)  # someone else leaving changes nothing for me
    response = client.post(reverse("labeling:api_submit", args=[lease]), {"preferred": "left"})
    assert response.status_code == 201 and HumanLabel.objects.count() == 1
