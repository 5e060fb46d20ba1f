"""Dashboard views: thin wrappers around the page builders (``pages.py``); htmx partials; CSV/JSON export."""
from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from rlaif_site.permissions import ensure_staff, staff_required

from . import cache, pages, selectors, services, tables
from .compute import HUMANS
from .forms import FilterForm


def _filters(request: HttpRequest):
    form = FilterForm(request.GET or None)
    if request.GET and not form.is_valid():
        return form, None
    return form, (form.filters() if request.GET else selectors.Filters())


def _page(request: HttpRequest, page: str, template: str, **kwargs) -> HttpResponse:
    form, f = _filters(request)
    if f is None:
        return render(request, "evaluation/invalid.html", {"form": form, "page": page}, status=400)
    data = pages.PAGES[page](f, **kwargs)
    ctx = {
        **data, "form": form, "page": page, "filters": f, "query": urlencode(f.query()),
        "export_query": urlencode({**f.query(), **{k: v for k, v in kwargs.items() if v}}),
    }
    return render(request, template, ctx)  # htmx filter submits pick #dashboard out with hx-select


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return redirect("evaluation:alignment")


@require_GET
def alignment(request: HttpRequest) -> HttpResponse:
    return _page(request, "alignment", "evaluation/alignment.html")


@require_GET
def winrates(request: HttpRequest) -> HttpResponse:
    return _page(request, "winrates", "evaluation/winrates.html", judge=request.GET.get("judge", HUMANS))


@require_GET
def leaderboard(request: HttpRequest) -> HttpResponse:
    return _page(request, "leaderboard", "evaluation/leaderboard.html")


STAFF_ONLY_PAGES = {"annotators"}  # per-person throughput and accuracy: not for other annotators' eyes


@staff_required(message="The annotator dashboard is for staff.")
@require_GET
def annotators(request: HttpRequest) -> HttpResponse:
    return _page(request, "annotators", "evaluation/annotators.html")


@require_GET
def winrate_cell(request: HttpRequest) -> HttpResponse:
    """htmx partial: the comparisons behind one cell of the win-rate matrix."""
    form, f = _filters(request)
    try:
        x, y = int(request.GET["x"]), int(request.GET["y"])
    except (KeyError, ValueError):
        return HttpResponseBadRequest("x and y must be policy ids")
    if f is None:
        return HttpResponseBadRequest("invalid filters")
    judge = request.GET.get("judge", HUMANS)
    if not judge.startswith("config:"):
        judge = HUMANS
    pols = selectors.policies([x, y])
    if len(pols) != 2:
        raise Http404("unknown policy")
    rows = selectors.cell_comparisons(f, x, y, judge)
    return render(request, "evaluation/_cell.html", {"rows": rows, "x": pols[x], "y": pols[y], "judge": judge})


@require_GET
def status(request: HttpRequest) -> HttpResponse:
    """htmx poll while the worker computes; asks the page to reload once the result is ready."""
    form, f = _filters(request)
    if f is None:
        return HttpResponseBadRequest("invalid filters")
    # no aggregates: the poll only asks whether the result is ready (and asks again for a
    # refresh the rate limit held back, deduplicated)
    state = cache.cache_state(f, needs=())
    if not state.pending and state.result is not None:
        response = HttpResponse("")
        response["HX-Refresh"] = "true"
        return response
    return render(request, "evaluation/_status.html", {"state": state, "query": urlencode(f.query()), "filters": f})


@staff_required
@require_POST
def refresh(request: HttpRequest) -> HttpResponse:
    form = FilterForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("invalid filters")
    f = form.filters()
    services.request_refresh(filters=f, force=True)
    state = cache.cache_state(f, auto_refresh=False)
    if request.htmx:
        return render(request, "evaluation/_status.html", {"state": state, "query": urlencode(f.query()), "filters": f})
    return redirect(reverse("evaluation:index") + "?" + urlencode(f.query()))


@require_GET
def export(request: HttpRequest, page: str, table: str, fmt: str) -> HttpResponse:
    if fmt not in ("csv", "json") or page not in pages.PAGES:
        raise Http404("unknown export")
    if page in STAFF_ONLY_PAGES:
        ensure_staff(request.user, "The annotator dashboard is for staff.")
    form, f = _filters(request)
    if f is None:
        return HttpResponseBadRequest("invalid filters")
    kwargs = {"judge": request.GET.get("judge", HUMANS)} if page == "winrates" else {}
    try:
        t = pages.export_table(f, page, table, auto_refresh=False, **kwargs)
    except KeyError as exc:
        raise Http404("unknown table") from exc
    if fmt == "csv":
        response = HttpResponse(tables.table_csv(t), content_type="text/csv; charset=utf-8")
    else:
        response = HttpResponse(tables.table_json(t, f.query()), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{page}-{table}.{fmt}"'
    return response
