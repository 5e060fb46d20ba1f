"""Training runs and the model artifacts they produce, with provenance back to the labels."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class RunKind(models.TextChoices):
    SFT = "sft", "Supervised fine-tuning"
    REWARD = "reward", "Reward model"
    RL = "rl", "RL policy"
    SAMPLE = "sample", "Sample a policy"


class LabelSource(models.TextChoices):
    HUMAN = "human", "Human labels"
    AI = "ai", "AI labels (one labeler config)"
    REFERENCES = "references", "Reference summaries"
    REWARD_MODEL = "reward_model", "A trained reward model"
    DIRECT_AI = "direct_ai", "AI labeler 1-10 score (direct RLAIF)"
    HYBRID = "hybrid", "Hybrid: human labels where there are some, one config's AI labels elsewhere"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class RunPhase(models.TextChoices):
    """Where a run is within its status: written by the runner at each transition."""

    QUEUED = "queued", "Queued"
    LOADING = "loading", "Loading model"
    RUNNING = "running", "Running"
    EVALUATING = "evaluating", "Evaluating"
    SAVING = "saving", "Saving"
    DONE = "done", "Done"


class TrainingRun(models.Model):
    name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=10, choices=RunKind.choices)
    base_checkpoint = models.CharField(
        max_length=500, help_text="Hugging Face name, local path, or 'artifact:<id>'."
    )
    base_artifact = models.ForeignKey(
        "ModelArtifact", null=True, blank=True, on_delete=models.PROTECT, related_name="child_runs"
    )
    dataset = models.ForeignKey("labeling.Dataset", null=True, blank=True, on_delete=models.PROTECT)
    label_source = models.CharField(max_length=20, choices=LabelSource.choices, blank=True)
    labeler_config = models.ForeignKey(
        "labeling.LabelerConfig", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reward_artifact = models.ForeignKey(
        "ModelArtifact", null=True, blank=True, on_delete=models.PROTECT, related_name="rl_runs"
    )
    hyperparameters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.QUEUED)
    phase = models.CharField(max_length=12, choices=RunPhase.choices, default=RunPhase.QUEUED,
                             help_text="Queued, loading model, running, evaluating, saving, done.")
    progress = models.FloatField(default=0.0, help_text="0..1")
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=list, blank=True, help_text="One dict per logged step.")
    summary = models.JSONField(default=dict, blank=True, help_text="Final figures (e.g. held-out accuracy).")
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    checkpoint_path = models.CharField(max_length=500, blank=True, help_text="Last resumable checkpoint.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(
        max_length=64, blank=True, help_text="Which execution owns the run; a worker that lost it stops writing.")
    recoveries = models.PositiveIntegerField(
        default=0, help_text="Times its worker was lost and the run was queued again from its checkpoint.")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(progress__gte=0) & Q(progress__lte=1), name="trainingrun_progress_0_1"),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.get_kind_display()} run {self.pk}"


class ModelArtifact(models.Model):
    """A checkpoint saved with save_pretrained under ARTIFACT_ROOT, with its provenance."""

    class Kind(models.TextChoices):
        POLICY = "policy", "Policy (causal LM)"
        REWARD = "reward", "Reward model"
        BASE = "base", "Base model"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    path = models.CharField(max_length=500, help_text="Relative to ARTIFACT_ROOT, or absolute.")
    run = models.ForeignKey(TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="artifacts")
    parents = models.ManyToManyField("self", symmetrical=False, blank=True, related_name="children")
    policy = models.ForeignKey(
        "labeling.Policy", null=True, blank=True, on_delete=models.SET_NULL, related_name="artifacts",
        help_text="The Policy whose summaries this checkpoint writes.",
    )
    trained_on = models.JSONField(
        default=dict, blank=True,
        help_text="Which labels: source, labeler config, dataset, label ids or counts.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name
