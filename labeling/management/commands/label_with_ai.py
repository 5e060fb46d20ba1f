"""Label comparisons with an AI labeler config from the shell, with a progress bar.

    python manage.py label_with_ai --config tiny-local [--dataset NAME] [--limit N]
    python manage.py label_with_ai --config-file my_labeler.yaml --config my-labeler --limit 100

Runs the job in this process (no Celery worker needed); the job and its labels are the same as
those of a job launched from the admin, and re-running skips what is already labelled.
"""
from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand, CommandError

from labeling.models import Dataset, JobStatus, LabelerConfig
from labeling.selectors.ai import comparisons_to_label
from labeling.services.ai_labeling import (
    LabelerConfigFileError, ai_labeling_job_create, ai_labeling_job_run, labeler_configs_load,
)


class Command(BaseCommand):
    help = "Label comparisons with an AI labeler config (in this process, with a progress bar)."

    def add_arguments(self, parser):
        parser.add_argument("--config", required=True, help="LabelerConfig name")
        parser.add_argument("--config-file", action="append", default=[],
                            help="JSON/YAML file(s) of labeler configs to create or update first")
        parser.add_argument("--dataset", help="Only comparisons of this dataset")
        parser.add_argument("--limit", type=int, help="At most this many comparisons (id order)")
        parser.add_argument("--chunk-size", type=int, help="Comparisons per committed chunk")

    def handle(self, *args, **opts):
        if opts["config_file"]:
            try:
                labeler_configs_load(paths=opts["config_file"])
            except LabelerConfigFileError as exc:
                raise CommandError(str(exc))
        try:
            config = LabelerConfig.objects.get(name=opts["config"])
        except LabelerConfig.DoesNotExist:
            names = ", ".join(LabelerConfig.objects.order_by("name").values_list("name", flat=True)) or "none"
            raise CommandError(f"no labeler config {opts['config']!r} (have: {names}; "
                               "`python manage.py load_labeler_configs` loads the shipped ones)")
        dataset = None
        if opts["dataset"]:
            try:
                dataset = Dataset.objects.get(name=opts["dataset"])
            except Dataset.DoesNotExist:
                raise CommandError(f"no dataset {opts['dataset']!r}")
        ids = list(comparisons_to_label(config=config, dataset=dataset, limit=opts["limit"]).values_list("pk", flat=True))
        if not ids:
            self.stdout.write("Nothing to label: every matching comparison has a label of this config.")
            return
        if config.is_noise:
            self.stderr.write(self.style.WARNING(f"{config.name}: a random-weight model, its labels are noise."))
        job = ai_labeling_job_create(config=config, comparisons=ids, enqueue=False)
        self.stdout.write(f"Job {job.pk}: {job.total} comparisons with {config.name}")
        t0 = time.monotonic()
        tty = sys.stdout.isatty()

        def bar(j):
            n = j.done + j.failed
            width = 30
            filled = int(width * n / j.total) if j.total else width
            rate = n / max(time.monotonic() - t0, 1e-9)
            line = f"[{'#' * filled}{'.' * (width - filled)}] {n}/{j.total} ({j.failed} failed) {rate:.2f}/s"
            self.stdout.write(("\r" + line) if tty else line, ending="" if tty else "\n")
            self.stdout.flush()

        job = ai_labeling_job_run(job_id=job.pk, chunk_size=opts["chunk_size"], on_chunk=bar)
        if tty:
            self.stdout.write("")
        if job.status == JobStatus.FAILED:
            raise CommandError(f"job {job.pk} failed: {job.errors[-1]['error'] if job.errors else 'unknown error'}")
        self.stdout.write(self.style.SUCCESS(
            f"Job {job.pk} {job.status}: {job.done} labelled, {job.failed} failed, "
            f"{job.tokens_processed} tokens in {time.monotonic() - t0:.1f}s"))
        for e in job.errors[:5]:
            self.stdout.write(f"  comparison {e.get('comparison')}: {e.get('error')}")
