"""The Celery application. Workers: `celery -A rlaif_site worker -Q default,gpu`."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlaif_site.settings")

app = Celery("rlaif_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
