"""The filter form shared by every dashboard (GET): dataset, campaign, date range, and the judge of
the win-rate pages. Every GET parameter a dashboard reads is validated here, so an odd value is a
400 with the field named, never a 500 deeper down. Also the Routing dashboard's forms (RoutingForm,
and ReportForm that launches a routing report)."""
from __future__ import annotations

import re
from datetime import date

from django import forms

from labeling.judges.trust import CRITERIA
from labeling.models import Campaign, Dataset, LabelerConfig

from .compute import HUMANS, TRIVIAL_KEYS
from .selectors import Filters

MIN_DATE, MAX_DATE = date(1970, 1, 1), date(2999, 12, 31)
"""Dates outside this range are refused: the queries add a day to `date_to`, and 9999-12-31 + 1 day
does not exist."""
JUDGE = re.compile(r"config:([1-9][0-9]{0,17})")
"""A labeler config's judge key, `config:<id>` (an id that fits a bigint)."""


def _date_in_range(value: date | None, label: str) -> date | None:
    if value is not None and not MIN_DATE <= value <= MAX_DATE:
        raise forms.ValidationError(f"{label}: enter a date between {MIN_DATE:%Y-%m-%d} and {MAX_DATE:%Y-%m-%d}.")
    return value


class FilterForm(forms.Form):
    dataset = forms.ModelChoiceField(Dataset.objects.all(), to_field_name="name", required=False, empty_label="All datasets")
    campaign = forms.ModelChoiceField(Campaign.objects.all(), to_field_name="name", required=False, empty_label="All campaigns")
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To")
    judge = forms.CharField(required=False, max_length=40, widget=forms.HiddenInput,
                            help_text='Win rates: "humans", "config:<labeler config id>" or a trivial judge.')

    def clean_date_from(self):
        return _date_in_range(self.cleaned_data.get("date_from"), "From")

    def clean_date_to(self):
        return _date_in_range(self.cleaned_data.get("date_to"), "To")

    def clean_judge(self) -> str:
        value = self.cleaned_data.get("judge") or HUMANS
        if value != HUMANS and value not in TRIVIAL_KEYS and not JUDGE.fullmatch(value):
            raise forms.ValidationError(f'Judge: "humans", "config:<labeler config id>" or one of {", ".join(TRIVIAL_KEYS)}.')
        return value

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


class RoutingForm(forms.Form):
    dataset = forms.ModelChoiceField(Dataset.objects.order_by("name"), to_field_name="name")
    config = forms.ModelChoiceField(LabelerConfig.objects.order_by("name"), to_field_name="name",
                                    label="Labeler config")
    criterion = forms.ChoiceField(choices=sorted(CRITERIA.items()), initial="margin", required=False)


class ReportForm(RoutingForm):
    budget = forms.FloatField(min_value=0.01, max_value=0.99, initial=0.3,
                              help_text="Share of the training pairs sent to humans.")
    hyperparameters = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                                      help_text="KEY=VALUE per line, the same for the three runs (e.g. max_steps=10).")

    def clean_hyperparameters(self) -> dict:
        out = {}
        for line in self.cleaned_data["hyperparameters"].splitlines():
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise forms.ValidationError(f"expected KEY=VALUE, got {line.strip()!r}")
            out[key.strip()] = value.strip()
        return out
