"""`manage.py import_harmlessness FILE [--dataset NAME] [--task harmless|dialogue|summarization]`."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from labeling.importers import ImportFileError
from labeling.models import TaskKind
from labeling.services.imports import harmlessness_import

from ._import_progress import record_progress


class Command(BaseCommand):
    help = ("Import human judgments of single responses as harmless or harmful (JSONL: id, prompt or post, "
            "response, policy, harmless, worker), for the paper's harmless rate. The whole file or nothing.")

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--dataset", default=None, help="Dataset name (default: derived from the file name).")
        parser.add_argument("--task", choices=TaskKind.values, default=None,
                            help="Task of a new dataset (default: harmless for dialogues, else summarization).")

    def handle(self, *args, **opts):
        try:
            with record_progress(f"import {opts['file']}", opts["verbosity"] > 0) as progress:
                result = harmlessness_import(path=opts["file"], dataset=opts["dataset"], task=opts["task"],
                                             progress=progress)
        except (ImportFileError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(str(result)))
