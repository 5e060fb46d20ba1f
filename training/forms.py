"""The new-run form: kind-specific data fields and one field per hyperparameter, initialized
with the algorithm's defaults (the paper's, where it gives them) and their docstrings as help."""
from __future__ import annotations

from django import forms
from django.conf import settings

from labeling.models import Dataset, LabelerConfig
from . import params as run_params
from .ml.common import ConfigValueError
from .models import LabelSource, ModelArtifact, RunKind

SOURCES = {
    RunKind.SFT: [LabelSource.REFERENCES],
    RunKind.REWARD: [LabelSource.HUMAN, LabelSource.AI, LabelSource.HYBRID],
    RunKind.RL: [LabelSource.REWARD_MODEL, LabelSource.DIRECT_AI],
    RunKind.SAMPLE: [],
}


class TrainingRunForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.filter(archived_at__isnull=True))
    base_artifact = forms.ModelChoiceField(
        queryset=ModelArtifact.objects.order_by("-created_at"), required=False,
        help_text="Start from this artifact (or give a checkpoint below).")
    base_checkpoint = forms.CharField(
        max_length=500, required=False, help_text="A Hugging Face name or a local folder, used when no artifact is chosen.")

    def __init__(self, *args, kind: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        sources = SOURCES[kind]
        if sources:
            self.fields["label_source"] = forms.ChoiceField(
                choices=[(s.value, s.label) for s in sources], initial=sources[0].value)
        if kind in (RunKind.REWARD, RunKind.RL):
            self.fields["labeler_config"] = forms.ModelChoiceField(
                queryset=LabelerConfig.objects.all(), required=False,
                help_text="Which AI labeler's labels (reward model) or 1-10 scores (direct RLAIF).")
        if kind == RunKind.RL:
            self.fields["reward_artifact"] = forms.ModelChoiceField(
                queryset=ModelArtifact.objects.filter(kind=ModelArtifact.Kind.REWARD).order_by("-created_at"),
                required=False)
        if kind == RunKind.SAMPLE:
            self.fields["base_artifact"].queryset = ModelArtifact.objects.filter(
                kind=ModelArtifact.Kind.POLICY, policy__isnull=False).order_by("-created_at")
            self.fields["base_artifact"].required = True
        self.param_names = []
        for spec in run_params.param_specs(kind):
            default, name, limits = spec["default"], f"hp_{spec['name']}", spec["limits"]
            if "choices" in limits:
                field = forms.ChoiceField(choices=[(c, c) for c in limits["choices"]], initial=default)
            elif isinstance(default, bool):
                field = forms.BooleanField(required=False, initial=default)
            elif isinstance(default, int):
                field = forms.IntegerField(initial=default)
            elif isinstance(default, float):
                field = forms.FloatField(initial=default)
            else:
                field = forms.CharField(required=False, initial=default, strip=True)
            # The browser hint only; the ranges are enforced in clean() by the same rule the services use.
            field.widget.attrs.update({k: v for k, v in (("min", limits.get("min")), ("max", limits.get("max")))
                                       if v is not None and not isinstance(field, forms.ChoiceField)})
            field.label, field.help_text = spec["name"], f"{spec['help']} (default {default!r})"
            task_note = run_params.task_default_note(kind, spec["name"])
            if task_note:  # empty: the dataset's task decides (the services fill it in)
                field.required, field.initial = False, ""
                field.help_text = f"{spec['help']} (empty: {default!r}, {task_note})"
            self.fields[name] = field
            self.param_names.append(name)

    def clean(self) -> dict:
        """Check the hyperparameters against their declared ranges and put the error on the field at fault."""
        cleaned = super().clean()
        if any(n in self.errors for n in self.param_names):
            return cleaned
        try:
            run_params.split_params(self.kind, self.hyperparameters(), max_processes=settings.TRAINING_MAX_PROCESSES)
        except ConfigValueError as exc:
            self.add_error(f"hp_{exc.field}" if f"hp_{exc.field}" in self.fields else None, str(exc))
        except ValueError as exc:
            self.add_error(None, str(exc))
        return cleaned

    def hyperparameters(self) -> dict:
        return {n.removeprefix("hp_"): self.cleaned_data[n] for n in self.param_names
                if n in self.cleaned_data and self.cleaned_data[n] is not None}

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "kind": self.kind, "name": data.get("name", ""), "dataset": data["dataset"],
            "base_artifact": data.get("base_artifact"), "base_checkpoint": data.get("base_checkpoint", ""),
            "label_source": data.get("label_source", ""), "labeler_config": data.get("labeler_config"),
            "reward_artifact": data.get("reward_artifact"), "hyperparameters": self.hyperparameters(),
        }
