"""Campaign pages for staff, without the admin: create a campaign (dataset, which pairs, overlap,
annotators or a group, gold share, guidelines) through `services.assignments.campaign_create`, and the
list of campaigns with their progress; each campaign's progress and agreement page is
`views_rating.campaign_stats`."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from rlaif_site.permissions import staff_required

from .guidelines import DEFAULT_GUIDELINES
from .models import Dataset
from .selectors import rating as selectors
from .services import assignments
from .services.assignments import CampaignError

_STAFF_ONLY = "Only staff can create and watch campaigns."


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=200)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("name"))
    subreddit = forms.CharField(required=False, max_length=200, help_text="Only posts of this subreddit (empty: all).")
    without_human_labels = forms.BooleanField(required=False, initial=True,
                                              label="Only pairs nobody has labelled yet")
    limit = forms.IntegerField(required=False, min_value=1, label="At most this many pairs",
                               help_text="Empty: every matching pair (in id order).")
    overlap = forms.IntegerField(min_value=1, max_value=50, initial=1, help_text="Distinct annotators per pair.")
    annotators = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"), required=False,
        widget=forms.SelectMultiple(attrs={"size": 6}), help_text="Hold Ctrl (or Cmd) to pick several.")
    group = forms.ModelChoiceField(queryset=Group.objects.order_by("name"), required=False,
                                   help_text="Members of this group may rate too.")
    gold_share = forms.FloatField(min_value=0.0, max_value=1.0, initial=0.0,
                                  help_text="Share of pairs with a known answer, mixed in to check annotators (0..1).")
    guidelines = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), initial=DEFAULT_GUIDELINES, required=False)

    def clean(self):
        data = super().clean()
        if not data.get("annotators") and not data.get("group") and not self.errors:
            raise forms.ValidationError("Choose annotators or a group: nobody could rate this campaign.")
        return data


@staff_required(message=_STAFF_ONLY)
@require_http_methods(["GET", "POST"])
def campaign_new(request):
    form = CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        ids = selectors.campaign_candidates(dataset=d["dataset"], subreddit=d["subreddit"].strip(),
                                            without_human_labels=d["without_human_labels"], limit=d["limit"],
                                            leave_gold=d["gold_share"] > 0)
        if not ids:
            form.add_error(None, "No pair of this dataset matches the filter: nothing to rate.")
        else:
            try:
                campaign = assignments.campaign_create(
                    name=d["name"], dataset=d["dataset"], overlap=d["overlap"], annotators=list(d["annotators"]),
                    group=d["group"], comparisons=ids, gold_share=d["gold_share"], guidelines=d["guidelines"],
                    created_by=request.user)
            except CampaignError as exc:
                field, _, _ = str(exc).partition(":")
                form.add_error(field if field in form.fields else None, str(exc))
            else:
                messages.success(request, f"Campaign {campaign.name} created with {campaign.items.count()} pairs.")
                return redirect("labeling:quality", pk=campaign.pk)
    return render(request, "labeling/campaigns/new.html", {"form": form})


@staff_required(message=_STAFF_ONLY)
@require_GET
def campaign_overview(request):
    return render(request, "labeling/campaigns/list.html", {"campaigns": selectors.campaign_overview()})
