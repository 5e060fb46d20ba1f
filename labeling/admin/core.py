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
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.text import Truncator, get_valid_filename

from ..importers import FORMATS, ImportFileError
from ..models import Comparison, Dataset, HarmlessnessLabel, HumanLabel, Policy, Post, Summary
from ..services.imports import comparison_import, posts_import

# Uploads bigger than this are imported by the Celery task `import_file` instead of in the request.
BACKGROUND_IMPORT_BYTES = 20 * 1024 * 1024


def _short(text: str, n: int = 80) -> str:
    return Truncator(text).chars(n)


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "task", "source", "created_at"]
    list_filter = ["task"]
    search_fields = ["name", "source"]


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


def _remove(dest: Path) -> None:
    dest.unlink(missing_ok=True)
    try:
        dest.parent.rmdir()
    except OSError:
        pass


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ["id", "post", "policy_a", "policy_b", "gold_choice", "created_at"]
    list_filter = ["post__dataset", "gold_choice"]
    search_fields = ["=id", "post__external_id", "post__title"]
    raw_id_fields = ["post", "summary_a", "summary_b"]
    list_select_related = ["post", "summary_a__policy", "summary_b__policy"]
    show_full_result_count = False

    @admin.display(description="policy A")
    def policy_a(self, obj: Comparison) -> str:
        return obj.summary_a.policy.name

    @admin.display(description="policy B")
    def policy_b(self, obj: Comparison) -> str:
        return obj.summary_b.policy.name

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
                if data["background"] or dest.stat().st_size > BACKGROUND_IMPORT_BYTES:
                    from ..tasks.imports import import_file

                    transaction.on_commit(lambda: import_file.delay(
                        str(dest), kind=data["kind"], delete_after=True, **kwargs))
                    messages.info(request, f"{dest.name} is queued for import by a worker.")
                    return TemplateResponse(request, "admin/labeling/comparison/import_file.html",
                                            self._context(request, ImportFileForm(), queued=dest.name))
                try:
                    if data["kind"] == "posts":
                        result = posts_import(path=dest, **kwargs)
                    else:
                        result = comparison_import(path=dest, **kwargs)
                except ImportFileError as exc:
                    error = str(exc)
                finally:
                    _remove(dest)
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
