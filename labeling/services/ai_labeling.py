"""Writes for AI labeling: labeler configs (from JSON/YAML files), jobs, and running a job.

A job runs in chunks: each chunk's comparisons are labelled, then its AILabels are written and
the job's counters recomputed in one transaction. The comparisons still to do are always read
from the database (job comparisons without an AILabel for the config), so a run that stops
anywhere resumes where the last committed chunk left off, and a redelivered task (or two
workers on the same job) never writes a label twice: the database allows one AILabel per
(comparison, config), and inserts skip conflicts.
"""
from __future__ import annotations

import json
import logging
import time
import zlib
from pathlib import Path
from typing import Callable, Iterable, Sequence

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from .. import formats
from ..judges import prompts as P
from ..judges.labeler import LabelerSpec, PairInput, choose_exemplars, label_pairs
from ..models import (
    AILabel, AILabelingJob, Comparison, HumanLabel, JobStatus, LabelerBackend, LabelerConfig, TaskKind,
)

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
MAX_STORED_ERRORS = 100
_EDITABLE = {f.name for f in LabelerConfig._meta.concrete_fields} - {"id", "created_at"}


class LabelerConfigFileError(ValueError):
    """A labeler config file is unreadable or holds a bad config; names the file and field."""


# --- configs ----------------------------------------------------------------------------------


def _expand(value, path: Path):
    if isinstance(value, str):
        return value.replace("${ARTIFACT_ROOT}", str(settings.ARTIFACT_ROOT)).replace(
            "${CONFIG_DIR}", str(path.parent))
    return value


def _read_config_file(path: Path) -> list[dict]:
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabelerConfigFileError(f"{path}: cannot read: {exc}") from exc
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(raw)
        elif path.suffix == ".json":
            data = json.loads(raw)
        else:
            raise LabelerConfigFileError(f"{path}: unknown config file type (use .json, .yaml or .yml)")
    except json.JSONDecodeError as exc:
        raise LabelerConfigFileError(f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}") from exc
    except Exception as exc:  # yaml.YAMLError carries the line in its message
        if isinstance(exc, LabelerConfigFileError):
            raise
        raise LabelerConfigFileError(f"{path}: invalid YAML: {exc}") from exc
    items = data if isinstance(data, list) else [data]
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise LabelerConfigFileError(f"{path}: config #{i + 1}: expected a mapping of fields, got {type(item).__name__}")
    return items


def shipped_config_paths() -> list[Path]:
    return sorted(p for p in CONFIG_DIR.iterdir() if p.suffix in (".json", ".yaml", ".yml"))


def labeler_configs_load(*, paths: Iterable[str | Path] | None = None,
                         overrides: dict | None = None) -> list[LabelerConfig]:
    """Create or update LabelerConfigs from JSON/YAML files (default: the shipped `labeling/configs/`).

    A file holds one config (a mapping of LabelerConfig fields) or a list of them. Strings may use
    `${ARTIFACT_ROOT}` (settings.ARTIFACT_ROOT). `overrides` maps a config name to field values
    that replace the file's (e.g. ``{"tiny-local": {"batch_size": 4}}``). All files are validated
    first and written in one transaction: a bad field names its file and config and nothing is
    written.
    """
    overrides = overrides or {}
    files = [Path(p) for p in paths] if paths is not None else shipped_config_paths()
    pending: list[tuple[Path, dict]] = []
    for path in files:
        for i, item in enumerate(_read_config_file(path)):
            where = f"{path}: config #{i + 1}" + (f" ({item.get('name')!r})" if item.get("name") else "")
            unknown = sorted(set(item) - _EDITABLE)
            if unknown:
                raise LabelerConfigFileError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(_EDITABLE)}")
            if not item.get("name"):
                raise LabelerConfigFileError(f"{where}: field 'name' is required")
            fields = {k: _expand(v, path) for k, v in item.items()}
            extra = overrides.get(fields["name"], {})
            bad = sorted(set(extra) - _EDITABLE)
            if bad:
                raise LabelerConfigFileError(f"overrides for {fields['name']!r}: unknown field(s) {bad}")
            fields.update(extra)
            pending.append((path, fields))
    configs: list[LabelerConfig] = []
    with transaction.atomic():
        for path, fields in pending:
            config = LabelerConfig.objects.filter(name=fields["name"]).first() or LabelerConfig()
            for k, v in fields.items():
                setattr(config, k, v)
            try:
                config.full_clean(validate_unique=False)
                labeler_spec(config)
            except ValidationError as exc:
                msgs = "; ".join(f"{field}: {' '.join(m)}" for field, m in exc.message_dict.items())
                raise LabelerConfigFileError(f"{path}: config {fields['name']!r}: {msgs}") from exc
            except ValueError as exc:
                raise LabelerConfigFileError(f"{path}: config {fields['name']!r}: {exc}") from exc
            config.save()
            configs.append(config)
    return configs


