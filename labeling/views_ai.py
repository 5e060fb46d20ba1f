"""AI labeling pages (staff only): job list, launch form, job page with an htmx-polled progress
partial, cancel and resume. Thin: reads through selectors, writes through services."""
from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from rlaif_site import permissions

from .forms import LaunchForm
from .models import AILabelingJob
from .selectors import ai as ai_selectors
from .services import ai_labeling
from .services import connection


staff_required = permissions.staff_required(message="Only staff can see and launch AI labeling jobs.")


def _job_or_404(pk: int) -> AILabelingJob:
    try:
        return ai_selectors.ai_labeling_job_get(job_id=pk)
    except AILabelingJob.DoesNotExist:
        raise Http404("No such AI labeling job.")


@staff_required
def ai_job_list(request: HttpRequest) -> HttpResponse:
    return render(request, "labeling/ai/job_list.html", {
        "jobs": ai_selectors.ai_labeling_job_list()[:200], "configs": ai_selectors.labeler_config_list(),
    })


@staff_required
def labeler_config_status(request: HttpRequest, pk: int) -> HttpResponse:
    """One config's row (polled while its connection test runs)."""
    return render(request, "labeling/ai/_config_row.html", {"c": _config_or_404(pk)})


@staff_required
@require_POST
def labeler_config_test(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue a connection test of the config on a gpu worker; the row polls for the answer."""
    config = connection.labeler_config_test_queue(config=_config_or_404(pk))
    if request.htmx:
        return render(request, "labeling/ai/_config_row.html", {"c": config})
    return redirect("labeling:ai_job_list")


def _config_or_404(pk: int):
    config = ai_selectors.labeler_config_list().filter(pk=pk).first()
    if config is None:
        raise Http404("No such labeler config.")
    return config


@staff_required
@require_http_methods(["GET", "POST"])
def ai_job_launch(request: HttpRequest) -> HttpResponse:
    form = LaunchForm(request.POST or None, initial={"config": request.GET.get("config")})
    if request.method == "POST" and form.is_valid():
        job = form.launch(created_by=request.user)
        if job is not None:
            messages.info(request, f"Job {job.pk} queued: {job.total} comparisons.")
            return redirect("labeling:ai_job_detail", pk=job.pk)
    return render(request, "labeling/ai/launch.html", {
        "form": form, "unreachable": ai_selectors.labeler_config_list().filter(reachable=False),
    })


@staff_required
def ai_job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job_or_404(pk)
    return render(request, "labeling/ai/job_detail.html", {
        "job": job, "p": ai_selectors.ai_labeling_job_progress(job=job), "labels": ai_selectors.ai_labeling_job_labels(job=job),
    })


@staff_required
def ai_job_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The polled progress box; it also refreshes "Latest labels" (out of band), so the table is
    complete when the job finishes, without a reload."""
    job = _job_or_404(pk)
    return render(request, "labeling/ai/_progress.html", {
        "job": job, "p": ai_selectors.ai_labeling_job_progress(job=job),
        "labels": ai_selectors.ai_labeling_job_labels(job=job), "oob_labels": True,
    })


@staff_required
@require_POST
def ai_job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = ai_labeling.ai_labeling_job_cancel(job=_job_or_404(pk))
    return render(request, "labeling/ai/_progress.html", {"job": job, "p": ai_selectors.ai_labeling_job_progress(job=job)})


@staff_required
@require_POST
def ai_job_resume(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job_or_404(pk)
    try:
        job = ai_labeling.ai_labeling_job_resume(job=job)
    except ValueError as exc:
        return HttpResponse(str(exc), status=409)
    return render(request, "labeling/ai/_progress.html", {"job": job, "p": ai_selectors.ai_labeling_job_progress(job=job)})
