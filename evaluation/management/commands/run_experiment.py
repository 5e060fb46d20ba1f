"""`python manage.py run_experiment --preset tldr-mini`: the RLAIF-versus-RLHF loop in miniature.

Runs every step here (ordinary AI labeling jobs and training runs, shown by the pages as they go)
and prints the report tables; `--enqueue` hands it to a gpu worker instead, and `--resume ID` goes on
with an experiment from its last finished step. `--json FILE` writes the report as JSON.
"""
from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from evaluation import experiment_plan, experiments
from evaluation.experiment_report import report_text
from evaluation.models import Experiment


class Command(BaseCommand):
    help = "Run the paper's experiment in miniature (AI labels, RMs, SFT, RL, win rates) and print the report."

    def add_arguments(self, parser):
        parser.add_argument("--preset", default="tldr-mini", choices=sorted(experiment_plan.PRESETS))
        parser.add_argument("--resume", type=int, help="Go on with this experiment id.")
        parser.add_argument("--enqueue", action="store_true", help="Queue on the gpu workers instead of running here.")
        parser.add_argument("--json", dest="json_path", help="Also write the report as JSON to this file.")
        parser.add_argument("--rebuild-report", action="store_true",
                            help="With --resume of a finished experiment: build its report again from its jobs and runs.")

    def handle(self, *args, preset: str, resume: int | None, enqueue: bool, json_path: str | None,
               rebuild_report: bool = False, **options):
        if resume:
            try:
                exp = Experiment.objects.get(pk=resume)
            except Experiment.DoesNotExist as exc:
                raise CommandError(f"no experiment {resume}") from exc
        else:
            try:
                exp = experiments.experiment_create(preset=preset, enqueue=enqueue)
            except experiments.ExperimentError as exc:
                raise CommandError(str(exc)) from exc
        self.stdout.write(f"Experiment {exp.pk} ({exp.preset}); sizes:")
        for key, value in exp.sizes.items():
            if key not in ("name", "description"):
                self.stdout.write(f"  {key}: {value}")
        if enqueue:
            self.stdout.write(f"Queued on the gpu workers; follow it at /evaluation/experiments/{exp.pk}/")
            return

        def on_step(e: Experiment, step: str) -> None:
            self.stdout.write(f"[{e.pk}] {step} ...")
            self.stdout.flush()

        exp = experiments.experiment_run(experiment_id=exp.pk, on_step=on_step)
        if rebuild_report and exp.status == Experiment.Status.DONE:
            exp = experiments.experiment_report_rebuild(experiment_id=exp.pk)
        if exp.status != Experiment.Status.DONE:
            raise CommandError(f"experiment {exp.pk} {exp.status}: {exp.error or 'driven by another worker'}")
        self.stdout.write(report_text(exp.report))
        if json_path:
            with open(json_path, "w", encoding="utf-8") as fh:
                json.dump(exp.report, fh, indent=1)
        self.stdout.write(self.style.SUCCESS(f"experiment {exp.pk} done"))