def labeler_spec(config: LabelerConfig, task: str = TaskKind.SUMMARIZATION) -> LabelerSpec:
    extra = config.extra or {}
    return LabelerSpec(
        preamble=config.preamble, task=task, chain_of_thought=config.chain_of_thought,
        self_consistency_n=config.self_consistency_n, temperature=config.temperature,
        top_k=int(extra.get("top_k", 40)), both_orders=config.both_orders,
        max_prompt_tokens=config.max_prompt_tokens or None,
        cot_max_tokens=int(extra.get("cot_max_tokens", 512)),
        seed=zlib.crc32(config.name.encode("utf-8")),
    )


# --- backends (one per worker process, loaded once) -----------------------------------------

_BACKENDS: dict[tuple, object] = {}


def backend_for(config: LabelerConfig):
    """The scoring backend of a config, cached per process (a worker loads a model once)."""
    extra = dict(config.extra or {})
    key = (config.backend, config.model, config.base_url, config.api_key_env, config.use_chat_template,
           config.batch_size, json.dumps(extra, sort_keys=True))
    if key in _BACKENDS:
        return _BACKENDS[key]
    _BACKENDS.clear()  # keep one model in memory
    if config.backend == LabelerBackend.LOCAL:
        from ..judges.local import LocalBackend

        looks_like_path = config.model.startswith(("/", "./", "../", "~"))
        if looks_like_path and not Path(config.model).expanduser().exists():
            raise FileNotFoundError(
                f"labeler config {config.name!r}: model path {config.model} does not exist "
                "(the demo builds the tiny model there with training.ml.tiny.build_all)")
        backend = LocalBackend(
            str(Path(config.model).expanduser()) if looks_like_path else config.model,
            use_chat_template=config.use_chat_template, batch_size=config.batch_size,
            device=extra.get("device"), dtype=extra.get("dtype"), torch_threads=extra.get("torch_threads"),
        )
    elif config.backend == LabelerBackend.OPENAI:
        from ..judges.openai_http import OpenAIHTTPBackend

        backend = OpenAIHTTPBackend(
            config.base_url, config.model, api_key_env=config.api_key_env,
            timeout=float(extra.get("timeout", 60)), max_retries=int(extra.get("max_retries", 4)),
            concurrency=int(extra.get("concurrency", 8)), top_logprobs=int(extra.get("top_logprobs", 5)),
            send_top_k=bool(extra.get("send_top_k", True)),
        )
    else:
        raise ValueError(f"unknown labeler backend {config.backend!r}")
    _BACKENDS[key] = backend
    return backend


# --- jobs -------------------------------------------------------------------------------------


def post_text(post) -> str:
    """The `Text - ` of a prompt (`formats.labeler_text`): the TL;DR layout for Reddit posts, the
    bare text for dialogues."""
    return formats.labeler_text(post.subreddit, post.title, post.text)


