"""Log-in is required on every page; the home page lists datasets with counts."""
import pytest
from django.urls import reverse

from labeling.models import Dataset, Post

pytestmark = pytest.mark.django_db


def test_home_redirects_anonymous_to_login(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_login_page_is_open(client):
    assert client.get(reverse("login")).status_code == 200


def test_home_lists_datasets_with_counts(client, annotator):
    ds = Dataset.objects.create(name="tldr-test", source="unit test")
    Post.objects.create(dataset=ds, external_id="p1", title="t", text="x")
    client.force_login(annotator)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    row = response.context["datasets"].get(name="tldr-test")
    assert (row.n_posts, row.n_summaries, row.n_comparisons) == (1, 0, 0)
