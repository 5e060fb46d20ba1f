"""Forms of the labeling app's own pages (the admin reuses them): launching an AI labeling job,
creating a campaign, creating a campaign from AI uncertainty (routing)."""
from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from .guidelines import DEFAULT_GUIDELINES
from .judges.trust import CRITERIA
from .models import AILabelingJob, Campaign, Dataset, LabelerConfig
from .selectors import ai as ai_selectors
from .services import ai_labeling
from .services.assignments import CampaignError
from .services.routing import routing_campaign_create


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
        if default is not None and not self.initial.get("config"):
            self.initial["config"] = default.pk

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


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=200)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("name"))
    subreddit = forms.CharField(required=False, max_length=200, help_text="Only posts of this subreddit (empty: all).")
    without_human_labels = forms.BooleanField(required=False, initial=True,
                                              label="Only pairs nobody has labelled yet")
    limit = forms.IntegerField(required=False, min_value=1, label="At most this many pairs",
                               help_text="Empty: every matching pair (in id order).")
    overlap = forms.IntegerField(min_value=1, max_value=50, initial=1, help_text="Distinct annotators per pair.")
    annotators = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"), required=False,
        widget=forms.SelectMultiple(attrs={"size": 6}), help_text="Hold Ctrl (or Cmd) to pick several.")
    group = forms.ModelChoiceField(queryset=Group.objects.order_by("name"), required=False,
                                   help_text="Members of this group may rate too.")
    gold_share = forms.FloatField(min_value=0.0, max_value=1.0, initial=0.0,
                                  help_text="Share of pairs with a known answer, mixed in to check annotators (0..1).")
    guidelines = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), initial=DEFAULT_GUIDELINES, required=False)

    def clean(self):
        data = super().clean()
        if not data.get("annotators") and not data.get("group") and not self.errors:
            raise forms.ValidationError("Choose annotators or a group: nobody could rate this campaign.")
        return data


class RoutingForm(forms.Form):
    name = forms.CharField(max_length=200)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("name"))
    config = forms.ModelChoiceField(queryset=LabelerConfig.objects.order_by("name"), label="Labeler config")
    budget = forms.IntegerField(min_value=1, help_text="How many pairs humans label.")
    criterion = forms.ChoiceField(choices=sorted(CRITERIA.items()), initial="margin")
    w_margin = forms.FloatField(min_value=0, initial=1.0, label="Weight: margin", required=False)
    w_inconsistency = forms.FloatField(min_value=0, initial=1.0, label="Weight: inconsistency", required=False)
    w_disagreement = forms.FloatField(min_value=0, initial=1.0, label="Weight: disagreement", required=False)
    w_spread = forms.FloatField(min_value=0, initial=1.0, label="Weight: spread", required=False)
    annotators = forms.ModelMultipleChoiceField(queryset=get_user_model().objects.order_by("username"), required=False)
    overlap = forms.IntegerField(min_value=1, initial=1)
    exclude_human_labeled = forms.BooleanField(required=False, initial=True,
                                               help_text="Leave out pairs that already have a human label.")

    def create(self, *, created_by) -> Campaign | None:
        """The routed campaign, or None with the service's message as a form error."""
        d = self.cleaned_data
        weights = None
        if d["criterion"] == "combined":
            weights = {k: (1.0 if d[f"w_{k}"] is None else d[f"w_{k}"])
                       for k in ("margin", "inconsistency", "disagreement", "spread")}
        try:
            return routing_campaign_create(
                name=d["name"], dataset=d["dataset"], config=d["config"], budget=d["budget"],
                criterion=d["criterion"], weights=weights, annotators=list(d["annotators"]),
                overlap=d["overlap"], exclude_human_labeled=d["exclude_human_labeled"], created_by=created_by,
            )
        except CampaignError as exc:
            self.add_error(None, str(exc))
            return None