def exemplar_pool(config: LabelerConfig, dataset_ids: Sequence[int], exclude_ids: Iterable[int]) -> list[P.Exemplar]:
    """Human-labelled comparisons of the same datasets, not being labelled, by majority vote (ties
    dropped); of the first candidates by id, the shortest come first."""
    if config.shots == 0:
        return []
    votes = (HumanLabel.objects.filter(comparison__post__dataset_id__in=dataset_ids)
             .exclude(comparison_id__in=list(exclude_ids))
             .values("comparison_id").annotate(n=Count("id"), b=Sum("choice")).order_by("comparison_id"))
    scores = {v["comparison_id"]: formats.majority_score(v["n"] - v["b"], v["n"]) for v in votes}
    chosen = [v for v in votes if scores[v["comparison_id"]] != 0.5][: max(config.shots * 20, 50)]
    # Exemplars take prompt room from every prompt: among the first candidates, the shortest first.
    comps = Comparison.objects.in_bulk([v["comparison_id"] for v in chosen])
    related = {c.pk: c for c in Comparison.objects.filter(pk__in=comps).select_related("post", "summary_a", "summary_b")}
    pool = []
    for v in chosen:
        c = related[v["comparison_id"]]
        preferred = 1 if scores[v["comparison_id"]] == 1.0 else 2
        pool.append(P.Exemplar(post_text(c.post), c.summary_a.text, c.summary_b.text, preferred))
    return sorted(pool, key=lambda e: len(e.text) + len(e.first) + len(e.second))


def _job_exemplars(job: AILabelingJob) -> list[P.Exemplar]:
    config = job.config
    if config.shots == 0:
        return []
    dataset_ids = list(job.comparisons.values_list("post__dataset_id", flat=True).distinct())
    pool = exemplar_pool(config, dataset_ids, job.comparisons.values_list("pk", flat=True))
    return choose_exemplars(pool, config.shots, config.exemplar_selection, seed=zlib.crc32(config.name.encode()))


def ai_labeling_job_create(*, config: LabelerConfig, comparisons, created_by=None,
                           enqueue: bool = True) -> AILabelingJob:
    """A job labelling `comparisons` (a queryset or iterable of Comparisons/ids) with `config`.

    The job's task is sent to queue "gpu" when the transaction commits (not when enqueue=False,
    as the shell command runs it in-process).
    """
    ids = sorted({c if isinstance(c, int) else c.pk for c in comparisons})
    if not ids:
        raise ValueError("no comparisons to label")
    with transaction.atomic():
        job = AILabelingJob.objects.create(config=config, total=len(ids), created_by=created_by)
        job.comparisons.set(ids)
        if enqueue:
            job_id = job.pk
            transaction.on_commit(lambda: ai_labeling_job_enqueue(job_id=job_id))
    return job


def ai_labeling_job_enqueue(*, job_id: int) -> None:
    from ..tasks.ai_labeling import run_ai_labeling_job

    run_ai_labeling_job.apply_async(args=[job_id], queue="gpu")


def ai_labeling_job_resume(*, job: AILabelingJob) -> AILabelingJob:
    """Send a failed or stalled job to the queue again; it resumes after its last committed chunk."""
    with transaction.atomic():
        job = AILabelingJob.objects.select_for_update().get(pk=job.pk)
        if job.status in (JobStatus.DONE, JobStatus.CANCELLED):
            raise ValueError(f"job {job.pk} is {job.status}; nothing to resume")
        job.status = JobStatus.QUEUED
        job.save(update_fields=["status"])
        transaction.on_commit(lambda: ai_labeling_job_enqueue(job_id=job.pk))
    return job


def ai_labeling_job_cancel(*, job: AILabelingJob) -> AILabelingJob:
    """Stop a job after its current chunk (finished labels stay)."""
    with transaction.atomic():
        job = AILabelingJob.objects.select_for_update().get(pk=job.pk)
        if job.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED):
            job.status = JobStatus.CANCELLED
            job.finished_at = timezone.now()
            job.save(update_fields=["status", "finished_at"])
    return job


def _pending(job: AILabelingJob):
    """Comparisons of the job still to label: no label of the config yet, or a failed label left
    by another job (a new job retries failures; within a job a failure is not retried)."""
    done = AILabel.objects.filter(config_id=job.config_id).filter(Q(error="") | Q(job_id=job.pk))
    return (job.comparisons.exclude(pk__in=done.values("comparison_id"))
            .select_related("post__dataset", "summary_a", "summary_b").order_by("pk"))


