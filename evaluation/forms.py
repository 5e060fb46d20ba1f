"""The filter form shared by every dashboard (GET): dataset, campaign, date range."""
from __future__ import annotations

from django import forms

from labeling.models import Campaign, Dataset

from .selectors import Filters


class FilterForm(forms.Form):
    dataset = forms.ModelChoiceField(Dataset.objects.all(), to_field_name="name", required=False, empty_label="All datasets")
    campaign = forms.ModelChoiceField(Campaign.objects.all(), to_field_name="name", required=False, empty_label="All campaigns")
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To")

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError("'From' must not be after 'To'.")
        return data

    def filters(self) -> Filters:
        """The validated filters; call after is_valid()."""
        d = self.cleaned_data
        return Filters(
            dataset=d["dataset"].name if d.get("dataset") else None,
            campaign=d["campaign"].name if d.get("campaign") else None,
            date_from=d.get("date_from"),
            date_to=d.get("date_to"),
        )
