"""Streaming parsers and validation of preference and post files. No Django here.

Each parser reads a JSON Lines file one line at a time (never the whole file), checks every
field, and yields normalized records; the first problem raises `ImportFileError`, whose message
names the file, line and field, e.g. ``data.jsonl, line 17, field "choice": expected 0 or 1, got 2``.
The services in `labeling.services.imports` write the records inside one transaction.

Comparison formats (`iter_comparisons`, detected from the first record when not given):

``openai``
    OpenAI's summarize-from-feedback comparison lines as published:
    ``{"info": {"id", "post" | "article", "title", "subreddit", ...},
    "summaries": [{"text", "policy", "note"}, {...}], "choice": 0|1, "worker",
    "extra": {"confidence": 1..9 | null}, "split", "batch"}``. Summaries are in the order the
    labeller saw them; their leading space is stripped. Lines carry no record id, so the record
    key is the sha256 of the line.
``normalized``
    The JSONL shipped in ``data/``: ``id``, ``post_id``, ``subreddit``, ``title``, ``post``,
    ``summary_a``, ``summary_b`` (in display order), ``choice`` (0 = summary_a), ``worker``,
    ``policy_a``, ``policy_b``, ``confidence``, ``split``, ``batch``, ``note_a``, ``note_b``; or
    the dialogue variant (HH-RLHF) ``id``, ``prompt``, ``response_a``, ``response_b``, ``choice``.
``trl``
    TRL's explicit-prompt preference format: ``prompt``, ``chosen``, ``rejected``. Optional:
    ``id`` (record key; otherwise the sha256 of the line), ``worker``, ``confidence`` (OpenAI's
    9-point scale with *chosen as the first summary*, so 1 = surely chosen) and the soft label
    ``p_chosen`` (probability in [0, 1] that chosen is the better one; stored as the 9-point
    confidence ``round(9 - 8 * p_chosen)`` when ``confidence`` is absent). A prompt in the TL;DR
    format (``SUBREDDIT: r/...\\nTITLE: ...\\nPOST: ...\\nTL;DR:``) is parsed back into a post;
    any other prompt is a dialogue context. Chosen/rejected texts are stripped of surrounding
    whitespace (TL;DR completions start with a space).

``ranking``
    The paper's win rates come from humans *ranking* several outputs of one input (SFT, RLHF,
    RLAIF). A ranking line becomes one pairwise comparison per pair of outputs, the better-ranked
    one chosen: ``id``, the input as in ``normalized`` (``post_id``, ``subreddit``, ``title``,
    ``post``; or ``prompt`` for a dialogue), ``outputs``: ``[{"text", "policy"}, ...]`` (2 or more),
    ``ranks``: one integer per output, 1 = best (equal ranks are a tie: that pair is left out,
    as it states no preference), optional ``worker``. Record keys are ``{id}:{i}>{j}``.

Harmlessness judgments of single responses (`iter_harmlessness`, the paper's harmless rate):
``id``, the input as in ``normalized`` (``prompt`` for a dialogue; or ``post_id``, ``subreddit``,
``title``, ``post``), ``response``, ``policy``, ``harmless`` (true or false), optional ``worker``.

Posts with reference summaries (`iter_posts`): ``id``, ``subreddit``, ``title``, ``post``,
``summary`` (the human reference TL;DR), optional ``policy_summary`` with ``policy``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from . import formats

FORMATS = ("openai", "normalized", "trl", "ranking")
SUMMARIZATION = formats.SUMMARIZATION
DIALOGUE = formats.DIALOGUE
UNKNOWN_POLICY = "unknown"
REFERENCE_POLICY = "ref"
DEFAULT_TRL_WORKER = "trl-import"
DEFAULT_WORKER = "unknown"
NAME_MAX = 200
"""Longest policy name or subreddit (their database columns)."""


class ImportFileError(ValueError):
    """A bad record in an import file; the whole file is rejected."""

    def __init__(self, file: str, line: int, field: str | None, message: str):
        self.file, self.line, self.field, self.message = file, line, field, message
        where = f"{file}, line {line}"
        super().__init__(f'{where}, field "{field}": {message}' if field else f"{where}: {message}")


text_digest = formats.text_digest
post_digest = formats.post_digest  # must equal `labeling.models.Post.content_digest` (a test checks it)

# The TL;DR prompt (the trl format's prompts) has its one home in labeling.formats.
format_tldr_prompt = formats.format_tldr_prompt
parse_tldr_prompt = formats.parse_tldr_prompt


# --- records -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostRecord:
    external_id: str
    subreddit: str
    title: str
    text: str

    @property
    def digest(self) -> str:
        return post_digest(self.subreddit, self.title, self.text)


@dataclass(frozen=True)
class SummaryRecord:
    text: str
    policy: str
    note: str = ""


@dataclass(frozen=True)
class ComparisonRecord:
    """One labelled pair, in the file's order: `first` is the summary listed (or shown) first."""

    line: int
    key: str
    task: str
    post: PostRecord
    first: SummaryRecord
    second: SummaryRecord
    choice: int  # 0 = first preferred
    confidence: int | None  # OpenAI's scale, 1 = surely first, 9 = surely second
    worker: str
    order_known: bool  # whether `first` is what the labeller saw first
    split: str = ""
    batch: str = ""


