"""Staff pages of hybrid labeling: "Create a campaign from AI uncertainty" (form), the routed
campaigns, and one routed campaign's picks with the reason each was picked. Annotators never
reach these pages, so the AI's choice never reaches them. Thin: forms validate through the service."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from rlaif_site import permissions

from .judges.trust import CRITERIA
from .models import Campaign, Dataset, LabelerConfig
from .selectors import rating as rating_selectors
from .selectors import trust as trust_selectors
from .services.assignments import CampaignError
from .services.routing import routing_campaign_create


staff_required = permissions.staff_required(message="Only staff can route pairs to humans.")


class RoutingForm(forms.Form):
    name = forms.CharField(max_length=200)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("name"))
    config = forms.ModelChoiceField(queryset=LabelerConfig.objects.order_by("name"), label="Labeler config")
    budget = forms.IntegerField(min_value=1, help_text="How many pairs humans label.")
    criterion = forms.ChoiceField(choices=sorted(CRITERIA.items()), initial="margin")
    w_margin = forms.FloatField(min_value=0, initial=1.0, label="Weight: margin", required=False)
    w_inconsistency = forms.FloatField(min_value=0, initial=1.0, label="Weight: inconsistency", required=False)
    w_disagreement = forms.FloatField(min_value=0, initial=1.0, label="Weight: disagreement", required=False)
    w_spread = forms.FloatField(min_value=0, initial=1.0, label="Weight: spread", required=False)
    annotators = forms.ModelMultipleChoiceField(queryset=get_user_model().objects.order_by("username"), required=False)
    overlap = forms.IntegerField(min_value=1, initial=1)
    exclude_human_labeled = forms.BooleanField(required=False, initial=True,
                                               help_text="Leave out pairs that already have a human label.")

    def create(self, *, created_by) -> Campaign | None:
        """The routed campaign, or None with the service's message as a form error."""
        d = self.cleaned_data
        weights = None
        if d["criterion"] == "combined":
            weights = {k: (1.0 if d[f"w_{k}"] is None else d[f"w_{k}"])
                       for k in ("margin", "inconsistency", "disagreement", "spread")}
        try:
            return routing_campaign_create(
                name=d["name"], dataset=d["dataset"], config=d["config"], budget=d["budget"],
                criterion=d["criterion"], weights=weights, annotators=list(d["annotators"]),
                overlap=d["overlap"], exclude_human_labeled=d["exclude_human_labeled"], created_by=created_by,
            )
        except CampaignError as exc:
            self.add_error(None, str(exc))
            return None


@staff_required
@require_http_methods(["GET", "POST"])
def routing_new(request: HttpRequest) -> HttpResponse:
    form = RoutingForm(request.POST or None, initial={"config": request.GET.get("config"),
                                                      "dataset": request.GET.get("dataset")})
    if request.method == "POST" and form.is_valid():
        campaign = form.create(created_by=request.user)
        if campaign is not None:
            messages.info(request, f"Campaign {campaign.name!r} created with {campaign.items.count()} pairs.")
            return redirect("labeling:routing_detail", pk=campaign.pk)
    return render(request, "labeling/routing/new.html", {
        "form": form, "campaigns": trust_selectors.routed_campaigns()[:100], "criteria": CRITERIA,
    })


@staff_required
@require_GET
def routing_detail(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = rating_selectors.campaign_get(campaign_id=pk)
    if campaign is None:
        raise Http404("No such campaign.")
    picks = trust_selectors.routing_picks(campaign=campaign)
    if not picks.exists():
        raise Http404("This campaign was not made from AI uncertainty.")
    return render(request, "labeling/routing/detail.html", {"campaign": campaign, "picks": picks[:2000]})
