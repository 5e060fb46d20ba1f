"""The Celery application. Workers: `celery -A rlaif_site worker -Q default,gpu`.

Every worker also runs the job sweeper on a timer (`rlaif_site.jobs.start_sweeper_timer`, every
`JOB_SWEEP_EVERY_S` seconds, in the worker's main process): no beat process and no page view is
needed for a job whose worker died to be found and queued again. `rlaif_site.sweep_jobs` is the
same sweep as a task, for a deployment that prefers `celery beat` (set JOB_SWEEP_EVERY_S=0 on the
workers and schedule it).
"""
import os

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlaif_site.settings")

app = Celery("rlaif_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="rlaif_site.sweep_jobs", queue="default", acks_late=False)
def sweep_jobs_task() -> dict:
    from .jobs import sweep_jobs

    return sweep_jobs()


@worker_ready.connect
def _start_sweeper(**kwargs) -> None:
    from .jobs import start_sweeper_timer

    start_sweeper_timer()


@worker_shutdown.connect
def _stop_sweeper(**kwargs) -> None:
    from .jobs import stop_sweeper_timer

    stop_sweeper_timer()
