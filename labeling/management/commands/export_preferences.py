"""`manage.py export_preferences --format trl|csv [--dataset NAME] [--source human|ai]
[--labeler-config NAME] OUTFILE` (OUTFILE `-` writes to stdout)."""
from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from labeling.services.imports import preferences_export


class Command(BaseCommand):
    help = ("Export preference labels as TRL preference JSONL (prompt/chosen/rejected, soft label "
            "p_chosen for AI labels) or CSV (one row per label).")

    def add_arguments(self, parser):
        parser.add_argument("outfile")
        parser.add_argument("--format", choices=["trl", "csv"], required=True)
        parser.add_argument("--dataset", default=None)
        parser.add_argument("--source", choices=["human", "ai"], default="human")
        parser.add_argument("--labeler-config", default=None, help="Only AI labels of this labeler config.")

    def handle(self, *args, **opts):
        if opts["labeler_config"] and opts["source"] != "ai":
            raise CommandError("--labeler-config needs --source ai")
        kwargs = dict(fmt=opts["format"], dataset=opts["dataset"], source=opts["source"],
                      labeler_config=opts["labeler_config"])
        try:
            if opts["outfile"] == "-":
                n = preferences_export(out=sys.stdout, **kwargs)
            else:
                with open(opts["outfile"], "w", encoding="utf-8", newline="") as out:
                    n = preferences_export(out=out, **kwargs)
        except (ValueError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"wrote {n} {opts['source']} labels to {opts['outfile']}")
