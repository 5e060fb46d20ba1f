"""Admin for cached evaluation results (read-only: the worker writes them)."""
from django.contrib import admin

from .models import CachedResult, Experiment


@admin.register(CachedResult)
class CachedResultAdmin(admin.ModelAdmin):
    list_display = ("key", "n_labels", "computed_at", "status")
    search_fields = ("key",)
    readonly_fields = ("key", "value", "n_labels", "computed_at")

    @admin.display(description="status")
    def status(self, obj: CachedResult) -> str:
        return (obj.value or {}).get("status", "")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # view only: no Save buttons


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    """Experiments are started from their page or `run_experiment`; the admin shows them read-only."""

    list_display = ("id", "name", "preset", "status", "step", "created_at")
    list_filter = ("status", "preset")
    readonly_fields = [f.name for f in Experiment._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # view only: no Save buttons
