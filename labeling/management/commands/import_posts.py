"""`manage.py import_posts FILE [--dataset NAME] [--no-pairs]`: posts with reference summaries."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from labeling.importers import ImportFileError
from labeling.services.imports import posts_import

from ._import_progress import record_progress


class Command(BaseCommand):
    help = ("Import posts with their human reference summary (policy 'ref') and optional policy sample; "
            "by default also one unlabeled reference-vs-policy comparison per post.")

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--dataset", default=None, help="Dataset name (default: derived from the file name).")
        parser.add_argument("--no-pairs", action="store_true", help="Do not create reference-vs-policy comparisons.")

    def handle(self, *args, **opts):
        try:
            with record_progress(f"import {opts['file']}", opts["verbosity"] > 0) as progress:
                result = posts_import(path=opts["file"], dataset=opts["dataset"], make_pairs=not opts["no_pairs"],
                                      progress=progress)
        except (ImportFileError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(str(result)))
