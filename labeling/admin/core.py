"""Admin: datasets, posts, policies, summaries, comparisons, human labels; the "Import file" page.

Pages stay fast with 100k rows: foreign keys are raw-id or autocomplete widgets (no 100k-option
selects), change lists select their related rows in the same query and skip the unfiltered
full count, and list filters only offer short lists (datasets, policies, kinds, choices).
"""
from __future__ import annotations

import uuid
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.text import Truncator, get_valid_filename

from ..importers import FORMATS
from ..models import Comparison, Dataset, HarmlessnessLabel, HumanLabel, ImportJob, Policy, Post, Summary
from ..services.datasets import dataset_delete_refusal, datasets_archive
from ..services.import_jobs import import_job_create, import_job_run
from ..services.imports import ImportResult

# Uploads bigger than this are imported by the Celery task `import_file` instead of in the request.
BACKGROUND_IMPORT_BYTES = 20 * 1024 * 1024


def _short(text: str, n: int = 80) -> str:
    return Truncator(text).chars(n)


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "task", "source", "archived_at", "created_at"]
    list_filter = ["task", ("archived_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "source"]
    readonly_fields = ["archived_at"]
    actions = ["archive", "unarchive"]

    def get_actions(self, request):
        # Bulk delete would list (and delete) every post, summary and label in one request.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_view(self, request, object_id, extra_context=None):
        """Refuse large datasets and datasets with human labels before Django lists their rows."""
        dataset = self.get_object(request, object_id)
        if dataset is not None:
            reason = dataset_delete_refusal(dataset)
            if reason:
                messages.error(request, reason)
                return redirect(reverse("admin:labeling_dataset_change", args=[dataset.pk]))
        return super().delete_view(request, object_id, extra_context)

    @admin.action(description="Archive the selected datasets (keep every label)")
    def archive(self, request, queryset):
        n = datasets_archive(dataset_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Archived {n} dataset(s).", messages.SUCCESS)

    @admin.action(description="Restore the selected datasets from the archive")
    def unarchive(self, request, queryset):
        n = datasets_archive(dataset_ids=list(queryset.values_list("pk", flat=True)), archived=False)
        self.message_user(request, f"Restored {n} dataset(s).", messages.SUCCESS)


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ["external_id", "dataset", "subreddit", "short_title", "created_at"]
    list_filter = ["dataset"]
    search_fields = ["external_id", "title", "=subreddit", "=content_sha256"]
    list_select_related = ["dataset"]
    readonly_fields = ["content_sha256", "created_at"]
    show_full_result_count = False

    @admin.display(description="title")
    def short_title(self, obj: Post) -> str:
        return _short(obj.title or obj.text)


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "description"]


@admin.register(Summary)
class SummaryAdmin(admin.ModelAdmin):
    list_display = ["id", "policy", "post", "is_reference", "short_text"]
    list_filter = ["is_reference", "policy__kind", "policy", "post__dataset"]
    search_fields = ["=id", "post__external_id", "text"]
    raw_id_fields = ["post"]
    autocomplete_fields = ["policy"]
    list_select_related = ["policy", "post"]
    readonly_fields = ["text_sha256", "created_at"]
    show_full_result_count = False

    @admin.display(description="text")
    def short_text(self, obj: Summary) -> str:
        return _short(obj.text)


class ImportFileForm(forms.Form):
    file = forms.FileField(help_text="JSON Lines (one object per line).")
    kind = forms.ChoiceField(choices=[
        ("comparisons", "Comparisons with human labels (import_comparisons)"),
        ("posts", "Posts with reference summaries (import_posts)"),
    ])
    format = forms.ChoiceField(
        choices=[("", "detect from the first record")] + [(f, f) for f in FORMATS], required=False,
        help_text="Comparisons only.",
    )
    dataset = forms.CharField(required=False, max_length=200, help_text="Default: derived from the file name.")
    make_pairs = forms.BooleanField(
        required=False, initial=True, help_text="Posts only: one unlabeled reference-vs-policy comparison per post."
    )
    background = forms.BooleanField(
        required=False, help_text=f"Run in a Celery worker (always for files over {BACKGROUND_IMPORT_BYTES >> 20} MB).",
    )


def _save_upload(upload) -> Path:
    """Stream the upload to disk under its own name (so errors name the file the user sent)."""
    folder = Path(settings.VAR_DIR) / "uploads" / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / (get_valid_filename(Path(upload.name).name) or "upload.jsonl")
    with dest.open("wb") as fh:
        for chunk in upload.chunks():
            fh.write(chunk)
    return dest


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ["id", "post", "policy_a", "policy_b", "gold_choice", "created_at"]
    list_filter = ["post__dataset", "gold_choice"]
    search_fields = ["=id", "post__external_id", "post__title"]
    raw_id_fields = ["post", "summary_a", "summary_b"]
    # policy_a/policy_b are the comparison's stored facts: the list joins no summary
    list_select_related = ["post", "policy_a", "policy_b"]
    readonly_fields = ["policy_a", "policy_b", "len_a", "len_b", "overlap_a", "overlap_b"]
    show_full_result_count = False

    def get_urls(self):
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="labeling_comparison_import"),
        ] + super().get_urls()

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Upload a file and run the same import service as the shell commands."""
        if not (request.user.is_staff and self.has_add_permission(request)):
            raise PermissionDenied
        result = error = None
        if request.method == "POST":
            form = ImportFileForm(request.POST, request.FILES)
            if form.is_valid():
                data = form.cleaned_data
                dest = _save_upload(data["file"])
                kwargs = {"dataset": data["dataset"] or None}
                if data["kind"] == "posts":
                    kwargs["make_pairs"] = data["make_pairs"]
                else:
                    kwargs["fmt"] = data["format"] or None
                background = data["background"] or dest.stat().st_size > BACKGROUND_IMPORT_BYTES
                job = import_job_create(
                    path=dest, file_name=dest.name, kind=data["kind"], fmt=kwargs.get("fmt") or "",
                    dataset=kwargs["dataset"] or "", make_pairs=kwargs.get("make_pairs", True),
                    created_by=request.user, background=background)
                job_url = reverse("admin:labeling_importjob_change", args=[job.pk])
                if background:
                    messages.info(request, f"{dest.name} is queued for import by a worker: import job {job.pk} "
                                           "shows its status, counts or error.")
                    return redirect(job_url)
                job = import_job_run(job_id=job.pk)
                if job.status == job.Status.DONE:
                    result = ImportResult(**job.counts)
                else:
                    error = job.error
        else:
            form = ImportFileForm()
        status = 400 if error else 200
        return TemplateResponse(
            request, "admin/labeling/comparison/import_file.html",
            self._context(request, form, result=result, error=error), status=status,
        )

    def _context(self, request: HttpRequest, form: ImportFileForm, **extra) -> dict:
        return {
            **self.admin_site.each_context(request),
            "title": "Import file",
            "opts": self.model._meta,
            "form": form,
            "changelist_url": reverse("admin:labeling_comparison_changelist"),
            **extra,
        }


@admin.register(HumanLabel)
class HumanLabelAdmin(admin.ModelAdmin):
    list_display = ["id", "comparison", "who", "choice", "confidence", "a_shown_first", "campaign", "created_at"]
    list_filter = ["choice", "confidence", "a_shown_first", "comparison__post__dataset", "campaign"]
    search_fields = ["=id", "worker_id", "annotator__username", "import_key", "=comparison__id"]
    raw_id_fields = ["comparison", "annotator", "campaign"]
    list_select_related = ["annotator", "campaign", "comparison"]
    readonly_fields = ["created_at"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(HarmlessnessLabel)
class HarmlessnessLabelAdmin(admin.ModelAdmin):
    """Judgments of single responses (imported with `import_harmlessness`)."""

    list_display = ["id", "summary", "worker_id", "harmless", "created_at"]
    list_filter = ["harmless", "summary__policy", "summary__post__dataset"]
    search_fields = ["=id", "worker_id", "import_key", "=summary__id"]
    raw_id_fields = ["summary"]
    readonly_fields = ["created_at"]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    """The status page of an upload's import: status, counts, and the error with file, line and field."""

    list_display = ["id", "file_name", "kind", "dataset", "status", "short_error", "created_by", "created_at",
                    "finished_at"]
    list_filter = ["status", "kind"]
    search_fields = ["=id", "file_name", "dataset", "error"]
    # The server path and the lease token stay off the page.
    fields = ["file_name", "size_bytes", "kind", "fmt", "dataset", "make_pairs", "status", "counts", "error",
              "error_line", "error_field", "recoveries", "created_by", "created_at", "started_at", "finished_at",
              "heartbeat_at"]
    readonly_fields = fields

    @admin.display(description="error")
    def short_error(self, obj: ImportJob) -> str:
        return _short(obj.error, 120)

    def has_add_permission(self, request) -> bool:
        return False  # jobs come from the "Import file" page

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # read-only status page (view permission)

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_staff

