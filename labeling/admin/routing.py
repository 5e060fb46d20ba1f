"""Admin: hybrid labeling. The "Create a campaign from AI uncertainty" action on labeler configs
(opens the staff form with the config chosen), the routed picks with their reasons, and the trust
signals stored beside each AI label (read-only: they are computed, never typed in)."""
from __future__ import annotations

from django.contrib import admin, messages
from django.shortcuts import redirect
from django.urls import reverse

from ..models import AILabelTrust, RoutingPick


@admin.action(description="Create a campaign from AI uncertainty (this config's least trusted labels)")
def route_from_ai_uncertainty(modeladmin, request, queryset):
    if queryset.count() != 1:
        modeladmin.message_user(request, "Pick exactly one config.", messages.WARNING)
        return None
    return redirect(reverse("labeling:routing_new") + f"?config={queryset.get().pk}")


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RoutingPick)
class RoutingPickAdmin(_ReadOnly):
    list_display = ("campaign", "rank", "comparison", "config", "criterion", "risk", "reason")
    list_filter = ("campaign", "criterion", "config")
    search_fields = ("campaign__name", "reason")
    list_select_related = ("campaign", "config")


@admin.register(AILabelTrust)
class AILabelTrustAdmin(_ReadOnly):
    list_display = ("label", "margin", "consistent", "order_gap", "n_other_configs", "config_agreement",
                    "sample_spread", "updated_at")
    list_filter = ("consistent", "label__config")
    list_select_related = ("label",)
    raw_id_fields = ("label",)
