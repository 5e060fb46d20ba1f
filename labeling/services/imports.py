"""Writes for file import and export of preferences.

`comparisons_import` and `posts_import` stream a file through the validating parsers of
`labeling.importers` and write it in ONE transaction: the first bad record raises
`ImportFileError` and nothing of the file stays written. Records are written in chunks with
per-file caches of posts, policies, summaries and comparisons and `bulk_create`, so a file of a
few thousand lines takes seconds. Re-importing a file creates nothing: posts are found by
(dataset, external id) or by content digest (the same post under another id is reused),
summaries by (post, policy, text digest), comparisons by their canonical pair, labels by
`import_key` = ``<dataset>:<record key>``.

Exports are reads: `labeling.selectors.exports`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

from django.db import connection, transaction

from .. import formats, importers
from ..importers import ComparisonRecord, ImportFileError, PostRecord
from ..models import (
    Comparison, Dataset, HarmlessnessLabel, HumanLabel, Policy, PolicyKind, Post, Summary,
    TaskKind,
)

__all__ = ["ImportFileError", "ImportResult", "comparisons_import", "harmlessness_import", "posts_import"]

CHUNK = 500
T = TypeVar("T")

# Attribution written into a new Dataset's `license` when the shipped files create it.
_KNOWN_LICENSES = {
    "tldr": "Labels and samples: OpenAI summarize-from-feedback, Modified MIT License, Copyright (c) 2020 "
            "OpenAI. Reddit posts and reference TL;DRs: Webis-TLDR-17, CC BY 4.0. See data/README.md.",
    "hh-rlhf-helpful": "Anthropic HH-RLHF helpful-base, MIT License, Copyright (c) 2022 Anthropic. "
                       "May contain offensive content. See data/README.md.",
}


@dataclass
class ImportResult:
    """What an import did; `*_present` counts distinct rows that already existed."""

    dataset: str = ""
    format: str = ""
    records: int = 0
    posts_created: int = 0
    posts_present: int = 0
    summaries_created: int = 0
    summaries_present: int = 0
    comparisons_created: int = 0
    comparisons_present: int = 0
    labels_created: int = 0
    labels_present: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"{self.records} records into dataset {self.dataset!r}: "
            f"posts {self.posts_created} created / {self.posts_present} present, "
            f"summaries {self.summaries_created} / {self.summaries_present}, "
            f"comparisons {self.comparisons_created} / {self.comparisons_present}, "
            f"labels {self.labels_created} / {self.labels_present}"
        )


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class _Writer:
    """Get-or-create of posts, summaries and comparisons of one dataset, with per-file caches."""

    dataset: Dataset
    result: ImportResult
    post_by_ext: dict[str, int] = field(default_factory=dict)
    post_by_sha: dict[str, int] = field(default_factory=dict)
    policies: dict[str, int] = field(default_factory=dict)
    summaries: dict[tuple[int, int, str], int] = field(default_factory=dict)
    comparisons: dict[tuple[int, int], int] = field(default_factory=dict)
    loaded_posts: set[int] = field(default_factory=set)  # posts whose summaries/comparisons are cached
    created_summaries: set[int] = field(default_factory=set)
    created_comparisons: set[int] = field(default_factory=set)
    seen_present: dict[str, set] = field(default_factory=lambda: {"posts": set(), "summaries": set(),
                                                                  "comparisons": set()})

    def _present(self, kind: str, pk: int) -> None:
        if pk not in self.seen_present[kind]:
            self.seen_present[kind].add(pk)
            setattr(self.result, f"{kind}_present", getattr(self.result, f"{kind}_present") + 1)

    # posts -------------------------------------------------------------------------------
    def posts(self, records: list[PostRecord]) -> list[int]:
        """Post id of each record: by external id, else by content digest, else created."""
        want_ext = {r.external_id for r in records} - self.post_by_ext.keys()
        want_sha = {r.digest for r in records} - self.post_by_sha.keys()
        existing = set()
        if want_ext or want_sha:
            rows = list(Post.objects.filter(dataset=self.dataset, external_id__in=want_ext)
                        .values_list("pk", "external_id", "content_sha256"))
            rows += Post.objects.filter(dataset=self.dataset, content_sha256__in=want_sha).order_by("pk") \
                .values_list("pk", "external_id", "content_sha256")
            for pk, ext, sha in rows:
                self.post_by_ext.setdefault(ext, pk)
                self.post_by_sha.setdefault(sha, pk)
                existing.add(pk)
        new: dict[str, Post] = {}  # by digest
        new_ext: set[str] = set()
        for r in records:
            if (r.external_id in self.post_by_ext or r.digest in self.post_by_sha
                    or r.digest in new or r.external_id in new_ext):
                continue
            new_ext.add(r.external_id)
            post = Post(dataset=self.dataset, external_id=r.external_id, subreddit=r.subreddit,
                        title=r.title, text=r.text)
            post.content_sha256 = r.digest  # bulk_create skips Post.save()
            new[r.digest] = post
        if new:
            Post.objects.bulk_create(new.values(), batch_size=CHUNK)
            for post in new.values():
                self.post_by_ext[post.external_id] = post.pk
                self.post_by_sha[post.content_sha256] = post.pk
                self.loaded_posts.add(post.pk)
            self.result.posts_created += len(new)
        ids = []
        for r in records:
            pk = self.post_by_ext.get(r.external_id) or self.post_by_sha[r.digest]
            self.post_by_ext.setdefault(r.external_id, pk)  # the same post under another id: reuse it
            if pk in existing or pk in self.seen_present["posts"]:
                self._present("posts", pk)
            ids.append(pk)
        self._load(ids)
        return ids

    def _load(self, post_ids: Iterable[int]) -> None:
        todo = set(post_ids) - self.loaded_posts
        if not todo:
            return
        for pk, post_id, policy_id, sha in Summary.objects.filter(post_id__in=todo).values_list(
            "pk", "post_id", "policy_id", "text_sha256"
        ):
            self.summaries[(post_id, policy_id, sha)] = pk
        for pk, a, b in Comparison.objects.filter(post_id__in=todo).values_list("pk", "summary_a_id", "summary_b_id"):
            self.comparisons[(a, b)] = pk
        self.loaded_posts |= todo

    # policies ----------------------------------------------------------------------------
    def policy(self, name: str) -> int:
        if name not in self.policies:
            kind = PolicyKind.REFERENCE if name == importers.REFERENCE_POLICY else PolicyKind.IMPORTED
            description = ("Imported without a policy name (HH-RLHF / TRL files)."
                           if name == importers.UNKNOWN_POLICY else "")
            policy, _ = Policy.objects.get_or_create(name=name, defaults={"kind": kind, "description": description})
            self.policies[name] = policy.pk
        return self.policies[name]

    # summaries ---------------------------------------------------------------------------
    def summaries_for(self, wanted: list[tuple[int, str, str, bool]]) -> list[int]:
        """Summary id of each (post id, policy name, text, is_reference), creating missing ones."""
        keys = [(post_id, self.policy(policy), importers.text_digest(text)) for post_id, policy, text, _ in wanted]
        new: dict[tuple[int, int, str], Summary] = {}
        make_reference: set[int] = set()
        for key, (post_id, _, text, is_ref) in zip(keys, wanted):
            pk = self.summaries.get(key)
            if pk is not None:
                if pk not in self.created_summaries:
                    self._present("summaries", pk)
                if is_ref:
                    make_reference.add(pk)
            elif key in new:
                new[key].is_reference |= is_ref
            else:
                summary = Summary(post_id=post_id, policy_id=key[1], text=text, is_reference=is_ref)
                summary.text_sha256 = key[2]  # bulk_create skips Summary.save()
                new[key] = summary
        if make_reference:
            Summary.objects.filter(pk__in=make_reference, is_reference=False).update(is_reference=True)
        if new:
            Summary.objects.bulk_create(new.values(), batch_size=CHUNK)
            for key, summary in new.items():
                self.summaries[key] = summary.pk
                self.created_summaries.add(summary.pk)
            self.result.summaries_created += len(new)
        return [self.summaries[k] for k in keys]

    # comparisons -------------------------------------------------------------------------
    def comparisons_for(self, pairs: list[tuple[int, int, int]]) -> list[int]:
        """Comparison id of each (post id, summary id, summary id) in either order."""
        new: dict[tuple[int, int], Comparison] = {}
        keys = []
        for post_id, x, y in pairs:
            key = (min(x, y), max(x, y))
            keys.append(key)
            pk = self.comparisons.get(key)
            if pk is not None:
                if pk not in self.created_comparisons:
                    self._present("comparisons", pk)
            elif key not in new:
                new[key] = Comparison(post_id=post_id, summary_a_id=key[0], summary_b_id=key[1])
        if new:
            Comparison.objects.bulk_create(new.values(), batch_size=CHUNK)
            for key, comparison in new.items():
                self.comparisons[key] = comparison.pk
                self.created_comparisons.add(comparison.pk)
            self.result.comparisons_created += len(new)
        return [self.comparisons[k] for k in keys]


def _lock_dataset(name: str) -> None:
    """Serialize imports into one dataset (PostgreSQL; SQLite's write lock already does): two
    concurrent imports of the same file then give one copy instead of a unique-key error."""
    if connection.vendor == "postgresql":
        key = int(importers.text_digest(f"rlaif-import:{name}")[:15], 16)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def _dataset(name: str, task: str, path: Path, wanted: str | None = None) -> Dataset:
    """The dataset `name` (created for the file's task, or `wanted`: "harmless" for dialogue data
    whose labels say which response is less harmful); a task that cannot hold the file is refused."""
    if not name or len(name) > 200 or "\x00" in name:
        raise ImportFileError(path.name, 0, "dataset", f"a dataset name is 1 to 200 characters without NUL, got "
                                                       f"{len(name)} characters")
    task = TaskKind.DIALOGUE if task == importers.DIALOGUE else TaskKind.SUMMARIZATION
    if wanted:
        if wanted not in TaskKind.values:
            raise ImportFileError(path.name, 0, "task", f"unknown task {wanted!r}; expected one of {TaskKind.values}")
        if formats.is_dialogue_task(wanted) != formats.is_dialogue_task(task):
            raise ImportFileError(path.name, 0, "task", f"task {wanted!r} does not fit this file's {task} records")
        task = wanted
    _lock_dataset(name)
    dataset, _ = Dataset.objects.get_or_create(
        name=name,
        defaults={"task": task, "source": f"imported from {path.name}", "license": _KNOWN_LICENSES.get(name, "")},
    )
    if wanted and dataset.task != wanted:
        raise ImportFileError(path.name, 0, "task", f"dataset {name!r} exists with task {dataset.task!r}, not "
                              f"{wanted!r}: import into another dataset name")
    return dataset


def _canonical_label(rec: ComparisonRecord, first_id: int, second_id: int) -> dict:
    """The file's order mapped onto canonical A/B (summary_a_id < summary_b_id)."""
    flip = first_id > second_id
    choice = 1 - rec.choice if flip else rec.choice
    confidence = rec.confidence if rec.confidence is None or not flip else 10 - rec.confidence
    note_a, note_b = (rec.second.note, rec.first.note) if flip else (rec.first.note, rec.second.note)
    return {
        "choice": choice, "confidence": confidence, "note_a": note_a, "note_b": note_b,
        "a_shown_first": (not flip) if rec.order_known else None,
    }


def comparisons_import(
    *, path: str | Path, fmt: str | None = None, dataset: str | None = None, task: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import a comparison file (openai, normalized, trl or ranking; detected when `fmt` is None)
    with its human labels, atomically. Raises ImportFileError (file, line, field) on the first bad
    record. `task` names a new dataset's task where the file cannot tell (e.g. "harmless")."""
    path = Path(path)
    records = importers.iter_comparisons(path, fmt)
    result = ImportResult()
    with transaction.atomic():
        writer: _Writer | None = None
        for chunk in _chunks(records, CHUNK):
            if writer is None:
                first = chunk[0]
                result.dataset = dataset or importers.default_dataset_name(path, first)
                result.format = fmt or _format_of(path)
                writer = _Writer(_dataset(result.dataset, first.task, path, task), result)
            post_ids = writer.posts([r.post for r in chunk])
            summary_ids = writer.summaries_for(
                [(pid, s.policy, s.text, False) for pid, r in zip(post_ids, chunk) for s in (r.first, r.second)]
            )
            firsts, seconds = summary_ids[0::2], summary_ids[1::2]
            comparison_ids = writer.comparisons_for(list(zip(post_ids, firsts, seconds)))
            _write_labels(writer, chunk, comparison_ids, firsts, seconds)
            result.records += len(chunk)
            if progress:
                progress(result.records)
        if writer is None:
            raise ImportFileError(path.name, 0, None, "the file holds no records")
        _analyze_after(result)
    return result


ANALYZE_AFTER_ROWS = 500
"""Rows an import must add before it refreshes the planner's statistics of the tables it wrote."""


def _analyze_after(result: ImportResult) -> None:
    """Fresh PostgreSQL statistics after a big import: until autovacuum runs, the planner takes the
    new tables as nearly empty and may join thousands of labels by nested loops for minutes (the
    dashboards' pair counts did, right after importing both shipped files)."""
    added = result.posts_created + result.summaries_created + result.comparisons_created + result.labels_created
    if connection.vendor != "postgresql" or added < ANALYZE_AFTER_ROWS:
        return
    tables = [m._meta.db_table for m in (Post, Summary, Comparison, HumanLabel)]
    with connection.cursor() as cur:
        for table in tables:
            cur.execute(f"ANALYZE {connection.ops.quote_name(table)}")


def _format_of(path: Path) -> str:
    for _, _, obj in importers.iter_json_lines(path):
        return importers.detect_format(obj) or ""
    return ""


def _label_key(dataset: str, key: str) -> str:
    """``<dataset>:<record key>``; hashed when too long for the column (never truncated: no collisions)."""
    full = f"{dataset}:{key}"
    return full if len(full) <= 300 else f"{dataset[:200]}:sha256-{importers.text_digest(full)}"


def _write_labels(writer: _Writer, chunk: list[ComparisonRecord], comparison_ids: list[int],
                  firsts: list[int], seconds: list[int]) -> None:
    result = writer.result
    keys = [_label_key(writer.dataset.name, r.key) for r in chunk]
    existing = set(HumanLabel.objects.filter(import_key__in=keys).values_list("import_key", flat=True))
    new: dict[str, HumanLabel] = {}
    for key, rec, cid, first_id, second_id in zip(keys, chunk, comparison_ids, firsts, seconds):
        if key in existing or key in new:
            result.labels_present += 1
            continue
        new[key] = HumanLabel(comparison_id=cid, worker_id=rec.worker, import_key=key,
                              **_canonical_label(rec, first_id, second_id))
    HumanLabel.objects.bulk_create(new.values(), batch_size=CHUNK)
    result.labels_created += len(new)


def harmlessness_import(
    *, path: str | Path, dataset: str | None = None, task: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import harmlessness judgments of single responses (`importers.iter_harmlessness`): the
    responses become Summaries of their policy, each judgment a HarmlessnessLabel; atomic and
    idempotent like the other imports. A new dialogue dataset gets `task` (default "harmless")."""
    path = Path(path)
    result = ImportResult(format="harmlessness")
    with transaction.atomic():
        writer: _Writer | None = None
        for chunk in _chunks(importers.iter_harmlessness(path), CHUNK):
            if writer is None:
                first = chunk[0]
                result.dataset = dataset or importers.default_dataset_name(path, first)
                wanted = task or (TaskKind.HARMLESS if first.task == importers.DIALOGUE else None)
                writer = _Writer(_dataset(result.dataset, first.task, path, wanted), result)
            post_ids = writer.posts([r.post for r in chunk])
            summary_ids = writer.summaries_for([(pid, r.response.policy, r.response.text, False)
                                                for pid, r in zip(post_ids, chunk)])
            keys = [_label_key(writer.dataset.name, r.key) for r in chunk]
            existing = set(HarmlessnessLabel.objects.filter(import_key__in=keys).values_list("import_key", flat=True))
            new = {k: HarmlessnessLabel(summary_id=sid, worker_id=r.worker, harmless=r.harmless, import_key=k)
                   for k, sid, r in zip(keys, summary_ids, chunk) if k not in existing}
            HarmlessnessLabel.objects.bulk_create(new.values(), batch_size=CHUNK)
            result.labels_created += len(new)
            result.labels_present += len(chunk) - len(new)
            result.records += len(chunk)
            if progress:
                progress(result.records)
        if writer is None:
            raise ImportFileError(path.name, 0, None, "the file holds no records")
    return result


def posts_import(
    *, path: str | Path, dataset: str | None = None, make_pairs: bool = True,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import posts with their human reference summary (policy `ref`, is_reference=True) and an
    optional policy sample; with `make_pairs`, one unlabeled reference-vs-policy Comparison per post.
    A post already in the dataset under another id (same content digest) is reused."""
    path = Path(path)
    result = ImportResult(format="posts")
    with transaction.atomic():
        writer: _Writer | None = None
        for chunk in _chunks(importers.iter_posts(path), CHUNK):
            if writer is None:
                result.dataset = dataset or importers.default_dataset_name(path, chunk[0])
                writer = _Writer(_dataset(result.dataset, importers.SUMMARIZATION, path), result)
            post_ids = writer.posts([r.post for r in chunk])
            wanted, pair_of = [], []
            for pid, r in zip(post_ids, chunk):
                wanted.append((pid, importers.REFERENCE_POLICY, r.reference, True))
                if r.policy_summary is not None:
                    pair_of.append(len(wanted) - 1)
                    wanted.append((pid, r.policy, r.policy_summary, False))
            ids = writer.summaries_for(wanted)
            if make_pairs and pair_of:
                writer.comparisons_for([(wanted[i][0], ids[i], ids[i + 1]) for i in pair_of])
            result.records += len(chunk)
            if progress:
                progress(result.records)
        if writer is None:
            raise ImportFileError(path.name, 0, None, "the file holds no records")
    return result
