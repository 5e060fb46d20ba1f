"""`python manage.py train --kind sft|reward|rl|sample ...`: create a training run and run it
here, in this process, with a progress bar (or queue it on the gpu workers with --enqueue).

Examples:
  python manage.py train --kind sft --dataset tldr --base tiny-gpt2 --set max_steps=20
  python manage.py train --kind reward --dataset tldr --base "minilm-l6 (pretrained encoder)" --source human
  python manage.py train --kind reward --dataset tldr --source ai --labeler-config tiny-local
  python manage.py train --kind rl --dataset tldr --base artifact:3 --reward-artifact artifact:4
  python manage.py train --kind sample --dataset tldr --base artifact:5 --set n_posts=32
"""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from training import params as run_params
from training import runner, services
from training.models import RunKind, TrainingRun


class Command(BaseCommand):
    help = "Train an SFT policy, a reward model or an RL policy (or sample a policy), with a progress bar."

    def add_arguments(self, parser):
        parser.add_argument("--kind", required=True, choices=RunKind.values)
        parser.add_argument("--dataset", required=True, help="Dataset name or id.")
        parser.add_argument("--base", default="", help="Artifact name, artifact:<id>, Hugging Face name or local folder.")
        parser.add_argument("--source", default="", help="Labels: human | ai | hybrid (reward); reward_model | direct_ai (rl).")
        parser.add_argument("--labeler-config", default="", help="AI labeler config name or id.")
        parser.add_argument("--reward-artifact", default="", help="Reward-model artifact (name or artifact:<id>).")
        parser.add_argument("--name", default="")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="A hyperparameter (repeatable); --list-params shows them.")
        parser.add_argument("--list-params", action="store_true", help="Print the kind's hyperparameters and exit.")
        parser.add_argument("--enqueue", action="store_true", help="Queue on the gpu workers instead of running here.")
        parser.add_argument("--resume", type=int, default=0, metavar="RUN_ID", help="Resume this failed/cancelled run here.")

    def handle(self, *args, **o):
        if o["list_params"]:
            for spec in run_params.param_specs(o["kind"]):
                self.stdout.write(f"{spec['name']:20s} {spec['default']!r:12} {spec['help']}")
            return
        hp = {}
        for item in o["set"]:
            key, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--set {item!r}: expected KEY=VALUE")
            hp[key.strip()] = value.strip()
        if o["resume"]:
            try:
                run = services.training_run_resume(run_id=o["resume"])
            except (ValidationError, TrainingRun.DoesNotExist) as exc:
                raise CommandError(str(exc)) from exc
        else:
            base = o["base"]
            is_artifact = base.startswith("artifact:") or (base and not ("/" in base or base.startswith(".")))
            kwargs = {"base_artifact": base} if is_artifact and _artifact_exists(base) else {"base_checkpoint": base}
            try:
                run = services.training_run_create(
                    kind=o["kind"], name=o["name"], dataset=o["dataset"], label_source=o["source"],
                    labeler_config=o["labeler_config"] or None, reward_artifact=o["reward_artifact"] or None,
                    hyperparameters=hp, enqueue=o["enqueue"], **kwargs,
                )
            except ValidationError as exc:
                raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
                                   if hasattr(exc, "error_dict") else " ".join(exc.messages)) from exc
        if o["enqueue"]:
            self.stdout.write(f"Queued run {run.pk} on the gpu queue.")
            return
        self.stdout.write(f"Running {run} (id {run.pk}) here ...")
        status = self._run_with_bar(run.pk)
        run.refresh_from_db()
        if status != "done":
            raise CommandError(f"run {run.pk} ended {status}: {run.error or run.log.splitlines()[-1]}")
        self.stdout.write(self.style.SUCCESS(f"run {run.pk} done: {run.summary}"))
        for artifact in run.artifacts.all():
            self.stdout.write(f"  artifact {artifact.pk} {artifact.name}: {artifact.path}")

    def _run_with_bar(self, run_id: int) -> str:
        from tqdm import tqdm

        bar = tqdm(total=0, unit="step", file=self.stderr._out if hasattr(self.stderr, "_out") else None)

        def on_step(step: int, total: int, metrics: dict) -> None:
            if bar.total != total:
                bar.total = total
            bar.n = step
            bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items() if isinstance(v, float)}, refresh=False)
            bar.refresh()

        try:
            return runner.execute_run(run_id, on_step=on_step)
        finally:
            bar.close()


def _artifact_exists(value: str) -> bool:
    from training.models import ModelArtifact

    text = value.removeprefix("artifact:")
    return ModelArtifact.objects.filter(pk=text).exists() if text.isdigit() else ModelArtifact.objects.filter(
        name=text).exists()
