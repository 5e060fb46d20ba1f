"""Issue 11, item 10: start-up defaults. With DEBUG=0 the app refuses the published demo key (and a
production start without SECRET_KEY); with no SECRET_KEY the demo and the tests use a random key
of their own under VAR_DIR, the same for every process; database connections are health-checked."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PUBLISHED = "django-insecure-demo-only-key-set-SECRET_KEY-in-production-0123456789"
PRINT = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE']='rlaif_site.settings'; django.setup();"
         "from django.conf import settings as s; print(s.SECRET_KEY); "
         "print(s.DATABASES['default'].get('CONN_HEALTH_CHECKS'))")


def _python(code: str, env: dict) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "DEBUG", "HTTPS", "SECRET_KEY", "VAR_DIR"}}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**base, **env}, capture_output=True,
                          text=True, timeout=120)


def test_published_key_refused_with_debug_off(tmp_path):
    out = _python(PRINT, {"SECRET_KEY": PUBLISHED, "DEBUG": "0", "VAR_DIR": str(tmp_path)})
    assert out.returncode != 0
    assert "ImproperlyConfigured" in out.stderr and "published demo key" in out.stderr


def test_short_key_refused_with_debug_off(tmp_path):
    out = _python(PRINT, {"SECRET_KEY": "changeme", "DEBUG": "0", "VAR_DIR": str(tmp_path)})
    assert out.returncode != 0 and "ImproperlyConfigured" in out.stderr


def test_production_without_a_key_refused(tmp_path):
    out = _python(PRINT, {"DEBUG": "0", "HTTPS": "1", "VAR_DIR": str(tmp_path)})
    assert out.returncode != 0 and "SECRET_KEY is not set" in out.stderr
    assert not (tmp_path / "secret_key").exists()


def test_without_a_key_each_machine_writes_its_own(tmp_path):
    first = _python(PRINT, {"DEBUG": "1", "VAR_DIR": str(tmp_path)})
    second = _python(PRINT, {"DEBUG": "0", "VAR_DIR": str(tmp_path)})
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    key = first.stdout.split()[0]
    assert key == second.stdout.split()[0]  # the web server and the worker agree
    assert key != PUBLISHED and len(key) >= 50
    path = tmp_path / "secret_key"
    assert path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    other = _python(PRINT, {"DEBUG": "1", "VAR_DIR": str(tmp_path / "elsewhere")})
    assert other.stdout.split()[0] != key  # another machine, another key


def test_a_given_key_is_used_and_nothing_written(tmp_path):
    key = "k" * 20 + "-a-long-enough-random-looking-key"
    out = _python(PRINT, {"SECRET_KEY": key, "DEBUG": "0", "VAR_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == key and not (tmp_path / "secret_key").exists()


def test_connection_health_checks_on_by_default(tmp_path):
    out = _python(PRINT, {"DATABASE_URL": "postgres://u:p@db.example.org:5432/x", "VAR_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[1] == "True"
