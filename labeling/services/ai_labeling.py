"""Writes for AI labeling: labeler configs (from JSON/YAML files), jobs, and running a job.

A job is split into chunks (`AIChunk`, ranges of its comparison ids) that any worker on queue
"gpu" leases, as the human queue leases pairs: a lease expires unless its worker's heartbeat
extends it, so a dead worker's chunk returns to the pool. Each chunk's AILabels are written, the
chunk marked done and the job's counters recomputed in one transaction. The comparisons still to do
are always read from the database (job comparisons without an AILabel for the config), and the
database allows one AILabel per (comparison, config) with inserts that skip conflicts, so a chunk
finished twice, a redelivered task or any number of workers on one job never write a label twice.
The sweeper (`ai_labeling_jobs_recover_stale`) queues a job whose workers all died again.
"""
from __future__ import annotations

import json
import logging
import time
import zlib
from datetime import timedelta
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from rlaif_site import jobs
from .. import formats
from ..judges import prompts
from ..judges.labeler import LabelerSpec, PairInput, PairResult, choose_exemplars, label_pairs
from .routing import trust_signals_update
from ..models import (
    AIChunk, AILabel, AILabelingJob, ChunkStatus, Comparison, HumanLabel, JobPhase, JobStatus, LabelerBackend,
    LabelerConfig, TaskKind,
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


def api_key_env_allowed(name: str) -> bool:
    """Whether a labeler config may name this environment variable as its API key.

    A config's key is sent as a Bearer token to its base_url, so naming any variable (DATABASE_URL,
    SECRET_KEY) would send that secret to whatever server the config points at. Only the names in
    settings.LABELER_API_KEY_ENV_ALLOWED are allowed (an entry ending in `*` is a prefix).
    """
    if not name:
        return True
    for allowed in settings.LABELER_API_KEY_ENV_ALLOWED:
        if allowed.endswith("*") and name.startswith(allowed[:-1]) or name == allowed:
            return True
    return False


def labeler_config_check(config: LabelerConfig) -> None:
    """Refuse a config whose API key variable is not allowed or whose base_url is not http(s).

    Raises ValidationError keyed by the field. Called where configs are loaded and saved (files,
    admin) and again where a backend is built, so a config stored before this rule cannot send a
    secret either.
    """
    from urllib.parse import urlsplit

    errors = {}
    if not api_key_env_allowed(config.api_key_env or ""):
        errors["api_key_env"] = (f"{config.api_key_env!r} is not an allowed API key variable; allowed: "
                                 f"{', '.join(settings.LABELER_API_KEY_ENV_ALLOWED)} (settings.LABELER_API_KEY_ENV_ALLOWED)")
    if config.base_url:
        try:
            url = urlsplit(config.base_url)
            ok = url.scheme in ("http", "https") and bool(url.hostname) and not any(
                c.isspace() or ord(c) < 32 for c in config.base_url)
        except ValueError:
            ok = False
        if not ok:
            errors["base_url"] = f"{config.base_url[:100]!r} is not an http:// or https:// URL with a host"
    if errors:
        raise ValidationError(errors)


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
                labeler_config_check(config)
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

        try:
            labeler_config_check(config)  # again here: the key is read from the environment next
        except ValidationError as exc:
            raise ValueError(f"labeler config {config.name!r}: " + "; ".join(
                f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())) from exc

        backend = OpenAIHTTPBackend(
            config.base_url, config.model, api_key_env=config.api_key_env,
            timeout=float(extra.get("timeout", 60)), max_retries=int(extra.get("max_retries", 4)),
            concurrency=int(extra.get("concurrency", 8)), top_logprobs=int(extra.get("top_logprobs", 20)),
            send_top_k=bool(extra.get("send_top_k", True)), echo=bool(extra.get("echo", True)),
            answer_token_ids=extra.get("answer_token_ids"),
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


def exemplar_pool(config: LabelerConfig, dataset_ids: Sequence[int],
                  exclude_ids: Iterable[int]) -> list[tuple[int, prompts.Exemplar]]:
    """(comparison id, exemplar) of human-labelled comparisons of the same datasets, not being
    labelled, by majority vote (ties dropped); of the first candidates by id, the shortest come first."""
    if config.shots == 0:
        return []
    votes = (HumanLabel.objects.filter(comparison__post__dataset_id__in=dataset_ids)
             .exclude(comparison_id__in=list(exclude_ids))
             .values("comparison_id").annotate(n=Count("id"), b=Sum("choice")).order_by("comparison_id"))
    scores = {v["comparison_id"]: formats.majority_score(v["n"] - v["b"], v["n"]) for v in votes}
    chosen = [v for v in votes if scores[v["comparison_id"]] != 0.5][: max(config.shots * 20, 50)]
    # Exemplars take prompt room from every prompt: among the first candidates, the shortest first.
    related = _comparisons_with_texts([v["comparison_id"] for v in chosen])
    pool = []
    for v in chosen:
        c = related[v["comparison_id"]]
        preferred = 1 if scores[v["comparison_id"]] == 1.0 else 2
        pool.append((c.pk, prompts.Exemplar(post_text(c.post), c.summary_a.text, c.summary_b.text, preferred)))
    return sorted(pool, key=lambda ce: len(ce[1].text) + len(ce[1].first) + len(ce[1].second))


def _comparisons_with_texts(ids: Sequence[int]) -> dict[int, Comparison]:
    return {c.pk: c for c in Comparison.objects.filter(pk__in=list(ids)).select_related("post", "summary_a", "summary_b")}


def labeler_config_exemplars(*, config: LabelerConfig, dataset_ids: Sequence[int],
                             exclude_ids: Iterable[int]) -> list[prompts.Exemplar]:
    """The config's few-shot exemplars, part of its identity: chosen once and stored on it.

    The first job of a config chooses them (`choose_exemplars` over `exemplar_pool`, leaving out
    that job's comparisons) and stores them as `config.exemplars` under a row lock, so jobs and
    workers that start together agree; every later job reuses them, whatever it labels. They are
    chosen again only when the stored ones no longer match `shots` (or an admin clears them).
    """
    if config.shots == 0:
        return []
    with transaction.atomic():
        locked = LabelerConfig.objects.select_for_update().get(pk=config.pk)
        stored = list(locked.exemplars or [])
        if len(stored) != locked.shots:
            pool = exemplar_pool(locked, dataset_ids, exclude_ids)
            picked = choose_exemplars(pool, locked.shots, locked.exemplar_selection,
                                      seed=zlib.crc32(locked.name.encode()))
            stored = [{"comparison": cid, "preferred": ex.preferred} for cid, ex in picked]
            locked.exemplars = stored
            locked.save(update_fields=["exemplars"])
    config.exemplars = stored
    comps = _comparisons_with_texts([e["comparison"] for e in stored])
    gone = [e["comparison"] for e in stored if e["comparison"] not in comps]
    if gone:
        raise ValueError(f"labeler config {config.name!r}: exemplar comparison(s) {gone} no longer exist; "
                         "clear the config's exemplars (admin) to choose new ones")
    return [prompts.Exemplar(post_text(c.post), c.summary_a.text, c.summary_b.text, e["preferred"])
            for e, c in ((e, comps[e["comparison"]]) for e in stored)]


def _job_exemplars(job: AILabelingJob) -> list[prompts.Exemplar]:
    if job.config.shots == 0:
        return []
    dataset_ids = list(job.comparisons.values_list("post__dataset_id", flat=True).distinct())
    return labeler_config_exemplars(config=job.config, dataset_ids=dataset_ids,
                                    exclude_ids=job.comparisons.values_list("pk", flat=True))


EXEMPLAR_LEAK = ("one of the labeler config's fixed exemplars: labelling it with its own answer in the prompt "
                 "would count as agreement for free")


def _chunk_size(config: LabelerConfig) -> int:
    return max(4 * config.batch_size, 8)


def _tasks_for(n_chunks: int) -> int:
    """Tasks to queue for a job: one per chunk, at most AI_LABELING_PARALLEL (the most workers that share it)."""
    return max(1, min(n_chunks, int(settings.AI_LABELING_PARALLEL)))


def _job_log(job: AILabelingJob, line: str) -> None:
    job.log = (job.log + f"{timezone.now():%Y-%m-%d %H:%M:%S} {line}\n")[-50_000:]


def ai_labeling_job_create(*, config: LabelerConfig, comparisons, created_by=None,
                           enqueue: bool = True) -> AILabelingJob:
    """A job labelling `comparisons` (a queryset or iterable of Comparisons/ids) with `config`.

    Its tasks (one per chunk, at most AI_LABELING_PARALLEL) are sent to queue "gpu" when the
    transaction commits (not when enqueue=False, as the shell command runs it in-process).
    """
    ids = sorted({c if isinstance(c, int) else c.pk for c in comparisons})
    if not ids:
        raise ValueError("no comparisons to label")
    with transaction.atomic():
        job = AILabelingJob.objects.create(config=config, total=len(ids), created_by=created_by)
        job.comparisons.set(ids)
        if enqueue:
            job_id, n = job.pk, _tasks_for(-(-len(ids) // _chunk_size(config)))
            transaction.on_commit(lambda: ai_labeling_job_enqueue(job_id=job_id, tasks=n))
    return job


def ai_labeling_job_enqueue(*, job_id: int, tasks: int = 1) -> None:
    """Send `tasks` copies of the job's task to queue "gpu": each leases chunks until none is left."""
    from ..tasks.ai_labeling import run_ai_labeling_job

    for _ in range(tasks):
        run_ai_labeling_job.apply_async(args=[job_id], queue="gpu")


def _open_chunks(job_id: int) -> int:
    return AIChunk.objects.filter(job_id=job_id).exclude(status=ChunkStatus.DONE).count()


def ai_labeling_job_resume(*, job: AILabelingJob) -> AILabelingJob:
    """Queue a failed, cancelled or stalled job again; it continues after its last committed chunk.

    The recovery count starts again (a person decided to retry) and leases of chunks still held
    return to the pool, so the new tasks can take them at once.
    """
    with transaction.atomic():
        job = AILabelingJob.objects.select_for_update().get(pk=job.pk)
        if job.status == JobStatus.DONE:
            raise ValueError(f"job {job.pk} is done; nothing to resume")
        done = job.chunks.filter(status=ChunkStatus.DONE).count()
        job.chunks.exclude(status=ChunkStatus.DONE).update(status=ChunkStatus.PENDING, leased_by="",
                                                           lease_expires_at=None)
        _job_log(job, f"resume queued (was {job.status}; {done} chunk(s) already done)")
        job.status, job.finished_at, job.recoveries = JobStatus.QUEUED, None, 0
        job.save(update_fields=["status", "finished_at", "recoveries", "log"])
        n = _tasks_for(_open_chunks(job.pk) or -(-job.total // _chunk_size(job.config)))
        transaction.on_commit(lambda: ai_labeling_job_enqueue(job_id=job.pk, tasks=n))
    return job


def ai_labeling_job_cancel(*, job: AILabelingJob) -> AILabelingJob:
    """Stop a job after its current chunks (finished labels stay; it can be resumed)."""
    with transaction.atomic():
        job = AILabelingJob.objects.select_for_update().get(pk=job.pk)
        if job.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED):
            job.status = JobStatus.CANCELLED
            job.finished_at = timezone.now()
            _job_log(job, "cancelled")
            job.save(update_fields=["status", "finished_at", "log"])
    return job


def _pending(job: AILabelingJob):
    """Comparisons of the job still to label: no label of the config yet, or a failed label left
    by another job (a new job retries failures; within a job a failure is not retried)."""
    done = AILabel.objects.filter(config_id=job.config_id).filter(Q(error="") | Q(job_id=job.pk))
    return (job.comparisons.exclude(pk__in=done.values("comparison_id"))
            .select_related("post__dataset", "summary_a", "summary_b").order_by("pk"))


def _write_chunk(job_id: int, config: LabelerConfig, results, chunk_id: int | None = None) -> AILabelingJob:
    """Write a chunk's labels, mark the chunk done and recount the job, in one transaction.

    Inserts skip conflicts on (comparison, config): a chunk finished twice (a lease that expired
    under a slow worker, a redelivery) still leaves one label per comparison.
    """
    labels = [
        AILabel(comparison_id=r.key, config=config, job_id=job_id, p_a=r.p_a, p_a_ab=r.p_a_ab, p_a_ba=r.p_a_ba,
                consistent=r.consistent, rationales=r.rationales, prompt_tokens=r.prompt_tokens,
                completion_tokens=r.completion_tokens, truncated=r.truncated, error=r.error,
                score_method="" if r.error else r.score_method)
        for r in results
    ]
    with transaction.atomic():
        job = AILabelingJob.objects.select_for_update().get(pk=job_id)
        # A failed label of an earlier job gives way to this attempt; a good label never does.
        AILabel.objects.filter(config=config, comparison_id__in=[r.key for r in results]).exclude(error="").exclude(
            job_id=job_id).delete()
        created = AILabel.objects.bulk_create(labels, ignore_conflicts=True)
        trust_signals_update(comparison_ids=[r.key for r in results],
                             samples={(r.key, config.pk): r.p_a_samples for r in results if r.p_a_samples})
        new_errors = [{"comparison": r.key, "error": r.error} for r in results if r.error]
        _recount(job)
        job.errors = (list(job.errors) + new_errors)[:MAX_STORED_ERRORS]
        job.heartbeat_at = timezone.now()
        job.save(update_fields=["done", "failed", "tokens_processed", "errors", "heartbeat_at"])
        if chunk_id is not None:
            # leased_by stays: which worker finished the chunk
            AIChunk.objects.filter(pk=chunk_id).update(status=ChunkStatus.DONE, lease_expires_at=None,
                                                       finished_at=timezone.now())
    log.debug("job %s: wrote %d label(s)", job_id, len(created))
    return job


def _recount(job: AILabelingJob) -> None:
    """Counters from the labels themselves, so re-running a chunk cannot count it twice."""
    mine = AILabel.objects.filter(config_id=job.config_id, comparison__in=job.comparisons.all())
    agg = mine.aggregate(done=Count("id", filter=Q(error="")), failed=Count("id", filter=~Q(error="")))
    tokens = AILabel.objects.filter(job=job).aggregate(t=Sum(F("prompt_tokens") + F("completion_tokens")))["t"]
    job.done, job.failed, job.tokens_processed = agg["done"], agg["failed"], tokens or 0


def _ensure_chunks(job: AILabelingJob, size: int) -> None:
    """Split the job's comparisons (id order) into chunks of `size`, once; call under the job's row lock."""
    if job.chunks.exists():
        return
    ids = list(job.comparisons.order_by("pk").values_list("pk", flat=True))
    AIChunk.objects.bulk_create([
        AIChunk(job=job, index=i, first_comparison_id=part[0], last_comparison_id=part[-1], size=len(part))
        for i, part in enumerate(ids[k:k + size] for k in range(0, len(ids), size))
    ])


def _claim(job_id: int, size: int) -> AILabelingJob | None:
    """Mark the job running (first task) and make its chunks; None when it is over (done, failed, cancelled)."""
    with transaction.atomic():
        job = AILabelingJob.objects.select_for_update().select_related("config").get(pk=job_id)
        if job.status in (JobStatus.DONE, JobStatus.CANCELLED, JobStatus.FAILED):
            return None
        now = timezone.now()
        if job.status == JobStatus.QUEUED:
            _job_log(job, "started" if not job.started_at else "running again")
        job.status, job.heartbeat_at = JobStatus.RUNNING, now
        job.started_at = job.started_at or now
        job.finished_at = None
        job.save(update_fields=["status", "started_at", "finished_at", "heartbeat_at", "log"])
        _ensure_chunks(job, size)
    return job


class _Lost(Exception):
    """A chunk's worker was lost too often: the job fails with this message."""


def _lease_chunk(job_id: int, token: str) -> AIChunk | None:
    """Lease the next pending chunk, or one whose lease expired (its worker died); None if none is free.

    Rows are locked with SKIP LOCKED, so workers leasing at once never get the same chunk.
    """
    with transaction.atomic():
        now = timezone.now()
        chunk = (AIChunk.objects.select_for_update(skip_locked=True).filter(job_id=job_id)
                 .filter(Q(status=ChunkStatus.PENDING) | Q(status=ChunkStatus.LEASED, lease_expires_at__lt=now))
                 .order_by("index").first())
        if chunk is None:
            return None
        if chunk.status == ChunkStatus.LEASED:
            job = AILabelingJob.objects.select_for_update().get(pk=job_id)
            _job_log(job, f"chunk {chunk.index}: worker {chunk.leased_by} lost (lease expired "
                          f"{chunk.lease_expires_at:%H:%M:%S}); taken over by {token}")
            job.save(update_fields=["log"])
            if chunk.attempts > jobs.max_recoveries():
                raise _Lost(f"chunk {chunk.index} (comparisons {chunk.first_comparison_id}-{chunk.last_comparison_id}) "
                            f"lost its worker {chunk.attempts} times; {job.done + job.failed} of {job.total} "
                            "comparisons are labelled and stay; resume retries the rest")
        chunk.status, chunk.leased_by = ChunkStatus.LEASED, token
        chunk.lease_expires_at = now + timedelta(seconds=jobs.stale_s())
        chunk.attempts += 1
        chunk.save(update_fields=["status", "leased_by", "lease_expires_at", "attempts"])
    return chunk


def _beat(job_id: int, token: str) -> bool:
    """Extend this worker's lease and the job's heartbeat; False when the lease is no longer ours."""
    now = timezone.now()
    held = AIChunk.objects.filter(job_id=job_id, status=ChunkStatus.LEASED, leased_by=token).update(
        lease_expires_at=now + timedelta(seconds=jobs.stale_s()))
    AILabelingJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(heartbeat_at=now)
    return held > 0


def _release(chunk_id: int, token: str) -> None:
    AIChunk.objects.filter(pk=chunk_id, status=ChunkStatus.LEASED, leased_by=token).update(
        status=ChunkStatus.PENDING, leased_by="", lease_expires_at=None)


def _phase_set(job_id: int, phase: str) -> None:
    """Record where a running job is (loading model, running) for its page."""
    AILabelingJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(phase=phase)


def _label_live(backend, spec, pairs: list, exemplars, chunk_id: int, batch_size: int) -> list:
    """`label_pairs` over the chunk in slices of `batch_size` pairs, writing after each slice how
    many pairs of the chunk are scored (AIChunk.scored), so the job page moves within a chunk.
    The labels themselves are still committed once per chunk (resume and exactly-once rely on it)."""
    step = max(1, int(batch_size or 1))
    results: list = []
    AIChunk.objects.filter(pk=chunk_id).update(scored=0)
    for i in range(0, len(pairs), step):
        results += label_pairs(backend, spec, pairs[i:i + step], exemplars)
        AIChunk.objects.filter(pk=chunk_id).update(scored=len(results))
    return results


def _finish_if_complete(job_id: int) -> AILabelingJob:
    with transaction.atomic():
        job = AILabelingJob.objects.select_for_update().get(pk=job_id)
        if job.status == JobStatus.RUNNING and _open_chunks(job_id) == 0:
            _recount(job)
            job.phase = JobPhase.DONE
            job.status, job.finished_at = JobStatus.DONE, timezone.now()
            _job_log(job, f"done: {job.done} labelled, {job.failed} failed")
            job.save()
    return job


def ai_labeling_job_run(*, job_id: int, chunk_size: int | None = None, backend=None,
                        on_chunk: Callable[[AILabelingJob], None] | None = None,
                        max_seconds: float | None = None, wait_poll_s: float = 1.0) -> AILabelingJob:
    """Work on a job here until no chunk is left to lease: lease a chunk, label it, commit it.

    Any number of these run at once on different workers (one per queued task); each chunk is
    leased by one of them, and a lease that its worker's heartbeat stops extending returns to the
    pool. When every free chunk is taken but others' leases are live, this waits for them (and
    takes over a lease that expires), so the last one to finish marks the job done. After
    `max_seconds` (AI_LABELING_TASK_MAX_S for tasks) it stops leasing and queues one more task, so
    a task stays shorter than the broker's visibility timeout.

    `on_chunk(job)` is called after each committed chunk (progress bars; tests use it to stop a
    run mid-way). An error of the backend marks the job failed with the message; labels already
    committed stay, and resuming continues after them.
    """
    job = AILabelingJob.objects.select_related("config").get(pk=job_id)
    config = job.config
    job = _claim(job_id, chunk_size or _chunk_size(config))
    if job is None:
        return AILabelingJob.objects.get(pk=job_id)
    token = jobs.new_token()
    # The heartbeat starts before the model loads: loading can take longer than JOB_STALE_S.
    with jobs.Heartbeat(lambda: _beat(job_id, token), name=f"heartbeat-ai-job-{job_id}"):
        # 1. load the model and fix the method
        _phase_set(job_id, JobPhase.LOADING)
        try:
            setup = _labeling_setup(job, config, backend)
        except Exception as exc:  # bad model path, too few exemplars, ...: the job says why
            log.exception("AI labeling job %s could not start", job_id)
            return _job_fail(job_id, f"could not start: {exc}")
        # 2. lease, label and commit chunks until none is left
        _phase_set(job_id, JobPhase.RUNNING)
        started = time.monotonic()
        while True:
            if _stop_here(job_id, started, max_seconds):
                return AILabelingJob.objects.get(pk=job_id)
            try:
                chunk = _lease_chunk(job_id, token)
            except _Lost as exc:
                return _job_fail(job_id, str(exc))
            if chunk is None:
                if _open_chunks(job_id) == 0:
                    break
                time.sleep(wait_poll_s)  # the rest is leased by live workers: wait to finish or take over
                continue
            pairs, leaks = _chunk_pairs(job, chunk, setup.shown)
            try:
                results = _label_chunk(setup, pairs, chunk.pk, token) + leaks
            except Exception as exc:
                log.exception("AI labeling job %s failed", job_id)
                return _job_fail(job_id, f"{type(exc).__name__}: {exc}")
            job = _write_chunk(job_id, config, results, chunk_id=chunk.pk)
            if on_chunk:
                on_chunk(job)
    # 3. the last worker to finish marks the job done
    return _finish_if_complete(job_id)


@dataclass
class _Labeling:
    """What a worker labels a job's chunks with."""

    config: LabelerConfig
    backend: object
    spec: LabelerSpec
    exemplars: list
    shown: set  # comparisons shown as the config's fixed exemplars: never labelled with them in the prompt


def _labeling_setup(job: AILabelingJob, config: LabelerConfig, backend) -> _Labeling:
    backend = backend or backend_for(config)
    exemplars = _job_exemplars(job)
    shown = {e["comparison"] for e in (job.config.exemplars or [])}
    first = job.comparisons.select_related("post__dataset").first()
    spec = labeler_spec(config, task=first.post.dataset.task if first else TaskKind.SUMMARIZATION)
    return _Labeling(config, backend, spec, exemplars, shown)


def _stop_here(job_id: int, started: float, max_seconds: float | None) -> bool:
    """True when the job is no longer running here (cancelled, failed, or given back to the queue
    by the sweeper), or this task has run `max_seconds` (then one more task is queued)."""
    status = AILabelingJob.objects.values_list("status", flat=True).get(pk=job_id)
    if status != JobStatus.RUNNING:
        return True
    if max_seconds is not None and time.monotonic() - started > max_seconds:
        transaction.on_commit(lambda: ai_labeling_job_enqueue(job_id=job_id))
        return True
    return False


def _chunk_pairs(job: AILabelingJob, chunk, shown: set) -> tuple[list[PairInput], list[PairResult]]:
    """The chunk's pending pairs to label, and an error result for each fixed exemplar among them."""
    pairs = [PairInput(c.pk, post_text(c.post), c.summary_a.text, c.summary_b.text)
             for c in _pending(job).filter(pk__gte=chunk.first_comparison_id,
                                           pk__lte=chunk.last_comparison_id)]
    leaks = [PairResult(key=p.key, error=EXEMPLAR_LEAK) for p in pairs if p.key in shown]
    return [p for p in pairs if p.key not in shown], leaks


def _label_chunk(setup: _Labeling, pairs: list[PairInput], chunk_id: int, token: str) -> list[PairResult]:
    """Label the chunk's pairs; on any error (Ctrl-C in the shell command too) the chunk goes back at once."""
    try:
        return _label_live(setup.backend, setup.spec, pairs, setup.exemplars, chunk_id, setup.config.batch_size)
    except BaseException:
        _release(chunk_id, token)
        raise


def _job_fail(job_id: int, message: str) -> AILabelingJob:
    with transaction.atomic():
        job = AILabelingJob.objects.select_for_update().get(pk=job_id)
        job.status = JobStatus.FAILED
        job.finished_at = timezone.now()
        job.errors = (list(job.errors) + [{"comparison": None, "error": message}])[-MAX_STORED_ERRORS:]
        _job_log(job, f"failed: {message}")
        job.save(update_fields=["status", "finished_at", "errors", "log"])
    return job


def ai_labeling_jobs_recover_stale(*, older_than_s: float | None = None, max_recoveries: int | None = None) -> int:
    """The sweeper of AI labeling jobs: a running job whose heartbeat is older than `older_than_s`
    (JOB_STALE_S) lost all its workers. Its chunks' leases go back to the pool and it is queued
    again (it resumes after its last committed chunk), at most `max_recoveries` (JOB_MAX_RECOVERIES)
    times; then it is marked failed with the reason. Returns the number of jobs handled."""
    limit = jobs.recovery_limit(max_recoveries)
    n = 0
    with transaction.atomic():
        lost = jobs.lost_rows(AILabelingJob.objects.select_related("config").filter(status=JobStatus.RUNNING),
                              older_than_s=older_than_s, started_field="started_at")
        for job in lost:
            n += 1
            chunks = job.chunks.all()
            saved = sum(1 for c in chunks if c.status == ChunkStatus.DONE)
            job.chunks.filter(status=ChunkStatus.LEASED).update(status=ChunkStatus.PENDING, leased_by="",
                                                                lease_expires_at=None)
            beat = f"{job.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC" if job.heartbeat_at else "never"
            where = (f"{saved} of {len(chunks)} chunks ({job.done + job.failed} of {job.total} comparisons) "
                     "are saved")
            job.recoveries += 1
            if job.recoveries > limit:
                message = (f"The workers running this job were lost {jobs.times(job.recoveries)} (last heartbeat {beat}); "
                           f"{where}. Resume continues after them.")
                job.status, job.finished_at = JobStatus.FAILED, timezone.now()
                job.errors = (list(job.errors) + [{"comparison": None, "error": message}])[-MAX_STORED_ERRORS:]
                _job_log(job, message)
            else:
                job.status = JobStatus.QUEUED
                _job_log(job, f"worker lost (no heartbeat since {beat}); queued again from the last committed "
                              f"chunk (recovery {job.recoveries} of {limit}); {where}")
                tasks = _tasks_for(len(chunks) - saved)
                transaction.on_commit(lambda job_id=job.pk, tasks=tasks: ai_labeling_job_enqueue(
                    job_id=job_id, tasks=tasks))
            job.save(update_fields=["status", "finished_at", "errors", "recoveries", "log"])
    return n
