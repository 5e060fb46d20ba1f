"""AI labeling pages (staff only): job list, launch form, job page with an htmx-polled progress
partial, cancel and resume. Thin: reads through selectors, writes through services."""
from __future__ import annotations

from functools import wraps

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from .models import AILabelingJob, Dataset, LabelerConfig
from .selectors import ai as sel
from .services import ai_labeling as svc


def staff_required(view):
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("Only staff can see and launch AI labeling jobs.")
        return view(request, *args, **kwargs)
    return wrapped


class LaunchForm(forms.Form):
    config = forms.ModelChoiceField(queryset=LabelerConfig.objects.order_by("name"))
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("name"), required=False,
                                     help_text="Empty: comparisons of every dataset.")
    limit = forms.IntegerField(min_value=1, required=False, help_text="At most this many comparisons (id order).")
    comparison_ids = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                                     help_text="Optional: exactly these comparison ids (comma or space separated).")
    only_unlabeled = forms.BooleanField(required=False, initial=True,
                                        help_text="Skip comparisons this config has already labelled.")

    def clean_comparison_ids(self) -> list[int]:
        raw = self.cleaned_data["comparison_ids"].replace(",", " ").split()
        try:
            return [int(x) for x in raw]
        except ValueError:
            raise forms.ValidationError("Comparison ids must be whole numbers.")

    def comparisons(self):
        d = self.cleaned_data
        qs = sel.comparisons_to_label(config=d["config"], dataset=d["dataset"], limit=None,
                                      only_unlabeled=d["only_unlabeled"])
        if d["comparison_ids"]:
            qs = qs.filter(pk__in=d["comparison_ids"])
        return list(qs.values_list("pk", flat=True)[: d["limit"]] if d["limit"] else qs.values_list("pk", flat=True))

    def launch(self, *, created_by) -> AILabelingJob | None:
        """Queue a job for the chosen comparisons; None (with a form error) when none matches."""
        ids = self.comparisons()
        if not ids:
            self.add_error(None, "No comparison matches: nothing to label.")
            return None
        return svc.ai_labeling_job_create(config=self.cleaned_data["config"], comparisons=ids, created_by=created_by)


def _job_or_404(pk: int) -> AILabelingJob:
    try:
        return sel.ai_job_get(job_id=pk)
    except AILabelingJob.DoesNotExist:
        raise Http404("No such AI labeling job.")


@staff_required
def ai_job_list(request: HttpRequest) -> HttpResponse:
    return render(request, "labeling/ai/job_list.html", {"jobs": sel.ai_job_list()[:200]})


@staff_required
@require_http_methods(["GET", "POST"])
def ai_job_launch(request: HttpRequest) -> HttpResponse:
    form = LaunchForm(request.POST or None, initial={"config": request.GET.get("config")})
    if request.method == "POST" and form.is_valid():
        job = form.launch(created_by=request.user)
        if job is not None:
            messages.info(request, f"Job {job.pk} queued: {job.total} comparisons.")
            return redirect("labeling:ai_job_detail", pk=job.pk)
    return render(request, "labeling/ai/launch.html", {"form": form})


@staff_required
def ai_job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job_or_404(pk)
    return render(request, "labeling/ai/job_detail.html", {
        "job": job, "p": sel.ai_job_progress(job=job), "labels": sel.ai_job_labels(job=job),
    })


@staff_required
def ai_job_progress(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job_or_404(pk)
    return render(request, "labeling/ai/_progress.html", {"job": job, "p": sel.ai_job_progress(job=job)})


@staff_required
@require_POST
def ai_job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = svc.ai_labeling_job_cancel(job=_job_or_404(pk))
    return render(request, "labeling/ai/_progress.html", {"job": job, "p": sel.ai_job_progress(job=job)})


@staff_required
@require_POST
def ai_job_resume(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job_or_404(pk)
    try:
        job = svc.ai_labeling_job_resume(job=job)
    except ValueError as exc:
        return HttpResponse(str(exc), status=409)
    return render(request, "labeling/ai/_progress.html", {"job": job, "p": sel.ai_job_progress(job=job)})
