"""`python manage.py evaluate [--dataset NAME]`: the dashboards' tables in the shell.

Computes the bootstrap/Bradley-Terry/length-controlled results in-process (as the worker would),
stores them in the cache, and prints alignment per labeler config with position bias, the
win-rate table with intervals per judge, the leaderboard and annotator agreement.
"""
from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from evaluation import pages, services, tables
from evaluation.formatting import fmt
from evaluation.selectors import Filters
from labeling.models import Campaign, Dataset


class Command(BaseCommand):
    help = "Print the evaluation tables (alignment, position bias, win rates, leaderboard, agreement)."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", help="Dataset name (default: all).")
        parser.add_argument("--campaign", help="Campaign name (human labels of that campaign only).")
        parser.add_argument("--date-from", type=dt.date.fromisoformat, help="YYYY-MM-DD, inclusive.")
        parser.add_argument("--date-to", type=dt.date.fromisoformat, help="YYYY-MM-DD, inclusive.")
        parser.add_argument("--rounds", type=int, default=services.DEFAULT_ROUNDS, help="Bootstrap rounds.")
        parser.add_argument("--format", choices=["text", "csv", "json"], default="text")
        parser.add_argument("--no-compute", action="store_true", help="Use the cached result as it is.")

    def handle(self, *args, **opts):
        if opts["dataset"] and not Dataset.objects.filter(name=opts["dataset"]).exists():
            raise CommandError(f"--dataset: no dataset named {opts['dataset']!r}")
        if opts["campaign"] and not Campaign.objects.filter(name=opts["campaign"]).exists():
            raise CommandError(f"--campaign: no campaign named {opts['campaign']!r}")
        if opts["rounds"] < 1:
            raise CommandError("--rounds must be at least 1")
        f = Filters(opts["dataset"], opts["campaign"], opts["date_from"], opts["date_to"])
        if not opts["no_compute"]:
            services.refresh_dashboard(filters=f, rounds=opts["rounds"])
        for t in all_tables(f):
            if opts["format"] == "csv":
                self.stdout.write(f"# {t.name}: {t.title}\n" + tables.table_csv(t))
            elif opts["format"] == "json":
                self.stdout.write(tables.table_json(t, f.query()))
            else:
                self.stdout.write(render_text(t))


def all_tables(f: Filters) -> list[tables.Table]:
    """Every dashboard table of ``f``, the win-rate table once per judge."""
    out = list(pages.alignment_page(f, auto_refresh=False)["tables"])
    wr = pages.winrate_page(f, auto_refresh=False)
    out.append(wr["tables"][0])
    out += [pages.winrate_page(f, judge=key, auto_refresh=False)["tables"][0] for key, _ in wr["judges"][1:]]
    out.append(wr["tables"][1])
    out += pages.leaderboard_page(f, auto_refresh=False)["tables"]
    out += pages.annotators_page(f, auto_refresh=False)["tables"]
    return out


def render_text(t: tables.Table) -> str:
    """A plain fixed-width table."""
    header = [c.label for c in t.columns]
    body = [[fmt(r.get(c.key), c.kind) for c in t.columns] for r in t.rows]
    widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(header)]

    def line(cells) -> str:
        return "  ".join(str(x).ljust(w) for x, w in zip(cells, widths)).rstrip()

    out = [f"== {t.title} ==", line(header), line(["-" * w for w in widths])]
    out += [line(b) for b in body] or ["(no data)"]
    if t.note:
        out.append(t.note)
    return "\n".join(out) + "\n\n"
