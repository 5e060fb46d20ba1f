"""Admin for training runs and model artifacts. "Add training run" opens the staff form at
/training/new/ (which validates and queues the run); cancel and resume are admin actions too."""
from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html

from . import services
from .models import ModelArtifact, TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("__str__", "kind", "status", "progress_pct", "dataset", "label_source", "created_by", "created_at", "live")
    list_filter = ("kind", "status", "label_source")
    search_fields = ("name", "base_checkpoint", "error")
    actions = ["cancel_runs", "resume_runs"]
    # Runs change only through the services (queue, cancel, resume): every field is read-only here.
    readonly_fields = [f.name for f in TrainingRun._meta.fields] + ["live"]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """Every field is read-only here, so the page offers no Save buttons."""
        no_save = {"show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False}
        return super().change_view(request, object_id, form_url, {**no_save, **(extra_context or {})})

    @admin.display(description="progress")
    def progress_pct(self, obj: TrainingRun) -> str:
        return f"{obj.progress:.0%}"

    @admin.display(description="live page")
    def live(self, obj: TrainingRun) -> str:
        return format_html('<a href="{}">open</a>', reverse("training:run_detail", args=[obj.pk]))

    def add_view(self, request, form_url="", extra_context=None):
        return redirect("training:run_new")

    @admin.action(description="Cancel the selected runs")
    def cancel_runs(self, request, queryset):
        for run in queryset:
            try:
                services.training_run_cancel(run_id=run.pk)
            except ValidationError as exc:
                self.message_user(request, f"{run}: {' '.join(exc.messages)}", messages.WARNING)

    @admin.action(description="Resume the selected runs from their last checkpoint")
    def resume_runs(self, request, queryset):
        for run in queryset:
            try:
                services.training_run_resume(run_id=run.pk)
            except ValidationError as exc:
                self.message_user(request, f"{run}: {' '.join(exc.messages)}", messages.WARNING)


@admin.register(ModelArtifact)
class ModelArtifactAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "path", "run", "policy", "created_at")
    list_filter = ("kind",)
    search_fields = ("name", "path")
    filter_horizontal = ("parents",)
    raw_id_fields = ("run", "policy")
