"""Cached results of expensive evaluations (bootstrap intervals), computed by a worker; routing reports."""
from django.conf import settings
from django.db import models


class CachedResult(models.Model):
    key = models.CharField(max_length=300, unique=True)
    value = models.JSONField()
    computed_at = models.DateTimeField(auto_now=True)
    n_labels = models.PositiveIntegerField(default=0, help_text="Label count the result was computed on.")

    def __str__(self) -> str:
        return self.key


class RoutingReport(models.Model):
    """Three reward models trained at one human budget (`manage.py routing_report`): on hybrid labels
    (humans on the `campaign` routed from AI uncertainty, the AI elsewhere), on human labels only and
    on AI labels only; their held-out accuracies are compared on the Routing dashboard."""

    dataset = models.ForeignKey("labeling.Dataset", on_delete=models.CASCADE, related_name="+")
    config = models.ForeignKey("labeling.LabelerConfig", on_delete=models.CASCADE, related_name="+")
    budget = models.FloatField(help_text="Share of the training pairs sent to humans (0..1).")
    criterion = models.CharField(max_length=20)
    campaign = models.ForeignKey("labeling.Campaign", null=True, on_delete=models.SET_NULL, related_name="+")
    hybrid_run = models.ForeignKey("training.TrainingRun", null=True, on_delete=models.SET_NULL, related_name="+")
    human_run = models.ForeignKey("training.TrainingRun", null=True, on_delete=models.SET_NULL, related_name="+")
    ai_run = models.ForeignKey("training.TrainingRun", null=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(budget__gt=0) & models.Q(budget__lt=1),
                                   name="routingreport_budget_0_1"),
        ]

    def __str__(self) -> str:
        return f"Routing report {self.pk} ({self.config} at {self.budget:.0%})"


class RefreshJob(models.Model):
    """A dashboard refresh on a worker (one row per filter set): its heartbeat lets the job sweeper
    find a refresh whose worker died and queue it again (`evaluation.refresh_jobs`)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    key = models.CharField(max_length=300, unique=True, help_text="The CachedResult key it computes.")
    filters = models.JSONField(help_text="The refresh task's filter payload.")
    rounds = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    lease_token = models.CharField(max_length=64, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    recoveries = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"refresh {self.key} ({self.status})"


class Experiment(models.Model):
    """The paper in miniature (`manage.py run_experiment`, the staff experiment page): a preset run
    as ordinary AI labeling jobs and training runs, linked here step by step, with its report."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    name = models.CharField(max_length=200)
    preset = models.CharField(max_length=50)
    sizes = models.JSONField(default=dict, help_text="The preset's sizes, as run.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    step = models.CharField(max_length=60, blank=True, help_text="The step in progress.")
    steps = models.JSONField(default=dict, blank=True,
                             help_text="step -> {kind: job|run, id, seconds}: the jobs and runs it made.")
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    recoveries = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"experiment {self.pk} ({self.preset}, {self.status})"


class LabelSnapshot(models.Model):
    """Every label up to a watermark as numpy columns (`evaluation.snapshot`), written by the
    worker; pages mask it by their filter set. Only the newest is kept."""

    watermark_human = models.BigIntegerField(help_text="Highest human label id included.")
    watermark_ai = models.BigIntegerField(help_text="Highest AI label id included.")
    n_human = models.PositiveIntegerField(default=0)
    n_ai = models.PositiveIntegerField(default=0)
    data = models.BinaryField(help_text="numpy .npz of the columns.")
    built_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Label snapshot {self.pk} ({self.n_human} human, {self.n_ai} AI labels)"