def _write_chunk(job_id: int, config: LabelerConfig, results) -> AILabelingJob:
    labels = [
        AILabel(comparison_id=r.key, config=config, job_id=job_id, p_a=r.p_a, p_a_ab=r.p_a_ab, p_a_ba=r.p_a_ba,
                consistent=r.consistent, rationales=r.rationales, prompt_tokens=r.prompt_tokens,
                completion_tokens=r.completion_tokens, truncated=r.truncated, error=r.error)
        for r in results
    ]
    with transaction.atomic():
        job = AILabelingJob.objects.select_for_update().get(pk=job_id)
        # A failed label of an earlier job gives way to this attempt; a good label never does.
        AILabel.objects.filter(config=config, comparison_id__in=[r.key for r in results]).exclude(error="").exclude(
            job_id=job_id).delete()
        AILabel.objects.bulk_create(labels, ignore_conflicts=True)
        new_errors = [{"comparison": r.key, "error": r.error} for r in results if r.error]
        _recount(job)
        job.errors = (list(job.errors) + new_errors)[:MAX_STORED_ERRORS]
        job.save(update_fields=["done", "failed", "tokens_processed", "errors"])
    return job


def _recount(job: AILabelingJob) -> None:
    """Counters from the labels themselves, so re-running a chunk cannot count it twice."""
    mine = AILabel.objects.filter(config_id=job.config_id, comparison__in=job.comparisons.all())
    agg = mine.aggregate(done=Count("id", filter=Q(error="")), failed=Count("id", filter=~Q(error="")))
    tokens = AILabel.objects.filter(job=job).aggregate(t=Sum(F("prompt_tokens") + F("completion_tokens")))["t"]
    job.done, job.failed, job.tokens_processed = agg["done"], agg["failed"], tokens or 0


def ai_labeling_job_run(*, job_id: int, chunk_size: int | None = None, backend=None,
                        on_chunk: Callable[[AILabelingJob], None] | None = None) -> AILabelingJob:
    """Run (or resume) a job to the end, one committed chunk at a time.

    `on_chunk(job)` is called after each committed chunk (progress bars; tests use it to stop a
    run mid-way). An error of the backend marks the job failed with the message; labels already
    committed stay, and resuming continues after them.
    """
    with transaction.atomic():
        job = AILabelingJob.objects.select_for_update().select_related("config").get(pk=job_id)
        if job.status in (JobStatus.DONE, JobStatus.CANCELLED):
            return job
        job.status = JobStatus.RUNNING
        job.started_at = job.started_at or timezone.now()
        job.finished_at = None
        job.save(update_fields=["status", "started_at", "finished_at"])
    config = job.config
    size = chunk_size or max(4 * config.batch_size, 8)
    try:
        backend = backend or backend_for(config)
        exemplars = _job_exemplars(job)
        first = job.comparisons.select_related("post__dataset").first()
        spec = labeler_spec(config, task=first.post.dataset.task if first else TaskKind.SUMMARIZATION)
    except Exception as exc:  # bad model path, too few exemplars, ...: the job says why
        log.exception("AI labeling job %s could not start", job_id)
        return _job_fail(job_id, f"could not start: {exc}")
    while True:
        status = AILabelingJob.objects.values_list("status", flat=True).get(pk=job_id)
        if status == JobStatus.CANCELLED:
            return AILabelingJob.objects.get(pk=job_id)
        chunk = list(_pending(job)[:size])
        if not chunk:
            break
        pairs = [PairInput(c.pk, post_text(c.post), c.summary_a.text, c.summary_b.text) for c in chunk]
        try:
            results = label_pairs(backend, spec, pairs, exemplars)
        except Exception as exc:
            log.exception("AI labeling job %s failed", job_id)
            return _job_fail(job_id, f"{type(exc).__name__}: {exc}")
        job = _write_chunk(job_id, config, results)
        if on_chunk:
            on_chunk(job)
    with transaction.atomic():
        job = AILabelingJob.objects.select_for_update().get(pk=job_id)
        _recount(job)
        if job.status != JobStatus.CANCELLED:
            job.status = JobStatus.DONE
            job.finished_at = timezone.now()
        job.save()
    return job


def _job_fail(job_id: int, message: str) -> AILabelingJob:
    with transaction.atomic():
        job = AILabelingJob.objects.select_for_update().get(pk=job_id)
        job.status = JobStatus.FAILED
        job.finished_at = timezone.now()
        job.errors = (list(job.errors) + [{"comparison": None, "error": message}])[-MAX_STORED_ERRORS:]
        job.save(update_fields=["status", "finished_at", "errors"])
    return job
