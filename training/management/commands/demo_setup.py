"""`python manage.py demo_setup`: load the shipped data, install the real offline models
(SmolLM2-135M-Instruct, MiniLM: `install_models`), build the tiny test models, create the demo
users, the labeler configs (a smollm2 one is the default labeler) and a rating campaign. Safe to run again: imports are
idempotent and the users' passwords are reset and printed each time.

It lives in the training app because it touches every layer (labeling data, tiny models);
training may import labeling, not the other way round.
"""
from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

DEMO_USERS = (("staff", True), ("annotator", False))


class Command(BaseCommand):
    help = "Load the shipped TL;DR data, build tiny models, create demo users, a labeler config and a campaign."

    def add_arguments(self, parser):
        parser.add_argument("--skip-models", action="store_true",
                            help="Do not install the real models or build the tiny ones.")

    def handle(self, *args, skip_models: bool = False, **options):
        from labeling.models import Comparison, Policy
        from labeling.services.imports import comparisons_import, posts_import

        data = settings.DATA_DIR
        self.stdout.write("Importing the shipped TL;DR comparisons and reference summaries ...")
        result = comparisons_import(path=data / "tldr_comparisons_sample.jsonl", dataset="tldr")
        self.stdout.write(f"  comparisons: {result}")
        result = posts_import(path=data / "tldr_sft_reference_summaries.jsonl", dataset="tldr")
        self.stdout.write(f"  reference summaries: {result}")

        users = self._users()

        if not skip_models:
            from django.core.management import call_command

            call_command("install_models", stdout=self.stdout, stderr=self.stderr)
            self._tiny_models()

        from labeling.services.ai_labeling import labeler_configs_load

        configs = labeler_configs_load()
        self.stdout.write(f"Labeler configs: {', '.join(c.name for c in configs)}")

        from labeling.models import Campaign
        from labeling.services.assignments import campaign_create

        if not Campaign.objects.filter(name="demo: reference vs 1.3B PPO").exists():
            ppo = Policy.objects.filter(name="openai_ppo_original_1.3b").first()
            pairs = Comparison.objects.filter(post__dataset__name="tldr")
            if ppo is not None:
                pairs = pairs.filter(summary_b__policy=ppo) | pairs.filter(summary_a__policy=ppo)
            pairs = pairs.order_by("pk")[:200]
            campaign_create(
                name="demo: reference vs 1.3B PPO", dataset="tldr", overlap=2,
                annotators=list(users.values()), comparisons=list(pairs), created_by=users["staff"],
            )
            self.stdout.write("Campaign 'demo: reference vs 1.3B PPO' created (200 pairs, overlap 2).")

        self.stdout.write(self.style.SUCCESS("Demo ready. Log in at http://127.0.0.1:8000/ with:"))
        for name, user in users.items():
            self.stdout.write(f"  {name:10s} password {user._demo_password}  ({'staff' if user.is_staff else 'annotator'})")

    @transaction.atomic
    def _users(self) -> dict:
        User = get_user_model()
        users = {}
        for name, staff in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=name)
            password = secrets.token_urlsafe(9)
            user.set_password(password)
            user.is_staff = user.is_superuser = staff
            user.save()
            user._demo_password = password
            users[name] = user
        return users

    def _tiny_models(self) -> None:
        from training.ml.tiny import build_all
        from training.models import ModelArtifact

        root = settings.ARTIFACT_ROOT
        root.mkdir(parents=True, exist_ok=True)
        self.stdout.write(f"Building tiny offline models under {root} ...")
        paths = build_all(root, [settings.DATA_DIR / "tldr_comparisons_sample.jsonl",
                                 settings.DATA_DIR / "tldr_sft_reference_summaries.jsonl"])
        ModelArtifact.objects.get_or_create(
            name="tiny-gpt2", defaults={"kind": ModelArtifact.Kind.BASE, "path": str(paths["causal_lm"])}
        )
        ModelArtifact.objects.get_or_create(
            name="minilm-l6 (pretrained encoder)",
            defaults={"kind": ModelArtifact.Kind.BASE, "path": str(paths["reward_backbone"])},
        )
