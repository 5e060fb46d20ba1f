"""`manage.py import_comparisons FILE [--format openai|normalized|trl|ranking] [--dataset NAME] [--task TASK]`."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from labeling.importers import FORMATS, ImportFileError
from labeling.models import TaskKind
from labeling.services.imports import comparisons_import

from ._import_progress import record_progress


class Command(BaseCommand):
    help = ("Import human pairwise preferences from a JSONL file (OpenAI summarize-from-feedback lines, "
            "the normalized JSONL of data/, or TRL prompt/chosen/rejected). The whole file or nothing.")

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--format", choices=FORMATS, default=None, help="Default: detected from the first record.")
        parser.add_argument("--dataset", default=None, help="Dataset name (default: derived from the file name).")
        parser.add_argument("--task", choices=TaskKind.values, default=None,
                            help="Task of a new dataset where the file cannot tell: 'harmless' for dialogue "
                                 "preferences of the less harmful response (default: from the records).")

    def handle(self, *args, **opts):
        try:
            with record_progress(f"import {opts['file']}", opts["verbosity"] > 0) as progress:
                result = comparisons_import(path=opts["file"], fmt=opts["format"], dataset=opts["dataset"],
                                           task=opts["task"], progress=progress)
        except (ImportFileError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(str(result)))
