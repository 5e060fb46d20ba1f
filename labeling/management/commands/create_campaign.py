"""`python manage.py create_campaign --name NAME --dataset NAME --overlap K --annotators a,b,c`:
create a human rating campaign over a dataset's comparisons."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from labeling.services.queue import CampaignError, campaign_create


class Command(BaseCommand):
    help = "Create a rating campaign over a dataset's comparisons (with optional gold pairs)."

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

    def handle(self, *args, **o):
        from labeling.models import Comparison

        guidelines = None
        if o["guidelines_file"]:
            try:
                with open(o["guidelines_file"], encoding="utf-8") as fh:
                    guidelines = fh.read()
            except OSError as exc:
                raise CommandError(f"--guidelines-file: {exc}") from exc
        comparisons = None
        if o["limit"] is not None:
            qs = Comparison.objects.filter(post__dataset__name=o["dataset"])
            if o["gold_share"] > 0:  # gold pairs are added on top, from the rest of the dataset
                qs = qs.filter(gold_choice__isnull=True)
            comparisons = list(qs.order_by("pk")[: o["limit"]])
        names = [n.strip() for n in o["annotators"].split(",") if n.strip()]
        try:
            campaign = campaign_create(
                name=o["name"], dataset=o["dataset"], overlap=o["overlap"], annotators=names,
                comparisons=comparisons, gold_share=o["gold_share"], guidelines=guidelines, group=o["group"],
                lease_seconds=o["lease_seconds"], undo_seconds=o["undo_seconds"],
            )
        except CampaignError as exc:
            raise CommandError(str(exc)) from exc
        n = campaign.items.count()
        self.stdout.write(self.style.SUCCESS(
            f"Campaign {campaign.pk} {campaign.name!r}: {n} pairs, overlap {campaign.overlap}, "
            f"{campaign.annotators.count()} annotators."
        ))
