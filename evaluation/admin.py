"""Admin for cached evaluation results (read-only: the worker writes them)."""
from django.contrib import admin

from .models import CachedResult


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
