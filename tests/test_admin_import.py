"""Admin pages and the "Import file" upload; log-in required on every named page."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.exceptions import NoReverseMatch

from labeling.models import Comparison, HumanLabel, Post, Summary
from labeling.services.imports import comparisons_import

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parent.parent / "data"
IMPORT_URL = "admin:labeling_comparison_import"


def lines(path: Path, n: int) -> bytes:
    with path.open("rb") as fh:
        return b"".join(itertools.islice(fh, n))


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/jsonl")


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def test_staff_uploads_comparisons_and_sees_the_counts(staff_client):
    for model in ("comparison", "dataset"):  # reachable from these changelists
        changelist = staff_client.get(reverse(f"admin:labeling_{model}_changelist"))
        assert reverse(IMPORT_URL).encode() in changelist.content
    response = staff_client.post(reverse(IMPORT_URL), {
        "file": upload("tldr_comparisons_sample.jsonl", lines(DATA / "tldr_comparisons_sample.jsonl", 25)),
        "kind": "comparisons", "format": "",
    })
    assert response.status_code == 200
    result = response.context["result"]
    assert (result.dataset, result.labels_created) == ("tldr", 25)
    assert HumanLabel.objects.count() == 25
    assert b'id="import-result"' in response.content and b"Imported 25 records" in response.content
    assert not list((Path(settings.VAR_DIR) / "uploads").glob("*/*"))  # the upload was removed


def test_staff_uploads_posts(staff_client):
    response = staff_client.post(reverse(IMPORT_URL), {
        "file": upload("refs.jsonl", lines(DATA / "tldr_sft_reference_summaries.jsonl", 5)),
        "kind": "posts", "dataset": "tldr", "make_pairs": "",
    })
    assert response.status_code == 200
    assert Summary.objects.filter(is_reference=True).count() == 5
    assert not Comparison.objects.exists()


def test_bad_upload_names_the_line_and_writes_nothing(staff_client):
    good = lines(DATA / "tldr_comparisons_sample.jsonl", 3)
    bad = json.loads(good.splitlines()[0])
    bad["choice"] = 2
    content = good + json.dumps(bad).encode() + b"\n"
    response = staff_client.post(reverse(IMPORT_URL), {"file": upload("mine.jsonl", content), "kind": "comparisons"})
    assert response.status_code == 400
    assert 'mine.jsonl, line 4, field &quot;choice&quot;: expected 0 or 1, got 2' in response.content.decode()
    assert not Post.objects.exists() and not HumanLabel.objects.exists()


def test_non_staff_and_anonymous_cannot_import(client, annotator):
    content = lines(DATA / "tldr_comparisons_sample.jsonl", 2)
    for user in (None, annotator):
        if user:
            client.force_login(user)
        response = client.post(reverse(IMPORT_URL), {"file": upload("x.jsonl", content), "kind": "comparisons"})
        assert response.status_code == 302
        assert response["Location"].startswith((reverse("admin:login"), reverse("login")))
    assert not HumanLabel.objects.exists()


def test_staff_without_add_permission_is_refused(client, django_user_model):
    clerk = django_user_model.objects.create_user("clerk", password="x-pass-123", is_staff=True)
    client.force_login(clerk)
    assert client.get(reverse(IMPORT_URL)).status_code == 403


def test_upload_needs_the_csrf_token(staff_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    page = client.get(reverse(IMPORT_URL))
    assert page.status_code == 200 and b"csrfmiddlewaretoken" in page.content
    content = lines(DATA / "tldr_comparisons_sample.jsonl", 2)
    response = client.post(reverse(IMPORT_URL), {"file": upload("x.jsonl", content), "kind": "comparisons"})
    assert response.status_code == 403
    assert not HumanLabel.objects.exists()


def test_large_or_background_upload_is_queued_for_the_worker(staff_client, monkeypatch, django_capture_on_commit_callbacks):
    calls = []
    from labeling.tasks import imports as tasks

    monkeypatch.setattr(tasks.run_import_job, "delay", lambda *a, **kw: calls.append((a, kw)))
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse(IMPORT_URL), {
            "file": upload("big.jsonl", lines(DATA / "tldr_comparisons_sample.jsonl", 2)),
            "kind": "comparisons", "format": "normalized", "background": "on",
        })
    from labeling.models import ImportJob

    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("admin:labeling_importjob_change",
                                                                          args=[job.pk])
    assert calls == [((job.pk,), {})] and job.status == "queued" and job.fmt == "normalized"
    assert Path(job.path).read_bytes() == lines(DATA / "tldr_comparisons_sample.jsonl", 2)
    assert tasks.run_import_job(job.pk) == "done"  # what the worker runs
    job.refresh_from_db()
    assert HumanLabel.objects.count() == 2 and job.counts["labels_created"] == 2 and not Path(job.path).exists()


def test_admin_changelists_and_forms_load(staff_client):
    comparisons_import(path=DATA / "tldr_comparisons_sample.jsonl")
    label = HumanLabel.objects.first()
    for model in ("dataset", "post", "policy", "summary", "comparison", "humanlabel"):
        url = reverse(f"admin:labeling_{model}_changelist")
        assert staff_client.get(url).status_code == 200, url
        assert staff_client.get(url, {"q": "relationship"}).status_code == 200, url
        assert staff_client.get(reverse(f"admin:labeling_{model}_add")).status_code == 200
    assert staff_client.get(reverse("admin:labeling_humanlabel_change", args=[label.pk])).status_code == 200
    response = staff_client.get(reverse("admin:labeling_humanlabel_changelist"), {"choice": "1"})
    assert response.context["cl"].result_count == HumanLabel.objects.filter(choice=1).count()


def _named_routes(resolver: URLResolver, prefix: str = ""):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = f"{prefix}{entry.namespace}:" if entry.namespace else prefix
            yield from _named_routes(entry, ns)
        elif isinstance(entry, URLPattern) and entry.name:
            yield prefix + entry.name


OPEN_ROUTES = {"login", "healthz", "admin:login"}


def login_pages() -> tuple[str, ...]:
    """The site's log-in page, and the admin's own log-in page (the other way in for staff)."""
    return (reverse("login") + "?next=", reverse("admin:login") + "?next=")


def test_login_required_on_every_named_page(client):
    checked = []
    for name in sorted(set(_named_routes(get_resolver()))):
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue  # needs arguments
        if name in OPEN_ROUTES:
            continue
        response = client.get(url)
        assert response.status_code == 302, f"{name} ({url}) answered {response.status_code} to an anonymous GET"
        assert response["Location"].startswith(login_pages()), f"{name} redirects to {response['Location']}"
        checked.append(name)
    assert "home" in checked and IMPORT_URL in checked and len(checked) > 10
    assert client.get(reverse("healthz")).status_code == 200
    assert client.get(reverse("login")).status_code == 200
