"""`python manage.py trust_signals [--config NAME] [--missing-only]`: compute the stored trust
signals (margin, position consistency, agreement between configs, sample spread) of existing AI
labels. New labels get theirs when they are written; this backfills older ones."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from labeling.models import LabelerConfig
from labeling.services.routing import trust_signals_backfill


class Command(BaseCommand):
    help = "Compute the trust signals of existing AI labels (all configs, or one)."

    def add_arguments(self, parser):
        parser.add_argument("--config", default=None, help="Only the labels of this labeler config (name).")
        parser.add_argument("--missing-only", action="store_true", help="Skip labels that already have signals.")

    def handle(self, *args, **o):
        config = None
        if o["config"]:
            config = LabelerConfig.objects.filter(name=o["config"]).first()
            if config is None:
                raise CommandError(f"--config: no labeler config called {o['config']!r}")
        n = trust_signals_backfill(config=config, missing_only=o["missing_only"])
        self.stdout.write(self.style.SUCCESS(f"trust signals written for {n} AI labels"))
