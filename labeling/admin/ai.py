"""Admin: labeler configs, AI labeling jobs (with a launch page), AI labels.

Launching: "AI labeling jobs → Launch a job" (or the "Launch a job with this config" action on
labeler configs) picks a config and a set of comparisons (dataset, limit, explicit ids) and
queues the job on Celery queue "gpu". Staff only, as the whole admin.
"""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from ..models import AILabel, AILabelingJob, JobStatus, LabelerConfig
from ..services import ai_labeling
from .routing import route_from_ai_uncertainty


class LabelerConfigForm(forms.ModelForm):
    class Meta:
        model = LabelerConfig
        fields = "__all__"

    def clean(self):
        """The service's rule for API key variables and base URLs (the same as for config files)."""
        cleaned = super().clean()
        ai_labeling.labeler_config_check(LabelerConfig(api_key_env=cleaned.get("api_key_env") or "",
                                               base_url=cleaned.get("base_url") or ""))
        return cleaned


@admin.register(LabelerConfig)
class LabelerConfigAdmin(admin.ModelAdmin):
    form = LabelerConfigForm
    list_display = ("name", "backend", "model", "preamble", "shots", "chain_of_thought", "self_consistency_n",
                    "both_orders", "is_noise", "reachable", "reachability_detail")
    list_filter = ("backend", "preamble", "chain_of_thought", "is_noise")
    search_fields = ("name", "model")
    actions = ["launch_job", "test_connection", route_from_ai_uncertainty]
    readonly_fields = ("exemplar_list", "reachable", "reachability_detail", "reachability_checked_at")

    @admin.display(description="Fixed exemplars in use")
    def exemplar_list(self, obj):
        """The stored exemplars (chosen by the config's first job), linked to their comparisons."""
        if not obj.exemplars:
            return "none yet: chosen by the first job when shots > 0" if obj.shots else "none (0-shot)"
        return format_html_join(", ", '<a href="{}">comparison {}</a> (Summary {} preferred)', (
            (reverse("admin:labeling_comparison_change", args=[e["comparison"]]), e["comparison"], e["preferred"])
            for e in obj.exemplars))

    @admin.action(description="Test connection from a gpu worker (server or model reachable?)")
    def test_connection(self, request, queryset):
        from ..services.connection import labeler_config_test_queue

        for config in queryset:
            labeler_config_test_queue(config=config)
        self.message_user(request, f"Testing {queryset.count()} config(s) from a gpu worker; the Reachable column "
                                   "shows the answer in a few seconds.", messages.INFO)

    @admin.action(description="Launch an AI labeling job with this config")
    def launch_job(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Pick exactly one config.", messages.WARNING)
            return None
        return redirect(reverse("admin:labeling_ailabelingjob_launch") + f"?config={queryset.get().pk}")


@admin.register(AILabelingJob)
class AILabelingJobAdmin(admin.ModelAdmin):
    list_display = ("id", "config", "status", "done", "failed", "total", "tokens_processed", "created_by",
                    "created_at", "job_page")
    list_filter = ("status", "config")
    readonly_fields = ("config", "status", "phase", "total", "done", "failed", "tokens_processed", "errors", "created_by",
                       "created_at", "started_at", "finished_at", "heartbeat_at", "recoveries", "log", "job_page")
    exclude = ("comparisons",)
    actions = ["resume_jobs", "cancel_jobs"]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """Every field is read-only here, so the page offers no Save buttons."""
        no_save = {"show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False}
        return super().change_view(request, object_id, form_url, {**no_save, **(extra_context or {})})

    @admin.display(description="Job page")
    def job_page(self, obj):
        return format_html('<a href="{}">progress</a>', reverse("labeling:ai_job_detail", args=[obj.pk]))

    def get_urls(self):
        return [path("launch/", self.admin_site.admin_view(self.launch_view), name="labeling_ailabelingjob_launch")] + super().get_urls()

    def add_view(self, request, form_url="", extra_context=None):
        return redirect("admin:labeling_ailabelingjob_launch")

    def launch_view(self, request):
        from ..forms import LaunchForm

        if not self.has_add_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        form = LaunchForm(request.POST or None, initial={"config": request.GET.get("config"), "only_unlabeled": True})
        if request.method == "POST" and form.is_valid():
            job = form.launch(created_by=request.user)
            if job is not None:
                self.message_user(request, f"Job {job.pk} queued: {job.total} comparisons.")
                return redirect("labeling:ai_job_detail", pk=job.pk)
        context = {**self.admin_site.each_context(request), "title": "Launch an AI labeling job", "form": form,
                   "opts": self.model._meta}
        return TemplateResponse(request, "labeling/ai/admin_launch.html", context)

    @admin.action(description="Resume (queue again) the selected failed, cancelled or stalled jobs")
    def resume_jobs(self, request, queryset):
        n = 0
        for job in queryset.exclude(status=JobStatus.DONE):
            ai_labeling.ai_labeling_job_resume(job=job)
            n += 1
        self.message_user(request, f"{n} job(s) queued again.")

    @admin.action(description="Cancel the selected jobs")
    def cancel_jobs(self, request, queryset):
        for job in queryset:
            ai_labeling.ai_labeling_job_cancel(job=job)
        self.message_user(request, "Cancelled.")


@admin.register(AILabel)
class AILabelAdmin(admin.ModelAdmin):
    list_display = ("id", "comparison", "config", "p_a", "p_a_ab", "p_a_ba", "consistent", "truncated", "score_method",
                    "short_error")
    list_filter = ("config", "consistent", "truncated", "score_method")
    raw_id_fields = ("comparison", "job")
    readonly_fields = ("created_at",)

    @admin.display(description="Error")
    def short_error(self, obj):
        return obj.error[:80]
