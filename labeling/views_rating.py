"""Views of the human rating pages: thin wrappers around `services.assignments` and `selectors.rating`.

HTML (htmx) endpoints swap the `#pair` box; JSON endpoints serve scripts and the load benchmark:

  POST /labeling/api/campaigns/<id>/next         -> {"assignment": id|null, "post": {...}, "left": {...}, "right": {...}}
  POST /labeling/api/assignments/<id>/submit     form fields: preferred=left|right, certainty=1..4 (optional),
                                                 note_left, note_right -> {"label": id, "created": bool}

Both need a logged-in session and the CSRF token (header X-CSRFToken).
"""
from __future__ import annotations


from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from rlaif_site.permissions import staff_required

from .selectors import rating as selectors
from .services import assignments
from .services.assignments import CERTAINTY_LABELS, QueueError

CERTAINTY_CHOICES = [(v, w, k) for (v, w), k in zip(CERTAINTY_LABELS.items(), "qwer")]
_STATUS = {"not_your_lease": 403, "lease_expired": 409, "already_answered": 409, "nothing_to_undo": 409,
           "campaign_closed": 404}  # 404 as the rating page answers for a campaign the user may not rate


def _campaign(request: HttpRequest, pk: int):
    return get_object_or_404(selectors.campaign_list_rateable(request.user), pk=pk)


def _answer(request: HttpRequest) -> dict:
    """The submitted answer fields; ValueError names the bad field."""
    preferred = request.POST.get("preferred", "")
    if preferred not in ("left", "right"):
        raise ValueError("preferred: must be 'left' or 'right'")
    raw = request.POST.get("certainty", "").strip()
    try:
        certainty = int(raw) if raw else None
    except ValueError:
        raise ValueError("certainty: must be 1..4 or empty") from None
    if certainty is not None and certainty not in CERTAINTY_LABELS:
        raise ValueError("certainty: must be 1..4 or empty")
    return {
        "preferred": preferred, "certainty": certainty,
        "note_left": request.POST.get("note_left", "")[:5000], "note_right": request.POST.get("note_right", "")[:5000],
    }


# --- pages ------------------------------------------------------------------------------------


@require_GET
def campaign_list(request: HttpRequest) -> HttpResponse:
    return render(request, "labeling/rating/campaign_list.html", {"campaigns": selectors.campaign_list_for_annotator(request.user)})


