"""`python manage.py routing_report --config NAME [--dataset NAME] --budget 0.3 [--criterion margin]
[--base ARTIFACT] [--set key=value ...] [--run-here | --simulate-only]`

Prints the simulated routing curves' headline for the config (the human budget routing needs to reach
the agreement random choice reaches at 50%), then launches three reward-model runs at `--budget`
through the training services -- hybrid labels (humans on the routed training pairs, the AI
elsewhere), human labels only, AI labels only -- queued on the gpu workers, or run here with
--run-here. Their held-out accuracies appear on /evaluation/routing/ when done.

Example (tiny models, CPU):
  python manage.py routing_report --config tiny-local --dataset tldr --budget 0.3 --run-here \\
      --set max_steps=10 --set batch_size=16 --set max_length=128
"""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from evaluation import routing
from evaluation.routing_pages import routing_input
from evaluation.routing_services import routing_report_create
from labeling.judges.trust import CRITERIA
from labeling.models import AILabel, Dataset, LabelerConfig


class Command(BaseCommand):
    help = "Simulate routing for a labeler config and launch hybrid / human-only / AI-only reward models at a budget."

    def add_arguments(self, parser):
        parser.add_argument("--config", required=True, help="Labeler config name.")
        parser.add_argument("--dataset", default=None, help="Dataset name (default: the one the config labelled).")
        parser.add_argument("--budget", type=float, default=0.3, help="Share of training pairs sent to humans (0..1).")
        parser.add_argument("--criterion", choices=sorted(CRITERIA), default="margin")
        parser.add_argument("--base", default="", help="Reward-model base artifact (name or artifact:<id>).")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="A reward-model hyperparameter, the same for all three runs (repeatable).")
        how = parser.add_mutually_exclusive_group()
        how.add_argument("--run-here", action="store_true", help="Train the three models in this process, one by one.")
        how.add_argument("--simulate-only", action="store_true", help="Print the simulation; launch nothing.")

    def handle(self, *args, **o):
        config = LabelerConfig.objects.filter(name=o["config"]).first()
        if config is None:
            raise CommandError(f"--config: no labeler config called {o['config']!r}")
        if o["dataset"]:
            dataset = Dataset.objects.filter(name=o["dataset"]).first()
            if dataset is None:
                raise CommandError(f"--dataset: no dataset called {o['dataset']!r}")
        else:
            names = list(AILabel.objects.filter(config=config).values_list("comparison__post__dataset__name", flat=True)
                         .distinct()[:2])
            if len(names) != 1:
                raise CommandError(f"--dataset: config {config.name!r} labelled {len(names) or 'no'} datasets; name one")
            dataset = Dataset.objects.get(name=names[0])
        ri = routing_input(dataset=dataset, config=config, criterion=o["criterion"])
        if ri.sim is None:
            raise CommandError(f"no comparison of {dataset.name} has both a human majority and a usable label of {config.name}")
        head = routing.headline(ri.sim, 0.5)
        need = head["uncertainty_budget_needed"]
        self.stdout.write(
            f"{dataset.name} / {config.name} by {o['criterion']}: {ri.n_used} pairs, AI agreement {head['ai_accuracy']:.1%}; "
            f"random routing reaches {head['random_agreement_at_reference']:.1%} at 50% of pairs; "
            f"uncertainty routing needs {need:.1%}" + (" (beats random)" if head["routing_beats_random"]
                                                       else " (does NOT beat random)")
            + f"; the oracle needs {head['oracle_budget_needed']:.1%}.")
        if o["simulate_only"]:
            return
        hp = {}
        for item in o["set"]:
            key, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--set {item!r}: expected KEY=VALUE")
            hp[key.strip()] = value.strip()
        try:
            report = routing_report_create(dataset=dataset, config=config, budget=o["budget"],
                                           criterion=o["criterion"], base=o["base"], hyperparameters=hp,
                                           enqueue=not o["run_here"])
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
                               if hasattr(exc, "error_dict") else " ".join(exc.messages)) from exc
        runs = [("hybrid", report.hybrid_run), ("human only", report.human_run), ("AI only", report.ai_run)]
        self.stdout.write(f"Routing report {report.pk}: campaign {report.campaign.name!r} "
                          f"({report.campaign.items.count()} routed pairs); runs "
                          + ", ".join(f"{k} {r.pk}" for k, r in runs))
        if not o["run_here"]:
            self.stdout.write("Queued on the gpu workers; accuracies appear on /evaluation/routing/ when done.")
            return
        from training.runner import execute_run

        for key, run in runs:
            status = execute_run(run.pk)
            run.refresh_from_db()
            acc = (run.summary or {}).get("rm_accuracy")
            self.stdout.write(f"  {key:10s} run {run.pk}: {status}" + (f", held-out accuracy {acc:.1%} on "
                              f"{run.summary.get('eval_pairs')} human labels" if acc is not None else f" {run.error[:300]}"))
