"""Settings come from the environment: embedded defaults for the demo, production passes check --deploy."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(code: str, env: dict) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "DEBUG", "HTTPS"}}
    return subprocess.run([sys.executable, *code.split()] if code.startswith("manage.py") else [sys.executable, "-c", code],
                          cwd=REPO, env={**base, **env}, capture_output=True, text=True, timeout=120)


def test_defaults_are_sqlite_and_serverless_broker(tmp_path):
    out = _run(
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='rlaif_site.settings'; django.setup();"
        "from django.conf import settings as s; print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL)",
        {"VAR_DIR": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["django.db.backends.sqlite3", "filesystem://"]


def test_production_settings_pass_check_deploy(tmp_path):
    env = {
        "SECRET_KEY": secrets.token_urlsafe(50), "DEBUG": "0", "ALLOWED_HOSTS": "rlaif.example.org",
        "HTTPS": "1", "DATABASE_URL": "postgres://u:p@db.example.org:5432/rlaif",
        "CELERY_BROKER_URL": "redis://redis.example.org:6379/0", "VAR_DIR": str(tmp_path),
    }
    out = _run("manage.py check --deploy --fail-level WARNING", env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no issues" in out.stdout


def test_demo_settings_fail_check_deploy(tmp_path):
    """The insecure demo defaults are caught by check --deploy (the test above is not vacuous)."""
    out = _run("manage.py check --deploy --fail-level WARNING", {"VAR_DIR": str(tmp_path), "DEBUG": "1"})
    assert out.returncode != 0
