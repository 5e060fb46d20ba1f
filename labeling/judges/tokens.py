"""Find the vocabulary ids of answer tokens ("1", "2", "1".."10") for any tokenizer.

The id that matters is the one the tokenizer produces when the answer follows the prompt's
ending (e.g. `Preferred Summary=1`): with or without a leading space or SentencePiece's `▁`,
depending on the tokenizer. We read it off the tokenization of `ending + answer` and fall back
to looking the bare and space-prefixed forms up in the vocabulary.
"""
from __future__ import annotations

from typing import Sequence


class AnswerTokenError(ValueError):
    """An answer is not a single token of this tokenizer."""


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def answer_token_id(tokenizer, answer: str, context: str = "Preferred Summary=") -> int:
    """The single token id of `answer` as it appears right after `context`."""
    with_answer, without = _encode(tokenizer, context + answer), _encode(tokenizer, context)
    if with_answer[: len(without)] == without and len(with_answer) == len(without) + 1:
        return with_answer[-1]
    vocab = tokenizer.get_vocab()
    for form in (answer, "▁" + answer, "Ġ" + answer, " " + answer):
        if form in vocab:
            return vocab[form]
    ids = _encode(tokenizer, answer)
    if len(ids) == 1:
        return ids[0]
    raise AnswerTokenError(f"answer {answer!r} is not a single token of this tokenizer (got ids {ids})")


def answer_token_ids(tokenizer, answers: Sequence[str] = ("1", "2"),
                     context: str = "Preferred Summary=") -> list[int]:
    """Ids of each answer after `context`; raises AnswerTokenError if two answers share an id."""
    ids = [answer_token_id(tokenizer, a, context) for a in answers]
    if len(set(ids)) != len(ids):
        raise AnswerTokenError(f"answers {list(answers)} map to non-distinct token ids {ids}")
    return ids


def rating_token_ids(tokenizer, context: str = "Score=") -> dict[int, list[int]]:
    """For each score 1..10, the token ids spelling it after `context` (one id, or two for a split "10")."""
    out: dict[int, list[int]] = {}
    for score in range(1, 11):
        answer = str(score)
        try:
            out[score] = [answer_token_id(tokenizer, answer, context)]
        except AnswerTokenError:
            full, base = _encode(tokenizer, context + answer), _encode(tokenizer, context)
            if full[: len(base)] != base:
                raise
            out[score] = full[len(base):]
    return out
