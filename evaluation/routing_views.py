"""Views of hybrid labeling on the evaluation side: the calibration section of the alignment page
(an htmx partial with its own CSV/JSON export), the Routing dashboard (simulated human budgets,
chart, CSV/JSON export, reward-model comparisons) and its staff-only launch of a routing report.
Thin: data from `routing_pages`, writes through `routing_services`."""
from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from labeling.judges.trust import CRITERIA
from labeling.selectors.ai import labeler_config_list
from labeling.selectors.datasets import dataset_first
from rlaif_site.permissions import ensure_staff

from . import routing, routing_pages
from .forms import FilterForm, ReportForm, RoutingForm
from .routing_services import routing_report_create
from .selectors import Filters


def _filters(request: HttpRequest) -> Filters | None:
    form = FilterForm(request.GET or None)
    if request.GET and not form.is_valid():
        return None
    return form.filters() if request.GET else Filters()


@require_GET
def calibration(request: HttpRequest) -> HttpResponse:
    """The calibration section of the alignment page (loaded by htmx, or alone)."""
    f = _filters(request)
    if f is None:
        return HttpResponseBadRequest("invalid filters")
    data = routing_pages.calibration_data(f)
    chart = [{"judge": r["judge"], "kind": r["kind"], "bins": r["bins"]} for r in data["rows"] if r["n"]]
    return render(request, "evaluation/_calibration.html", {
        **data, "chart": chart, "query": urlencode(f.query()),
    })


@require_GET
def calibration_export(request: HttpRequest, fmt: str) -> HttpResponse:
    if fmt not in ("csv", "json"):
        raise Http404("unknown export format")
    f = _filters(request)
    if f is None:
        return HttpResponseBadRequest("invalid filters")
    rows = routing_pages.calibration_table_rows(routing_pages.calibration_data(f))
    if fmt == "csv":
        response = HttpResponse(routing_pages.routing_csv(rows), content_type="text/csv; charset=utf-8")
    else:
        response = HttpResponse(json.dumps({"filters": f.query(), "rows": rows}, indent=2),
                                content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="calibration.{fmt}"'
    return response


def _routing_form(request: HttpRequest) -> RoutingForm:
    initial = {}
    if not request.GET:
        ds = dataset_first(order_by="name")
        cfg = labeler_config_list().first()
        initial = {"dataset": ds.name if ds else None, "config": cfg.name if cfg else None}
    data = request.GET.copy() if request.GET else None
    if data is not None and not data.get("criterion"):
        data["criterion"] = "margin"
    return RoutingForm(data, initial=initial) if data is not None else RoutingForm(initial=initial)


@require_GET
def routing_dashboard(request: HttpRequest) -> HttpResponse:
    form = _routing_form(request)
    ctx: dict = {"form": form, "criteria": CRITERIA, "page": "routing"}
    if form.is_bound and form.is_valid():
        d = form.cleaned_data
        ri = routing_pages.routing_input(dataset=d["dataset"], config=d["config"], criterion=d["criterion"] or "margin")
        rows = routing_pages.routing_points(ri)
        ctx.update(ri=ri, rows=rows, headline=routing.headline(ri.sim) if ri.sim else None,
                   chart={"points": rows, "headline": routing.headline(ri.sim) if ri.sim else None},
                   export_query=urlencode({"dataset": d["dataset"].name, "config": d["config"].name,
                                           "criterion": d["criterion"] or "margin"}),
                   reports=routing_pages.report_rows(dataset=d["dataset"], config=d["config"]),
                   report_form=ReportForm(initial={"dataset": d["dataset"].name, "config": d["config"].name,
                                                   "criterion": d["criterion"] or "margin"}))
    elif not form.is_bound:
        ctx.update(reports=routing_pages.report_rows())
    return render(request, "evaluation/routing.html", ctx, status=400 if form.is_bound and form.errors else 200)


@require_GET
def routing_export(request: HttpRequest, fmt: str) -> HttpResponse:
    if fmt not in ("csv", "json"):
        raise Http404("unknown export format")
    form = RoutingForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest("dataset and config are required: " + "; ".join(
            f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    d = form.cleaned_data
    ri = routing_pages.routing_input(dataset=d["dataset"], config=d["config"], criterion=d["criterion"] or "margin")
    rows = routing_pages.routing_points(ri)
    if fmt == "csv":
        response = HttpResponse(routing_pages.routing_csv(rows), content_type="text/csv; charset=utf-8")
    else:
        response = HttpResponse(routing_pages.routing_json(ri, rows), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="routing.{fmt}"'
    return response


@require_POST
def routing_report_launch(request: HttpRequest) -> HttpResponse:
    """Staff only: queue the hybrid / human-only / AI-only reward models at a budget."""
    ensure_staff(request.user, "Only staff launch training runs.")
    form = ReportForm(request.POST)
    if form.is_valid():
        d = form.cleaned_data
        try:
            report = routing_report_create(dataset=d["dataset"], config=d["config"], budget=d["budget"],
                                           criterion=d["criterion"] or "margin", hyperparameters=d["hyperparameters"],
                                           created_by=request.user)
        except ValidationError as exc:
            for msg in (exc.messages if not hasattr(exc, "error_dict") else
                        [f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()]):
                form.add_error(None, msg)
        else:
            messages.info(request, f"Routing report {report.pk}: three reward-model runs queued.")
            return redirect(reverse("evaluation:routing") + "?" + urlencode(
                {"dataset": d["dataset"].name, "config": d["config"].name, "criterion": report.criterion}))
    return render(request, "evaluation/routing.html", {
        "form": RoutingForm(request.POST), "report_form": form, "criteria": CRITERIA, "page": "routing",
        "launch_errors": True,
    }, status=400)
