"""The one home of the rules several parts of the app share. No Django, and nothing of ours.

Everything that must give the same answer wherever it is used lives here, and every caller
imports it: the labeling app (importers, exemplars, quality report), the judges, the training
loops (`training/ml`), the evaluation metrics and the dashboards' SQL.

- **Prompt formats.** The paper's TL;DR prompt (``SUBREDDIT: r/...`` / ``TITLE:`` / ``POST:`` then
  ``TL;DR:``; the subreddit line is left out when there is none, never ``SUBREDDIT: r/``), the
  text a labeler reads for a post, and the dialogue (HH-RLHF) prompt.
- **Digests.** sha256 of a text and of a post's content, which the database's unique indexes use.
- **High confidence.** The paper's subset: human confidence 1, 2, 8 or 9 on OpenAI's 9-point
  scale; for several labels of one comparison, their mean confidence at most 2 or at least 8.
- **Majority.** The human verdict of a comparison from its votes: A when more than half chose A,
  B when fewer, no verdict on an even split.
- **Trivial judges.** "Prefer the longer summary" (characters) and "prefer the summary sharing more
  distinct words with the title and post" (lower-cased ``\\w+`` words); `comparison_facts` gives
  the per-summary numbers both compare, which `labeling.Comparison` stores (len_a, overlap_a, ...).

The numeric rules are written with arithmetic and comparison operators only, so the same
function takes Python numbers or numpy arrays (the metrics call them on whole columns).
"""
from __future__ import annotations

import csv
import hashlib
import re
from typing import Any

# --- digests ----------------------------------------------------------------------------------


def text_digest(text: str) -> str:
    """sha256 (hex) of a text; lets the database enforce uniqueness of long texts with a short index."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def post_digest(subreddit: str, title: str, text: str) -> str:
    """The digest of a post's content (what `Post.content_digest` stores)."""
    return text_digest("\x1f".join([subreddit, title, text]))


# --- prompt formats ---------------------------------------------------------------------------

SUMMARIZATION = "summarization"
DIALOGUE = "dialogue"  # HH-RLHF helpfulness
HARMLESS = "harmless"  # HH-RLHF harmlessness: the same dialogue format, the other question
DIALOGUE_TASKS = (DIALOGUE, HARMLESS)
TLDR_ENDING = "TL;DR:"
DIALOGUE_ENDING = "Assistant:"


def tldr_post_block(subreddit: str, title: str, post: str) -> str:
    """``SUBREDDIT: r/{subreddit}`` (only when there is one), ``TITLE: {title}``, ``POST: {post}``."""
    head = f"SUBREDDIT: r/{subreddit}\n" if subreddit else ""
    return f"{head}TITLE: {title}\nPOST: {post}"


def format_tldr_prompt(subreddit: str, title: str, post: str) -> str:
    """The paper's TL;DR policy prompt; the summary follows after one space."""
    return f"{tldr_post_block(subreddit, title, post)}\n{TLDR_ENDING}"


_TLDR_RE = re.compile(r"\A(?:SUBREDDIT: r/([^\n]*)\n)?TITLE: ([^\n]*)\nPOST: (.*)\nTL;DR:\Z", re.DOTALL)


def parse_tldr_prompt(prompt: str) -> tuple[str, str, str] | None:
    """(subreddit, title, post) when `prompt` is exactly a TL;DR prompt, else None."""
    m = _TLDR_RE.match(prompt)
    if not m:
        return None
    subreddit, title, post = m.group(1) or "", m.group(2), m.group(3)
    return (subreddit, title, post) if format_tldr_prompt(subreddit, title, post) == prompt else None


def format_dialogue_prompt(context: str) -> str:
    """A dialogue (HH-RLHF) policy prompt: the conversation so far, then the assistant's turn.

    The shipped HH contexts end with the human's last turn; ``\\n\\nAssistant:`` is appended
    (once) so the response follows after one space, as a TL;DR summary follows ``TL;DR:``.
    """
    context = context.rstrip()
    if context.endswith(DIALOGUE_ENDING):
        return context
    return f"{context}\n\n{DIALOGUE_ENDING}"


def is_dialogue_task(task: str) -> bool:
    """Whether a dataset task ("summarization", "dialogue", "harmless") uses the dialogue format."""
    return task in DIALOGUE_TASKS


def is_dialogue(subreddit: str, title: str) -> bool:
    """A post without subreddit and title is a dialogue context (how the importers store HH)."""
    return not subreddit and not title


def policy_prompt(subreddit: str, title: str, post: str, task: str | None = None) -> str:
    """The prompt a policy continues: TL;DR for posts, the dialogue prompt for conversations.

    `task` ("summarization", "dialogue" or "harmless") decides when given; otherwise a post without
    subreddit and title is taken for a dialogue.
    """
    dialogue = is_dialogue_task(task) if task else is_dialogue(subreddit, title)
    return format_dialogue_prompt(post) if dialogue else format_tldr_prompt(subreddit, title, post)


def labeler_text(subreddit: str, title: str, post: str) -> str:
    """What an AI labeler reads after ``Text - `` (or ``Context - ``): the TL;DR block for a
    Reddit post, the bare text for a dialogue or an article."""
    return post if is_dialogue(subreddit, title) else tldr_post_block(subreddit, title, post)


# --- high confidence ------------------------------------------------------------------------

