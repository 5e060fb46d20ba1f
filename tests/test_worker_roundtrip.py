"""A real Celery worker process (not eager mode) runs `import_file` against the TEST database in
PostgreSQL, through Redis; the test waits for the rows to appear, then stops the worker."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from labeling.models import Dataset, HumanLabel
from labeling.tasks.imports import import_file

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
WAIT_S = 90  # worker start-up (imports every app's tasks) plus the import


def database_url(db: dict) -> str:
    """A DATABASE_URL for the database this test process uses: the TEST database's name."""
    auth = quote(db["USER"], safe="") + (":" + quote(db["PASSWORD"], safe="") if db.get("PASSWORD") else "")
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{quote(db['NAME'], safe='')}"


def test_real_worker_imports_a_file_into_postgres(transactional_db, require_postgres, require_redis, settings,
                                                    tmp_path):
    src = REPO / "data" / "tldr_comparisons_sample.jsonl"
    path = tmp_path / "tldr_comparisons_sample.jsonl"
    with src.open(encoding="utf-8") as fh:
        path.write_text("".join(itertools.islice(fh, 12)), encoding="utf-8")

    db = settings.DATABASES["default"]
    assert db["NAME"].startswith("test_"), db["NAME"]  # pytest-django has switched to the test database
    queue = f"roundtrip-{uuid.uuid4().hex[:12]}"  # only this worker listens here: no other consumer races it
    env = {**os.environ, "DATABASE_URL": database_url(db), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "CELERY_TASK_ALWAYS_EAGER": "0", "DJANGO_SETTINGS_MODULE": "rlaif_site.settings",
           "VAR_DIR": str(tmp_path / "var"), "CONN_MAX_AGE": "0"}
    env.pop("TEST_DATABASE_NAME", None)
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "rlaif_site", "worker", "-Q", queue, "-n", f"{queue}@%h",
             "--pool", "solo", "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        import_file.apply_async(args=[str(path)], kwargs={"kind": "comparisons"}, queue=queue)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if HumanLabel.objects.filter(import_key__startswith="tldr:").count() == 12:
                break
            assert worker.poll() is None, "worker exited:\n" + log_path.read_text(errors="replace")[-4000:]
            time.sleep(0.5)
        else:
            pytest.fail(f"no rows after {WAIT_S}s; worker log:\n" + log_path.read_text(errors="replace")[-4000:])
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    assert Dataset.objects.filter(name="tldr").exists()
    assert HumanLabel.objects.filter(worker_id="rmgbTjW1stlproQnuHE2bUpK78Jxle").exists()
    log_text = log_path.read_text(errors="replace")
    assert "labeling.import_file" in log_text and "succeeded" in log_text  # it ran in the worker process
