"""The web process stays light: loading every URL, view, form and admin imports neither torch nor transformers."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CODE = """
import os, sys
os.environ['DJANGO_SETTINGS_MODULE'] = 'rlaif_site.settings'
import django
django.setup()
from django.contrib import admin
from django.urls import get_resolver
get_resolver().url_patterns  # imports every app's urls and views
admin.autodiscover()
import training.services, training.forms, labeling.services.ai_labeling, evaluation.views
print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))
"""


def test_web_process_imports_no_ml_framework(tmp_path):
    out = subprocess.run([sys.executable, "-c", CODE], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={"VAR_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