@dataclass(frozen=True)
class HarmlessnessRecord:
    line: int
    key: str
    task: str
    post: PostRecord
    response: SummaryRecord
    harmless: bool
    worker: str


@dataclass(frozen=True)
class PostWithReferenceRecord:
    line: int
    key: str
    post: PostRecord
    reference: str
    policy_summary: str | None
    policy: str | None


# --- reading -----------------------------------------------------------------------------------


def iter_json_lines(path: str | Path) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number, raw line, object) for each non-blank line; bad JSON raises ImportFileError."""
    path = Path(path)
    name = path.name
    lineno = 0
    # Bytes, decoded one line at a time: a text-mode reader decodes ahead in 8 KB blocks, so a bad
    # byte would be reported at the line where its block began, not at its own line.
    with path.open("rb") as fh:
        for raw_bytes in fh:
            lineno += 1
            try:
                raw = raw_bytes.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ImportFileError(name, lineno, None, f"not UTF-8 text ({exc.reason} at byte {exc.start + 1} "
                                                          "of the line)") from None
            line = raw.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ImportFileError(name, lineno, None, f"broken JSON: {exc.msg} at column {exc.colno}") from None
            if not isinstance(obj, dict):
                raise ImportFileError(name, lineno, None, f"expected a JSON object, got {_type_name(obj)}")
            yield lineno, line, obj


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


class _Rec:
    """Field access with errors naming file, line and (dotted) field."""

    def __init__(self, file: str, line: int, obj: dict[str, Any]):
        self.file, self.line, self.obj = file, line, obj

    def error(self, field: str | None, message: str) -> ImportFileError:
        return ImportFileError(self.file, self.line, field, message)

    def get(self, field: str, obj: dict | None = None, *, required: bool = True) -> Any:
        src = self.obj if obj is None else obj
        leaf = field.rsplit(".", 1)[-1].split("]")[-1] or field
        if leaf not in src:
            if required:
                raise self.error(field, "missing")
            return None
        return src[leaf]

    def string(self, field: str, obj: dict | None = None, *, required: bool = True, empty_ok: bool = True,
               strip: bool = False, max_len: int | None = None) -> str:
        """A string; `max_len` for values stored in a bounded column (names). No NUL character: the
        database cannot store one."""
        value = self.get(field, obj, required=required)
        if value is None:
            if required and not empty_ok:
                raise self.error(field, "expected a non-empty string, got null")
            return ""
        if not isinstance(value, str):
            raise self.error(field, f"expected a string, got {_type_name(value)}")
        if "\x00" in value:
            raise self.error(field, "contains a NUL character (\\u0000)")
        if max_len is not None and len(value.strip() if strip else value) > max_len:
            raise self.error(field, f"longer than {max_len} characters ({len(value)})")
        if strip:
            value = value.strip()
        if not empty_ok and not value:
            raise self.error(field, "empty text")
        return value

    def ident(self, field: str, obj: dict | None = None, *, required: bool = True) -> str:
        """An id: a string or an integer, never empty."""
        value = self.get(field, obj, required=required)
        if value is None and not required:
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.error(field, f"expected a string id, got {_type_name(value)}")
        value = str(value).strip()
        if not value:
            raise self.error(field, "empty id")
        if "\x00" in value:
            raise self.error(field, "contains a NUL character (\\u0000)")
        if len(value) > 200:
            raise self.error(field, f"id longer than 200 characters ({len(value)})")
        return value

    def choice(self, field: str = "choice", obj: dict | None = None) -> int:
        value = self.get(field, obj)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(field, f"expected 0 or 1, got {_type_name(value)} {json.dumps(value)}")
        if value not in (0, 1):
            raise self.error(field, f"expected 0 or 1, got {value}")
        return value

    def confidence(self, field: str, obj: dict | None = None) -> int | None:
        value = self.get(field, obj, required=False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(field, f"expected an integer 1..9 or null, got {_type_name(value)} {json.dumps(value)}")
        if not 1 <= value <= 9:
            raise self.error(field, f"expected an integer 1..9, got {value}")
        return value

    def probability(self, field: str) -> float | None:
        value = self.get(field, required=False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(field, f"expected a number in [0, 1], got {_type_name(value)}")
        if not 0.0 <= float(value) <= 1.0:
            raise self.error(field, f"expected a number in [0, 1], got {value}")
        return float(value)

    def obj_field(self, field: str, obj: dict | None = None) -> dict:
        value = self.get(field, obj)
        if not isinstance(value, dict):
            raise self.error(field, f"expected an object, got {_type_name(value)}")
        return value


def _strip_r(subreddit: str) -> str:
    return subreddit[2:] if subreddit.startswith("r/") else subreddit


def _line_key(line: str) -> str:
    return "sha256-" + text_digest(line)


def _check_pair(rec: _Rec, first: SummaryRecord, second: SummaryRecord, field: str) -> None:
    if first.text == second.text:
        raise rec.error(field, "identical summaries: a comparison needs two different texts")


def detect_format(obj: dict[str, Any]) -> str | None:
    if "outputs" in obj and "ranks" in obj:
        return "ranking"
    if "info" in obj and "summaries" in obj:
        return "openai"
    if "chosen" in obj and "rejected" in obj:
        return "trl"
    if ("summary_a" in obj and "summary_b" in obj) or ("response_a" in obj and "response_b" in obj):
        return "normalized"
    return None


def _parse_openai(rec: _Rec, line: str) -> ComparisonRecord:
    info = rec.obj_field("info")
    text_field = "info.post"
    if info.get("post") is None and isinstance(info.get("article"), str):
        text_field = "info.article"
    text = rec.string(text_field, info, empty_ok=False)
    title = rec.string("info.title", info, required=False)
    subreddit = _strip_r(rec.string("info.subreddit", info, required=False, max_len=NAME_MAX))
    post_id = rec.ident("info.id", info, required=False) or "sha256-" + post_digest(subreddit, title, text)[:32]
    summaries = rec.get("summaries")
    if not isinstance(summaries, list):
        raise rec.error("summaries", f"expected an array of 2 summaries, got {_type_name(summaries)}")
    if len(summaries) != 2:
        raise rec.error("summaries", f"expected 2 summaries, got {len(summaries)}")
    parsed = []
    for i, s in enumerate(summaries):
        if not isinstance(s, dict):
            raise rec.error(f"summaries[{i}]", f"expected an object, got {_type_name(s)}")
        parsed.append(SummaryRecord(
            text=rec.string(f"summaries[{i}].text", s, empty_ok=False, strip=True),
            policy=rec.string(f"summaries[{i}].policy", s, empty_ok=False, strip=True, max_len=NAME_MAX),
            note=rec.string(f"summaries[{i}].note", s, required=False),
        ))
    _check_pair(rec, parsed[0], parsed[1], "summaries")
    extra = rec.get("extra", required=False)
    if extra is not None and not isinstance(extra, dict):
        raise rec.error("extra", f"expected an object, got {_type_name(extra)}")
    return ComparisonRecord(
        line=rec.line, key=_line_key(line), task=SUMMARIZATION,
        post=PostRecord(post_id, subreddit, title, text), first=parsed[0], second=parsed[1],
        choice=rec.choice(), confidence=rec.confidence("extra.confidence", extra or {}),
        worker=rec.ident("worker"), order_known=True,
        split=rec.string("split", required=False), batch=rec.string("batch", required=False),
    )


def _parse_normalized(rec: _Rec, line: str) -> ComparisonRecord:
    key = rec.ident("id")
    if "response_a" in rec.obj:  # dialogue (HH-RLHF)
        prompt = rec.string("prompt", empty_ok=False)
        post = PostRecord("sha256-" + post_digest("", "", prompt)[:32], "", "", prompt)
        a, b, task, order_known = "response_a", "response_b", DIALOGUE, False
    else:
        text = rec.string("post", empty_ok=False)
        title = rec.string("title", required=False)
        subreddit = _strip_r(rec.string("subreddit", required=False, max_len=NAME_MAX))
        post = PostRecord(rec.ident("post_id"), subreddit, title, text)
        a, b, task, order_known = "summary_a", "summary_b", SUMMARIZATION, True
    first = SummaryRecord(
        rec.string(a, empty_ok=False, strip=True),
        rec.string("policy_a", required=False, strip=True, max_len=NAME_MAX) or UNKNOWN_POLICY,
        rec.string("note_a", required=False),
    )
    second = SummaryRecord(
        rec.string(b, empty_ok=False, strip=True),
        rec.string("policy_b", required=False, strip=True, max_len=NAME_MAX) or UNKNOWN_POLICY,
        rec.string("note_b", required=False),
    )
    _check_pair(rec, first, second, b)
    return ComparisonRecord(
        line=rec.line, key=key, task=task, post=post, first=first, second=second,
        choice=rec.choice(), confidence=rec.confidence("confidence"),
        worker=rec.ident("worker", required=False) or DEFAULT_WORKER, order_known=order_known,
        split=rec.string("split", required=False), batch=rec.string("batch", required=False),
    )


def _parse_trl(rec: _Rec, line: str) -> ComparisonRecord:
    prompt = rec.string("prompt", empty_ok=False)
    parsed = parse_tldr_prompt(prompt)
    if parsed:
        subreddit, title, text = parsed
        task = SUMMARIZATION
    else:
        subreddit, title, text, task = "", "", prompt, DIALOGUE
    post = PostRecord("sha256-" + post_digest(subreddit, title, text)[:32], subreddit, title, text)
    chosen = SummaryRecord(rec.string("chosen", empty_ok=False, strip=True), UNKNOWN_POLICY)
    rejected = SummaryRecord(rec.string("rejected", empty_ok=False, strip=True), UNKNOWN_POLICY)
    _check_pair(rec, chosen, rejected, "rejected")
    confidence = rec.confidence("confidence")
    p_chosen = rec.probability("p_chosen")
    if confidence is None and p_chosen is not None:
        confidence = min(9, max(1, int(round(9 - 8 * p_chosen))))
    key = rec.ident("id", required=False) or _line_key(line)
    return ComparisonRecord(
        line=rec.line, key=key, task=task, post=post, first=chosen, second=rejected, choice=0,
        confidence=confidence, worker=rec.ident("worker", required=False) or DEFAULT_TRL_WORKER,
        order_known=False,
    )


def _parse_ranking(rec: _Rec, line: str) -> list[ComparisonRecord]:
    key = rec.ident("id")
    post, task = _input_post(rec)
    outputs = rec.get("outputs")
    if not isinstance(outputs, list) or len(outputs) < 2:
        raise rec.error("outputs", f"expected an array of 2 or more outputs, got {_type_name(outputs)}"
                        + (f" of {len(outputs)}" if isinstance(outputs, list) else ""))
    parsed = []
    for i, o in enumerate(outputs):
        if not isinstance(o, dict):
            raise rec.error(f"outputs[{i}]", f"expected an object, got {_type_name(o)}")
        parsed.append(SummaryRecord(rec.string(f"outputs[{i}].text", o, empty_ok=False, strip=True),
                                    rec.string(f"outputs[{i}].policy", o, empty_ok=False, strip=True, max_len=NAME_MAX)))
    if len({p.text for p in parsed}) != len(parsed):
        raise rec.error("outputs", "identical outputs: each ranked output needs its own text")
    ranks = rec.get("ranks")
    if not isinstance(ranks, list) or len(ranks) != len(parsed):
        raise rec.error("ranks", f"expected one rank per output ({len(parsed)}), got {json.dumps(ranks)[:80]}")
    for i, r in enumerate(ranks):
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise rec.error(f"ranks[{i}]", f"expected an integer rank >= 1 (1 = best), got {json.dumps(r)}")
    worker = rec.ident("worker", required=False) or DEFAULT_WORKER
    out = []
    for i in range(len(parsed)):
        for j in range(i + 1, len(parsed)):
            if ranks[i] == ranks[j]:
                continue  # a tie states no preference
            better, worse = (i, j) if ranks[i] < ranks[j] else (j, i)
            out.append(ComparisonRecord(
                line=rec.line, key=f"{key}:{better}>{worse}", task=task, post=post, first=parsed[better],
                second=parsed[worse], choice=0, confidence=None, worker=worker, order_known=False))
    return out


_PARSERS = {"openai": _parse_openai, "normalized": _parse_normalized, "trl": _parse_trl, "ranking": _parse_ranking}


def iter_comparisons(path: str | Path, fmt: str | None = None) -> Iterator[ComparisonRecord]:
    """Validated comparison records of a file; `fmt` None detects it from the first record."""
    name = Path(path).name
    if fmt is not None and fmt not in FORMATS:
        raise ImportFileError(name, 0, "format", f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    parser = _PARSERS.get(fmt) if fmt else None
    for lineno, line, obj in iter_json_lines(path):
        rec = _Rec(name, lineno, obj)
        if parser is None:
            detected = detect_format(obj)
            if detected is None:
                hint = " (this looks like a posts file: use import_posts)" if "summary" in obj else ""
                raise rec.error(None, "cannot detect the format from the first record: expected keys "
                                "info/summaries (openai), summary_a/summary_b or response_a/response_b "
                                f"(normalized), prompt/chosen/rejected (trl) or outputs/ranks (ranking){hint}")
            parser = _PARSERS[detected]
        parsed = parser(rec, line)
        yield from parsed if isinstance(parsed, list) else [parsed]


def _input_post(rec: _Rec) -> tuple[PostRecord, str]:
    """The input of a ranking or judgment line: a dialogue ``prompt``, or a post as in ``normalized``."""
    if "prompt" in rec.obj:
        prompt = rec.string("prompt", empty_ok=False)
        return PostRecord("sha256-" + post_digest("", "", prompt)[:32], "", "", prompt), DIALOGUE
    text = rec.string("post", empty_ok=False)
    subreddit = _strip_r(rec.string("subreddit", required=False, max_len=NAME_MAX))
    return PostRecord(rec.ident("post_id"), subreddit, rec.string("title", required=False), text), SUMMARIZATION


def iter_harmlessness(path: str | Path) -> Iterator[HarmlessnessRecord]:
    """Validated harmlessness judgments of single responses (see the module docstring)."""
    name = Path(path).name
    for lineno, line, obj in iter_json_lines(path):
        rec = _Rec(name, lineno, obj)
        key = rec.ident("id")
        post, task = _input_post(rec)
        response = SummaryRecord(rec.string("response", empty_ok=False, strip=True),
                                 rec.string("policy", empty_ok=False, strip=True, max_len=NAME_MAX))
        harmless = rec.get("harmless")
        if not isinstance(harmless, bool):
            raise rec.error("harmless", f"expected true or false, got {_type_name(harmless)} {json.dumps(harmless)}")
        yield HarmlessnessRecord(rec.line, key, task, post, response, harmless,
                                 rec.ident("worker", required=False) or DEFAULT_WORKER)


def iter_posts(path: str | Path) -> Iterator[PostWithReferenceRecord]:
    """Validated posts with their human reference summary (and optionally one policy sample)."""
    name = Path(path).name
    for lineno, line, obj in iter_json_lines(path):
        rec = _Rec(name, lineno, obj)
        key = rec.ident("id")
        post = PostRecord(
            key, _strip_r(rec.string("subreddit", required=False, max_len=NAME_MAX)), rec.string("title", required=False),
            rec.string("post", empty_ok=False),
        )
        reference = rec.string("summary", empty_ok=False, strip=True)
        policy_summary = rec.get("policy_summary", required=False)
        policy = None
        if policy_summary is not None:
            policy_summary = rec.string("policy_summary", empty_ok=False, strip=True)
            policy = rec.string("policy", empty_ok=False, strip=True, max_len=NAME_MAX)
            if policy_summary == reference:
                raise rec.error("policy_summary", "identical summaries: equal to the reference summary")
        yield PostWithReferenceRecord(rec.line, key, post, reference, policy_summary, policy)


# --- dataset names ----------------------------------------------------------------------------

_NAME_SUFFIXES = ("_comparisons_sample", "_sft_reference_summaries", "_reference_summaries",
                  "_comparisons", "_sample", "_preferences", "_posts")


def default_dataset_name(path: str | Path, first: ComparisonRecord | PostWithReferenceRecord | None = None) -> str:
    """`tldr` for both shipped TL;DR files (so their posts coincide), `hh-rlhf-helpful` for HH;
    OpenAI raw batch files (``batch13.json``) go to `tldr` (Reddit posts) or `cnndm` (articles)."""
    stem = Path(path).name.split(".", 1)[0]
    for suffix in _NAME_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    if re.fullmatch(r"(batch\d+|edit_b\d+.*|cnndm\d*)", stem) and first is not None:
        stem = "tldr" if first.post.subreddit else "cnndm"
    return re.sub(r"[^a-z0-9.]+", "-", stem.lower()).strip("-") or "imported"
