"""Campaign pages for staff, without the admin: create a campaign (dataset, which pairs, overlap,
annotators or a group, gold share, guidelines) through `services.assignments.campaign_create`, and the
list of campaigns with their progress; each campaign's progress and agreement page is
`views_rating.campaign_stats`."""
from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from rlaif_site.permissions import staff_required

from .forms import CampaignForm
from .selectors import rating as selectors
from .services import assignments
from .services.assignments import CampaignError

_STAFF_ONLY = "Only staff can create and watch campaigns."


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
