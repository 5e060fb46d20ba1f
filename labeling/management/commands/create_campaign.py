"""`python manage.py create_campaign --name NAME --dataset NAME --overlap K --annotators a,b,c`:
create a human rating campaign over a dataset's comparisons.

With `--from-ai-uncertainty CONFIG --budget N [--criterion margin|inconsistency|disagreement|spread|combined]`
the campaign holds the N comparisons whose AI labels (of CONFIG) are least trustworthy, each stored
with the reason it was picked (shown to staff; annotators never see the AI's choice).
"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from labeling.judges.trust import CRITERIA
from labeling.services.assignments import CampaignError, campaign_create
from labeling.services.routing import routing_campaign_create


class Command(BaseCommand):
    help = ("Create a rating campaign over a dataset's comparisons (with optional gold pairs), or over the "
            "pairs whose AI labels are least trustworthy (--from-ai-uncertainty CONFIG --budget N).")

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--dataset", required=True, help="Dataset name.")
        parser.add_argument("--overlap", type=int, default=1, help="Distinct annotators per pair (default 1).")
        parser.add_argument("--annotators", default="", help="Comma-separated usernames.")
        parser.add_argument("--group", default=None, help="Members of this auth group may also rate.")
        parser.add_argument("--gold-share", type=float, default=0.0, help="Share of gold pairs mixed in (0..1).")
        parser.add_argument("--limit", type=int, default=None, help="Use only the first N comparisons (by id).")
        parser.add_argument("--guidelines-file", default=None, help="Text file with guidelines (default: built in).")
        parser.add_argument("--lease-seconds", type=int, default=600)
        parser.add_argument("--undo-seconds", type=int, default=30)
        routing = parser.add_argument_group("routing from AI uncertainty")
        routing.add_argument("--from-ai-uncertainty", metavar="CONFIG", default=None,
                             help="Pick the pairs whose labels by this labeler config are least trustworthy.")
        routing.add_argument("--budget", type=int, default=None, help="How many pairs to send to humans.")
        routing.add_argument("--criterion", choices=sorted(CRITERIA), default="margin",
                             help="What makes a label untrustworthy (default: margin).")
        routing.add_argument("--weights", default="", metavar="margin=1,inconsistency=1,...",
                             help="Weights of the combined criterion.")
        routing.add_argument("--include-human-labeled", action="store_true",
                             help="Also pick pairs that already have a human label.")

    def handle(self, *args, **o):
        from labeling.models import Comparison

        guidelines = None
        if o["guidelines_file"]:
            try:
                with open(o["guidelines_file"], encoding="utf-8") as fh:
                    guidelines = fh.read()
            except OSError as exc:
                raise CommandError(f"--guidelines-file: {exc}") from exc
        names = [n.strip() for n in o["annotators"].split(",") if n.strip()]
        common = dict(name=o["name"], dataset=o["dataset"], overlap=o["overlap"], annotators=names,
                      guidelines=guidelines, group=o["group"], lease_seconds=o["lease_seconds"],
                      undo_seconds=o["undo_seconds"])
        try:
            if o["from_ai_uncertainty"]:
                if o["budget"] is None:
                    raise CommandError("--from-ai-uncertainty needs --budget N (how many pairs humans label)")
                if o["limit"] is not None or o["gold_share"]:
                    raise CommandError("--limit and --gold-share do not combine with --from-ai-uncertainty")
                campaign = routing_campaign_create(
                    config=o["from_ai_uncertainty"], budget=o["budget"], criterion=o["criterion"],
                    weights=_weights(o["weights"]), exclude_human_labeled=not o["include_human_labeled"], **common)
            else:
                if o["budget"] is not None or o["weights"]:
                    raise CommandError("--budget and --weights need --from-ai-uncertainty CONFIG")
                comparisons = None
                if o["limit"] is not None:
                    qs = Comparison.objects.filter(post__dataset__name=o["dataset"])
                    if o["gold_share"] > 0:  # gold pairs are added on top, from the rest of the dataset
                        qs = qs.filter(gold_choice__isnull=True)
                    comparisons = list(qs.order_by("pk")[: o["limit"]])
                campaign = campaign_create(comparisons=comparisons, gold_share=o["gold_share"], **common)
        except CampaignError as exc:
            raise CommandError(str(exc)) from exc
        n = campaign.items.count()
        routed = f", routed by {o['criterion']} from {o['from_ai_uncertainty']}" if o["from_ai_uncertainty"] else ""
        self.stdout.write(self.style.SUCCESS(
            f"Campaign {campaign.pk} {campaign.name!r}: {n} pairs, overlap {campaign.overlap}, "
            f"{campaign.annotators.count()} annotators{routed}."
        ))


def _weights(text: str) -> dict | None:
    if not text.strip():
        return None
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise CommandError(f"--weights: expected NAME=NUMBER, got {part!r}")
        out[key.strip()] = value.strip()
    return out
