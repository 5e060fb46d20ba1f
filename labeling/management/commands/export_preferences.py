"""`manage.py export_preferences --format trl|csv [--dataset NAME] [--source human|ai|hybrid]
[--labeler-config NAME] [--human-campaign NAME] OUTFILE` (OUTFILE `-` writes to stdout).

`--source hybrid` writes one row per comparison: the human vote where the pair has human labels,
the AI soft label of `--labeler-config` elsewhere, with its provenance ("human" or "ai")."""
from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from labeling.selectors.exports import hybrid_preferences_export, preferences_export


class Command(BaseCommand):
    help = ("Export preference labels as TRL preference JSONL (prompt/chosen/rejected, soft label "
            "p_chosen for AI labels) or CSV (one row per label); --source hybrid merges human and AI labels.")

    def add_arguments(self, parser):
        parser.add_argument("outfile")
        parser.add_argument("--format", choices=["trl", "csv"], required=True)
        parser.add_argument("--dataset", default=None)
        parser.add_argument("--source", choices=["human", "ai", "hybrid"], default="human")
        parser.add_argument("--labeler-config", default=None,
                            help="AI labels of this labeler config (--source ai: only these; hybrid: required).")
        parser.add_argument("--human-campaign", default=None,
                            help="--source hybrid: human labels only on this campaign's pairs (e.g. a routed one).")

    def handle(self, *args, **opts):
        source = opts["source"]
        if opts["labeler_config"] and source == "human":
            raise CommandError("--labeler-config needs --source ai or hybrid")
        if opts["human_campaign"] and source != "hybrid":
            raise CommandError("--human-campaign needs --source hybrid")
        if source == "hybrid" and not opts["labeler_config"]:
            raise CommandError("--source hybrid needs --labeler-config (its AI labels fill the pairs without human labels)")

        def write(out):
            if source == "hybrid":
                n_h, n_ai = hybrid_preferences_export(
                    out=out, fmt=opts["format"], labeler_config=opts["labeler_config"], dataset=opts["dataset"],
                    human_campaign=opts["human_campaign"])
                return f"{n_h + n_ai} hybrid pairs ({n_h} from humans, {n_ai} from {opts['labeler_config']})"
            n = preferences_export(out=out, fmt=opts["format"], dataset=opts["dataset"], source=source,
                                   labeler_config=opts["labeler_config"])
            return f"{n} {source} labels"

        try:
            if opts["outfile"] == "-":
                what = write(sys.stdout)
            else:
                with open(opts["outfile"], "w", encoding="utf-8", newline="") as out:
                    what = write(out)
        except (ValueError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"wrote {what} to {opts['outfile']}")
