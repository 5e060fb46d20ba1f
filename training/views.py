"""Training pages (staff only): run list, new-run form, run page with its htmx-polled progress
partial, cancel and resume. Thin: reads through selectors, writes through services."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from rlaif_site import permissions

from . import selectors, services
from .forms import TrainingRunForm
from .models import RunKind, RunStatus, TrainingRun


staff_required = permissions.staff_required(message="Only staff can see and launch training runs.")


def _run(pk: int) -> TrainingRun:
    try:
        return selectors.training_run_get(pk)
    except TrainingRun.DoesNotExist as exc:
        raise Http404(f"no training run {pk}") from exc


@staff_required
def run_list(request: HttpRequest) -> HttpResponse:
    return render(request, "training/run_list.html", {"runs": selectors.training_run_list()[:200], "kinds": RunKind.choices})


@staff_required
def run_new(request: HttpRequest) -> HttpResponse:
    kind = request.POST.get("kind") or request.GET.get("kind") or RunKind.SFT
    if kind not in RunKind.values:
        kind = RunKind.SFT
    if request.method == "POST":
        form = TrainingRunForm(request.POST, kind=kind)
        if form.is_valid():
            try:
                run = services.training_run_create(created_by=request.user, **form.service_kwargs())
            except ValidationError as exc:
                if hasattr(exc, "error_dict"):
                    for field, errors in exc.error_dict.items():
                        form.add_error(field if field in form.fields else None, errors)
                else:
                    form.add_error(None, exc)
            else:
                messages.success(request, f"Queued {run} on the gpu queue.")
                return redirect("training:run_detail", pk=run.pk)
    else:
        base = selectors.default_base_artifact(kind)
        from labeling.selectors.datasets import dataset_first

        dataset = dataset_first()
        form = TrainingRunForm(kind=kind, initial={"base_artifact": base.pk if base else None,
                                                   "dataset": dataset.pk if dataset else None})
    return render(request, "training/run_new.html", {
        "form": form, "kind": kind, "kinds": RunKind.choices,
        "data_fields": [form[n] for n in form.param_names if form.fields[n].label in _data_names(kind)],
        "algo_fields": [form[n] for n in form.param_names if form.fields[n].label not in _data_names(kind)],
    })


def _data_names(kind: str) -> set[str]:
    from .params import DATA_FIELDS

    return set(DATA_FIELDS[kind])


#: The charts a run kind has: (canvas id, title, metric keys). Others would stay empty.
KIND_CHARTS: dict[str, list[tuple[str, str, list[str]]]] = {
    RunKind.SFT: [("chart-loss", "Loss", ["loss"]), ("chart-speed", "Throughput", ["tokens_per_s"])],
    RunKind.REWARD: [("chart-loss", "Loss", ["loss"]), ("chart-reward", "Training accuracy", ["accuracy"]),
                     ("chart-speed", "Throughput", ["pairs_per_s"])],
    RunKind.RL: [("chart-loss", "Loss", ["loss"]), ("chart-reward", "Reward / objective", ["reward", "objective"]),
                 ("chart-kl", "KL(policy ‖ SFT)", ["kl"]), ("chart-speed", "Throughput", ["samples_per_s"])],
    RunKind.SAMPLE: [("chart-speed", "Throughput", ["posts_per_s"])],
}


@staff_required
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run(pk)
    charts = KIND_CHARTS.get(run.kind, [])
    return render(request, "training/run_detail.html", {
        "run": run, "artifacts": selectors.training_run_artifacts(run), "charts": charts,
        "chart_groups": {cid: keys for cid, _, keys in charts},
        "verdict": selectors.reward_model_verdict(run),
    })


#: Metrics the compare page can overlay, in the order offered.
COMPARE_METRICS = ["loss", "accuracy", "reward", "objective", "kl", "grad_norm"]


@staff_required
def run_compare(request: HttpRequest) -> HttpResponse:
    """Overlay the curves of the runs ticked on the run list (`?runs=1&runs=2`); GET, reads only."""
    ids = []
    for raw in request.GET.getlist("runs"):
        if raw.isdigit() and int(raw) not in ids:
            ids.append(int(raw))
    runs = selectors.training_runs_by_ids(ids[:12])
    metrics = selectors.comparable_metrics(runs, COMPARE_METRICS)
    metric = request.GET.get("metric") if request.GET.get("metric") in metrics else metrics[0]
    series = selectors.metric_series(runs, metric)
    return render(request, "training/run_compare.html", {
        "runs": runs, "metrics": metrics, "metric": metric, "series": series,
        "all_runs": selectors.training_run_list()[:200], "chosen": set(ids),
    })


@staff_required
def run_progress(request: HttpRequest, pk: int) -> HttpResponse:
    # A GET writes nothing: a run whose worker died is found by the job sweeper, not by this poll.
    run = _run(pk)
    return render(request, "training/_run_progress.html", {"run": run, "artifacts": selectors.training_run_artifacts(run)})


@staff_required
@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        services.training_run_cancel(run_id=_run(pk).pk)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return _back(request, pk)


@staff_required
@require_POST
def run_resume(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        services.training_run_resume(run_id=_run(pk).pk)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return _back(request, pk)


def _back(request: HttpRequest, pk: int) -> HttpResponse:
    if request.htmx:
        run = _run(pk)
        return render(request, "training/_run_progress.html", {"run": run, "artifacts": selectors.training_run_artifacts(run)})
    return redirect("training:run_detail", pk=pk)


ACTIVE = {RunStatus.QUEUED, RunStatus.RUNNING}
