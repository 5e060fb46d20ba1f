"""Forms of the labeling app's own pages (the admin reuses them): launching an AI labeling job."""
from __future__ import annotations

from django import forms
from django.conf import settings

from .models import AILabelingJob, Dataset, LabelerConfig
from .selectors import ai as ai_selectors
from .services import ai_labeling


class LaunchForm(forms.Form):
    config = forms.ModelChoiceField(queryset=LabelerConfig.objects.order_by("name"))
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("name"), required=False,
                                     help_text="Empty: comparisons of every dataset.")
    limit = forms.IntegerField(min_value=1, required=False, help_text="At most this many comparisons (id order).")
    comparison_ids = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                                     help_text="Optional: exactly these comparison ids (comma or space separated).")
    only_unlabeled = forms.BooleanField(required=False, initial=True,
                                        help_text="Skip comparisons this config has already labelled.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The default labeler is a real model (settings.DEFAULT_LABELER_CONFIG), never a noise config.
        default = LabelerConfig.objects.filter(name=getattr(settings, "DEFAULT_LABELER_CONFIG", "")).first()
        if default is not None and "config" not in self.initial:
            self.fields["config"].initial = default.pk

    def clean_comparison_ids(self) -> list[int]:
        raw = self.cleaned_data["comparison_ids"].replace(",", " ").split()
        try:
            return [int(x) for x in raw]
        except ValueError:
            raise forms.ValidationError("Comparison ids must be whole numbers.") from None

    def comparisons(self):
        d = self.cleaned_data
        qs = ai_selectors.comparisons_to_label(config=d["config"], dataset=d["dataset"], limit=None,
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
        return ai_labeling.ai_labeling_job_create(config=self.cleaned_data["config"], comparisons=ids, created_by=created_by)
