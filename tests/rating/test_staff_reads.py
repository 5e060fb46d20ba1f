"""The staff quality page reads its campaign through selectors: any campaign (a closed one too),
404 for one that does not exist, the listed annotators sorted by name."""
from __future__ import annotations

import pytest
from django.urls import reverse

from labeling.selectors import rating as rating_selectors
from labeling.services.assignments import campaign_create

from .conftest import make_dataset

pytestmark = pytest.mark.django_db


def test_campaign_get_and_annotator_names(users):
    campaign = campaign_create(name="closed", dataset=make_dataset("closed", n=2), annotators=[users[2], users[0]])
    campaign.is_active = False
    campaign.save()
    got = rating_selectors.campaign_get(campaign_id=campaign.pk)
    assert got == campaign and got.dataset.name == "closed"
    assert rating_selectors.campaign_get(campaign_id=campaign.pk + 1000) is None
    assert rating_selectors.campaign_annotator_names(campaign) == sorted([users[0].username, users[2].username])


def test_quality_page_of_a_missing_campaign_is_404(client, staff_user, users):
    campaign = campaign_create(name="q", dataset=make_dataset("q", n=2), annotators=[users[1], users[0]])
    client.force_login(staff_user)
    page = client.get(reverse("labeling:quality", args=[campaign.pk])).content.decode()
    assert users[0].username in page and users[1].username in page
    assert client.get(reverse("labeling:quality", args=[campaign.pk + 1000])).status_code == 404