HIGH_CONFIDENCE_AT_MOST = 2
HIGH_CONFIDENCE_AT_LEAST = 8
HIGH_CONFIDENCE = frozenset({1, 2, 8, 9})
"""The paper's high-confidence subset of OpenAI's 9-point scale (1 = surely A, 9 = surely B)."""


def is_high_confidence(confidence: Any) -> Any:
    """True where a confidence (or the mean of several) is at most 2 or at least 8.

    None and nan are not high confidence. Works element-wise on numpy arrays.
    """
    if confidence is None:
        return False
    return (confidence <= HIGH_CONFIDENCE_AT_MOST) | (confidence >= HIGH_CONFIDENCE_AT_LEAST)


def high_confidence_sql(column: str) -> str:
    """The same rule as a SQL condition on a (mean) confidence column."""
    return f"({column} <= {HIGH_CONFIDENCE_AT_MOST} OR {column} >= {HIGH_CONFIDENCE_AT_LEAST})"


# --- majority -------------------------------------------------------------------------------


def majority_score(votes_a: Any, votes: Any) -> Any:
    """The majority's score for A from `votes_a` of `votes` labels: 1.0 (A), 0.0 (B), 0.5 (split).

    Works element-wise on numpy arrays.
    """
    return (2 * votes_a > votes) * 1.0 + (2 * votes_a == votes) * 0.5


def majority_choice(votes_a: int, votes_b: int) -> int | None:
    """The majority's choice (0 = A, 1 = B), or None when the votes are split evenly (or none)."""
    score = majority_score(votes_a, votes_a + votes_b)
    return None if score == 0.5 else (0 if score == 1.0 else 1)


# --- trivial judges ---------------------------------------------------------------------------

TRIVIAL_JUDGES = {
    "longer": "Trivial: prefer the longer summary",
    "overlap": "Trivial: prefer more distinct words shared with the post (title and text)",
}
_WORD = re.compile(r"\w+")


def words(text: str) -> set[str]:
    """The distinct lower-cased words (``\\w+``) of a text."""
    return set(_WORD.findall(text.lower()))


def overlap_source(title: str, post: str) -> str:
    """The text the overlap judge compares summaries with: title and post."""
    return f"{title}\n{post}" if title else post


def overlap_count(source_words: set[str], text: str) -> int:
    """How many distinct words a summary shares with its source (`words(overlap_source(...))`)."""
    return len(source_words & words(text))


def comparison_facts(title: str, post_text: str, text_a: str, text_b: str, *,
                     source_words: set[str] | None = None) -> dict[str, int]:
    """What the trivial judges read of one comparison, as stored on it: each summary's length in
    characters and its overlap count with the title and post. `source_words` may pass the post's
    `words(overlap_source(title, post_text))` already computed (a post has many comparisons)."""
    if source_words is None:
        source_words = words(overlap_source(title, post_text))
    return {"len_a": len(text_a), "len_b": len(text_b),
            "overlap_a": overlap_count(source_words, text_a), "overlap_b": overlap_count(source_words, text_b)}


def longer_margin(text_a: str, text_b: str) -> int:
    """> 0 when the longer-summary judge prefers A, < 0 for B, 0 for a tie (characters):
    `len_a - len_b` of `comparison_facts`."""
    return len(text_a) - len(text_b)


def overlap_margin(source_words: set[str], text_a: str, text_b: str) -> int:
    """> 0 when A shares more distinct words with the source (`words(overlap_source(...))`):
    `overlap_a - overlap_b` of `comparison_facts`."""
    return overlap_count(source_words, text_a) - overlap_count(source_words, text_b)


def margin_score(margin: float) -> float:
    """A judge's P(A) from its margin: 1.0, 0.0, or 0.5 on a tie."""
    return 1.0 if margin > 0 else 0.0 if margin < 0 else 0.5


# --- time per label ------------------------------------------------------------------------------

LABEL_SECONDS_CAP = 600.0  # a label's recorded time counts at most this: an idle tab is not work
TIME_PER_LABEL = ("Seconds per label: the mean time from showing a pair to its answer, each label counted "
                  "at most 10 minutes (an idle tab is not work); labels per hour: 3600 over it.")


def capped_seconds(seconds: float) -> float:
    """One label's recorded time as it counts toward time per label."""
    return min(float(seconds), LABEL_SECONDS_CAP)


def seconds_per_label(capped_total: float, n_timed: int) -> float | None:
    """`TIME_PER_LABEL`: the mean capped time of the labels that have one; None without any."""
    return float(capped_total) / n_timed if n_timed else None


def labels_per_hour(seconds: float | None) -> float | None:
    return 3600.0 / seconds if seconds else None


# --- CSV cells -----------------------------------------------------------------------------------

CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""Characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection")."""


def csv_safe(value):
    """A CSV cell that no spreadsheet runs as a formula: text starting with `=`, `+`, `-`, `@`, tab or
    CR gets a leading apostrophe, as OWASP advises. Numbers (negative ones too) stay numbers. Every
    CSV export (dashboards, `export_preferences --format csv`) writes its cells through this
    (`SafeDictWriter`)."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_START):
        return "'" + value
    return value


class SafeDictWriter(csv.DictWriter):
    """csv.DictWriter whose every cell goes through `csv_safe`: the one writer of our CSV exports."""

    def writerow(self, rowdict):
        return super().writerow({k: csv_safe(v) for k, v in rowdict.items()})

    def writerows(self, rowdicts):
        for row in rowdicts:
            self.writerow(row)

