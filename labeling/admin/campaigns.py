"""Admin: campaigns, their items and the lease queue.

Adding a campaign here fills it with items (the dataset's comparisons plus its gold share) in the
same transaction, through `services.assignments.campaign_items_add`.
"""
from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Sum
from django.urls import reverse
from django.utils.html import format_html

from ..guidelines import DEFAULT_GUIDELINES
from ..models import Assignment, Campaign, CampaignItem, Comparison
from ..services import assignments


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.instance.pk and "guidelines" in self.fields:
            self.fields["guidelines"].initial = DEFAULT_GUIDELINES

    def clean(self):
        data = super().clean()
        dataset, share = data.get("dataset"), data.get("gold_share") or 0
        if self.instance.pk or dataset is None:
            return data
        pairs = Comparison.objects.filter(post__dataset=dataset)
        if not pairs.exists():
            self.add_error("dataset", f"Dataset {dataset} has no comparisons yet.")
        elif share > 0 and not pairs.filter(gold_choice__isnull=False).exists():
            self.add_error("gold_share", f"Dataset {dataset} has no gold pairs (comparisons with gold_choice set).")
        return data


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignForm
    list_display = ("name", "dataset", "overlap", "gold_share", "is_active", "n_items", "n_done", "quality_link", "created_at")
    list_filter = ("is_active", "dataset")
    search_fields = ("name",)
    filter_horizontal = ("annotators",)
    readonly_fields = ("created_by", "created_at")
    actions = ["expire_stale_leases"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("dataset").annotate(
            _n_items=Count("items", distinct=True), _n_done=Sum("items__n_done"),
        )

    @admin.display(description="pairs", ordering="_n_items")
    def n_items(self, obj):
        return obj._n_items

    @admin.display(description="labels done")
    def n_done(self, obj):
        return obj._n_done or 0

    @admin.display(description="quality")
    def quality_link(self, obj):
        return format_html('<a href="{}">report</a>', reverse("labeling:quality", args=[obj.pk]))

    def get_readonly_fields(self, request, obj=None):
        # The dataset and gold share decide the items, which are made once, when the campaign is added.
        return self.readonly_fields + (("dataset", "gold_share") if obj else ())

    def save_model(self, request, obj, form, change):
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if not change:
            try:
                n = assignments.campaign_items_add(campaign=form.instance)
            except assignments.CampaignError as exc:
                raise forms.ValidationError(str(exc)) from exc
            self.message_user(request, f"{n} pairs added to the campaign.", messages.SUCCESS)

    @admin.action(description="Mark expired leases as expired")
    def expire_stale_leases(self, request, queryset):
        n = sum(assignments.assignments_expire(campaign=c) for c in queryset)
        self.message_user(request, f"{n} leases marked expired.")


@admin.register(CampaignItem)
class CampaignItemAdmin(admin.ModelAdmin):
    list_display = ("id", "campaign", "comparison", "is_gold", "n_done", "flagged")
    list_filter = ("flagged", "is_gold", "campaign")
    list_editable = ("flagged",)
    raw_id_fields = ("comparison",)
    list_select_related = ("campaign", "comparison")

    def has_add_permission(self, request):
        return False


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("id", "item", "annotator", "status", "a_shown_first", "leased_at", "expires_at", "finished_at")
    list_filter = ("status", "item__campaign")
    raw_id_fields = ("item", "annotator", "label")
    list_select_related = ("item", "annotator")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
