"""Template filters of the training pages."""
from __future__ import annotations

from django import template

from ..models import RunKind, RunPhase, RunStatus

register = template.Library()


@register.filter
def phase_steps(run) -> list[tuple[str, str]]:
    """[(label, "done" | "now" | "")] for the phases this run goes through; a reward model also
    evaluates on held-out human labels before saving."""
    steps = [RunPhase.QUEUED, RunPhase.LOADING, RunPhase.RUNNING]
    if run.kind == RunKind.REWARD:
        steps.append(RunPhase.EVALUATING)
    steps += [RunPhase.SAVING, RunPhase.DONE]
    current = {RunStatus.QUEUED: RunPhase.QUEUED, RunStatus.DONE: RunPhase.DONE}.get(run.status, run.phase)
    at = steps.index(current) if current in steps else 0
    return [(RunPhase(p).label, "done" if i < at else "now" if i == at else "") for i, p in enumerate(steps)]


@register.filter
def without_server_paths(text: str) -> str:
    """A run's log as a page shows it: the artifact root and the project folder replaced by names,
    so no server path reaches the page."""
    from django.conf import settings

    text = str(text or "")
    for root, name in ((settings.ARTIFACT_ROOT, "$ARTIFACT_ROOT"), (settings.BASE_DIR, "$APP")):
        for form in {str(root), str(root.resolve()) if hasattr(root, "resolve") else str(root)}:
            if form and form != "/":
                text = text.replace(form, name)
    return text
