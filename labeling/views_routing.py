"""Staff pages of hybrid labeling: "Create a campaign from AI uncertainty" (form), the routed
campaigns, and one routed campaign's picks with the reason each was picked. Annotators never
reach these pages, so the AI's choice never reaches them. Thin: forms validate through the service."""
from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from rlaif_site import permissions

from .judges.trust import CRITERIA
from .forms import RoutingForm
from .selectors import rating as rating_selectors
from .selectors import trust as trust_selectors


staff_required = permissions.staff_required(message="Only staff can route pairs to humans.")


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