@require_GET
def rate(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = _campaign(request, pk)
    return render(request, "labeling/rating/rate.html", {"campaign": campaign})


@require_GET
def my_history(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = _campaign(request, pk)
    return render(request, "labeling/rating/history.html", {
        "campaign": campaign,
        "progress": selectors.campaign_progress(campaign=campaign, user=request.user),
        "rows": selectors.assignment_history_rows(campaign=campaign, user=request.user),
        "undoable": selectors.assignment_undoable(campaign=campaign, user=request.user),
    })


@staff_required(message="Only staff can see campaign progress and quality.")
@require_GET
def campaign_stats(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = selectors.campaign_get(campaign_id=pk)
    if campaign is None:
        raise Http404("no such campaign")
    report = selectors.campaign_quality(campaign)
    agree, compared = selectors.overall_agreement(report["annotators"])
    done = report["totals"]["done"] or 0
    return render(request, "labeling/rating/stats.html", {
        "campaign": campaign, **report, "agree": agree, "compared": compared,
        "percent": round(100 * done / report["needed"]) if report["needed"] else 100,
        "annotator_names": selectors.campaign_annotator_names(campaign),
    })


# --- htmx partials ----------------------------------------------------------------------------


_RESTORE_KEY = "rating_restore"


def _pair_partial(request: HttpRequest, campaign, notice: str = "", error: str = "",
                  restore: dict | None = None) -> HttpResponse:
    """The pair box: progress, the notice, and the annotator's current pair (leased on demand).

    `restore` (from an undo) pre-fills the earlier choice, certainty and notes when it belongs to
    the pair shown."""
    assignment = assignments.assignment_next(campaign=campaign, user=request.user)
    ctx = {
        "campaign": campaign, "notice": notice, "error": error, "certainty_choices": CERTAINTY_CHOICES,
        "progress": selectors.campaign_progress(campaign=campaign, user=request.user),
    }
    if assignment is not None:
        assignment = selectors.assignment_get_pair(assignment.pk)
        ctx["assignment"] = assignment
        ctx["left"], ctx["right"] = selectors.assignment_shown_order(assignment)
        ctx["post"] = assignment.item.comparison.post
        if restore and restore.get("assignment") == assignment.pk:
            ctx["restore"] = restore
    return render(request, "labeling/rating/_pair.html", ctx)


@require_POST
def pair_next(request: HttpRequest, pk: int) -> HttpResponse:
    # An undo made from the history page left the earlier answer here for the rating page.
    restore = request.session.pop(_RESTORE_KEY, None) if _RESTORE_KEY in request.session else None
    notice = ""
    if restore and restore.get("campaign") == pk:
        notice = restore.get("notice", "")
    return _pair_partial(request, _campaign(request, pk), notice=notice, restore=restore)


@require_POST
def pair_submit(request: HttpRequest, cpk: int, pk: int) -> HttpResponse:
    campaign = _campaign(request, cpk)
    try:
        assignments.label_submit(user=request.user, assignment_id=pk, **_answer(request))
    except ValueError as exc:
        return _pair_partial(request, campaign, error=str(exc))
    except QueueError as exc:
        if isinstance(exc, assignments.LeaseNotYours):
            return HttpResponse(str(exc), status=403)
        return _pair_partial(request, campaign, error=str(exc))
    return _pair_partial(request, campaign, notice="Saved.")


@require_POST
def pair_skip(request: HttpRequest, cpk: int, pk: int) -> HttpResponse:
    campaign = _campaign(request, cpk)
    try:
        assignments.assignment_skip(user=request.user, assignment_id=pk)
    except assignments.LeaseNotYours as exc:
        return HttpResponse(str(exc), status=403)
    except QueueError as exc:
        return _pair_partial(request, campaign, error=str(exc))
    return _pair_partial(request, campaign, notice="Skipped.")


@require_POST
def pair_undo(request: HttpRequest, pk: int) -> HttpResponse:
    """Undo the latest answer or skip. From the history page (field `from=history`) it goes on to
    the rating page, which then shows the pair with the earlier answer filled in."""
    campaign = _campaign(request, pk)
    from_history = request.POST.get("from") == "history"
    try:
        a = assignments.assignment_undo(user=request.user, campaign=campaign)
    except QueueError as exc:
        if from_history:
            messages.error(request, str(exc))
            return redirect("labeling:history", pk=campaign.pk)
        return _pair_partial(request, campaign, error=str(exc))
    if a.undone is None:
        notice, restore = "Skip undone: here is that pair again.", {"assignment": a.pk}
    else:
        notice = "Undone: your earlier answer is filled in; choose again."
        restore = {"assignment": a.pk, **a.undone}
    if from_history:
        request.session[_RESTORE_KEY] = {**restore, "campaign": campaign.pk, "notice": notice}
        return redirect("labeling:rate", pk=campaign.pk)
    return _pair_partial(request, campaign, notice=notice, restore=restore)


# --- JSON API (scripts, load benchmark) -------------------------------------------------------


@require_POST
def api_next(request: HttpRequest, pk: int) -> JsonResponse:
    campaign = selectors.campaign_get_rateable(request.user, pk)
    if campaign is None:
        return JsonResponse({"error": "not_found"}, status=404)
    assignment = assignments.assignment_next(campaign=campaign, user=request.user)
    if assignment is None:
        return JsonResponse({"assignment": None})
    return JsonResponse({
        "assignment": assignment.pk, "expires_at": assignment.expires_at.isoformat(),
        **selectors.assignment_pair_payload(assignment.pk),
    })


@require_POST
def api_submit(request: HttpRequest, pk: int) -> JsonResponse:
    try:
        label, created = assignments.label_submit(user=request.user, assignment_id=pk, **_answer(request))
    except ValueError as exc:
        return JsonResponse({"error": "bad_input", "detail": str(exc)}, status=400)
    except QueueError as exc:
        return JsonResponse({"error": exc.code, "detail": str(exc)}, status=_STATUS.get(exc.code, 409))
    return JsonResponse({"label": label.pk, "created": created}, status=201 if created else 200)
