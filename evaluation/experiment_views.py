"""Pages of the paper-in-miniature experiment: the list, the staff "new experiment" form, one
experiment's steps (linked to their jobs and runs) and report, and the report as JSON. Thin: the
driver is `experiments.py`, the tables come from `experiment_report.report_tables`."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from rlaif_site.permissions import staff_required

from . import experiment_plan, experiments
from .experiment_report import report_tables
from .models import Experiment


class ExperimentForm(forms.Form):
    preset = forms.ChoiceField(choices=[(p.name, f"{p.name}: {p.description}")
                                        for p in experiment_plan.PRESETS.values()])
    name = forms.CharField(max_length=200, required=False)


def _step_rows(exp: Experiment) -> list[dict]:
    plan = experiment_plan.preset_get(exp.preset)
    rows = []
    for step in experiments.step_names(plan):
        ref = exp.steps.get(step, {})
        url = None
        if ref.get("kind") == "job":
            url = reverse("labeling:ai_job_detail", args=[ref["id"]])
        elif ref.get("kind") == "run":
            url = reverse("training:run_detail", args=[ref["id"]])
        state = "done" if "seconds" in ref else ("running" if step == exp.step and exp.status == "running"
                                                  else ("failed" if step == exp.step and exp.status == "failed"
                                                        else "waiting"))
        rows.append({"step": step, "kind": ref.get("kind"), "id": ref.get("id"), "url": url,
                     "seconds": ref.get("seconds"), "state": state})
    return rows


@require_GET
def experiment_list(request: HttpRequest) -> HttpResponse:
    return render(request, "evaluation/experiments.html", {
        "experiments": Experiment.objects.all()[:100], "form": ExperimentForm(),
        "presets": experiment_plan.PRESETS.values()})


@staff_required(message="Only staff start experiments.")
@require_http_methods(["POST"])
def experiment_new(request: HttpRequest) -> HttpResponse:
    form = ExperimentForm(request.POST)
    if form.is_valid():
        try:
            exp = experiments.experiment_create(preset=form.cleaned_data["preset"], name=form.cleaned_data["name"],
                                                created_by=request.user)
        except experiments.ExperimentError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Experiment {exp.pk} queued on the gpu workers.")
            return redirect("evaluation:experiment_detail", pk=exp.pk)
    return render(request, "evaluation/experiments.html", {
        "experiments": Experiment.objects.all()[:100], "form": form,
        "presets": experiment_plan.PRESETS.values()}, status=400)


@require_GET
def experiment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    exp = get_object_or_404(Experiment, pk=pk)
    template = "evaluation/_experiment_body.html" if request.headers.get("HX-Request") else "evaluation/experiment.html"
    return render(request, template, {
        "exp": exp, "steps": _step_rows(exp), "tables": report_tables(exp.report) if exp.report else [],
        "samples": (exp.report or {}).get("samples", []), "live": exp.status in ("queued", "running")})


@require_GET
def experiment_json(request: HttpRequest, pk: int) -> JsonResponse:
    exp = get_object_or_404(Experiment, pk=pk)
    return JsonResponse({"id": exp.pk, "name": exp.name, "preset": exp.preset, "status": exp.status,
                         "step": exp.step, "error": exp.error, "sizes": exp.sizes,
                         "steps": {r["step"]: {k: r[k] for k in ("kind", "id", "seconds", "state")}
                                   for r in _step_rows(exp)},
                         "report": exp.report})
