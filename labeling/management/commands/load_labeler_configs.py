"""Create or update AI labeler configs from JSON/YAML files (default: the shipped labeling/configs/).

    python manage.py load_labeler_configs [FILE ...]
"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from labeling.services.ai_labeling import LabelerConfigFileError, labeler_configs_load


class Command(BaseCommand):
    help = "Create or update labeler configs from JSON/YAML files (default: the shipped configs)."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="*", help="Config files (.json, .yaml); none = labeling/configs/*")

    def handle(self, *args, **opts):
        try:
            configs = labeler_configs_load(paths=opts["paths"] or None)
        except LabelerConfigFileError as exc:
            raise CommandError(str(exc))
        for c in configs:
            note = " (labels are noise)" if c.is_noise else ""
            self.stdout.write(f"{c.name}: {c.get_backend_display()} {c.model}{note}")
        self.stdout.write(self.style.SUCCESS(f"{len(configs)} labeler config(s) loaded"))
