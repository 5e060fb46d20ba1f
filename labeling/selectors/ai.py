"""Reads for AI labeling: job lists, a job's progress and throughput, its labels."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, QuerySet, Sum
from django.utils import timezone

from ..models import AILabel, AILabelingJob, ChunkStatus, Comparison, JobPhase, JobStatus, LabelerConfig


@dataclass
class JobProgress:
    job: AILabelingJob
    processed: int
    percent: float
    elapsed_s: float
    labels_per_s: float | None
    tokens_per_s: float | None
    eta_s: float | None
    running: bool
    stalled: bool
    """Running, but no worker has shown a sign of life for JOB_STALE_S: the sweeper will queue it again."""
    chunks_done: int
    chunks_total: int
    workers: int
    """Chunks leased right now (one per worker on the job)."""
    in_flight: int = 0
    """Pairs of the chunks under way already scored but not yet committed (live progress)."""
    settling: bool = False
    """Cancelled while a worker still finishes its chunk: the counts move once more, then stop."""
    phase_steps: list = None
    """[(label, "done" | "now" | "")] for the phases a job goes through (queued .. done)."""


def ai_labeling_job_list() -> QuerySet[AILabelingJob]:
    return AILabelingJob.objects.select_related("config", "created_by").order_by("-created_at")


def ai_labeling_job_get(*, job_id: int) -> AILabelingJob:
    return AILabelingJob.objects.select_related("config", "created_by").get(pk=job_id)


def ai_labeling_job_progress(*, job: AILabelingJob) -> JobProgress:
    processed = job.done + job.failed
    percent = 100.0 * processed / job.total if job.total else 100.0
    end = job.finished_at or timezone.now()
    elapsed = (end - job.started_at).total_seconds() if job.started_at else 0.0
    made_here = job.labels.count() if job.started_at else 0
    rate = made_here / elapsed if elapsed > 0 and made_here else None
    remaining = max(job.total - processed, 0)
    now = timezone.now()
    stalled = job.status == JobStatus.RUNNING and (
        job.heartbeat_at is None or job.heartbeat_at < now - timedelta(seconds=settings.JOB_STALE_S))
    chunks = {row["status"]: row["n"] for row in job.chunks.values("status").annotate(n=Count("id"))}
    live_chunks = job.chunks.filter(status=ChunkStatus.LEASED, lease_expires_at__gte=now)
    live, in_flight = 0, 0
    if chunks:
        agg = live_chunks.aggregate(n=Count("id"), scored=Sum("scored"))
        live, in_flight = agg["n"], agg["scored"] or 0
    if job.status == JobStatus.RUNNING and job.total:
        percent = 100.0 * min(processed + in_flight, job.total) / job.total
    return JobProgress(
        job=job, processed=processed, percent=round(percent, 1), elapsed_s=elapsed,
        labels_per_s=rate, tokens_per_s=(job.tokens_processed / elapsed if elapsed > 0 and job.tokens_processed else None),
        eta_s=(remaining / rate if rate and job.status == JobStatus.RUNNING and not stalled else None),
        running=job.status in (JobStatus.QUEUED, JobStatus.RUNNING), stalled=stalled,
        chunks_done=chunks.get(ChunkStatus.DONE, 0), chunks_total=sum(chunks.values()), workers=live,
        in_flight=in_flight if job.status == JobStatus.RUNNING else 0,
        settling=job.status == JobStatus.CANCELLED and live > 0,
        phase_steps=_phase_steps(job.phase if job.status == JobStatus.RUNNING else
                                 (JobPhase.DONE if job.status == JobStatus.DONE else JobPhase.QUEUED)),
    )


_JOB_PHASES = [JobPhase.QUEUED, JobPhase.LOADING, JobPhase.RUNNING, JobPhase.DONE]


def _phase_steps(current: str) -> list[tuple[str, str]]:
    at = _JOB_PHASES.index(current) if current in _JOB_PHASES else 0
    return [(JobPhase(p).label, "done" if i < at else "now" if i == at else "") for i, p in enumerate(_JOB_PHASES)]


def ai_labeling_job_labels(*, job: AILabelingJob, limit: int = 50) -> QuerySet[AILabel]:
    return (AILabel.objects.filter(config_id=job.config_id, comparison__in=job.comparisons.all())
            .select_related("comparison").order_by("-created_at")[:limit])


def labeler_config_list() -> QuerySet[LabelerConfig]:
    return LabelerConfig.objects.order_by("name")


def comparisons_to_label(*, config: LabelerConfig, dataset=None, limit: int | None = None,
                         only_unlabeled: bool = True) -> QuerySet[Comparison]:
    """Comparisons (of a dataset, or all) in id order, without a good label of `config` unless asked."""
    qs = Comparison.objects.all()
    if dataset is not None:
        qs = qs.filter(post__dataset=dataset)
    if only_unlabeled:  # a failed label does not count: a new job retries it
        qs = qs.exclude(pk__in=AILabel.objects.filter(config=config, error="").values("comparison_id"))
    qs = qs.order_by("pk")
    return qs[:limit] if limit else qs
