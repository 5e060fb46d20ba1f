"""What every labeler backend offers, and the small value types they exchange. No Django."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence


class JudgeError(RuntimeError):
    """A prompt could not be scored (e.g. the server's top logprobs lack "1" or "2")."""


@dataclass(frozen=True)
class Prompt:
    """A prompt split where a chat template would put the assistant turn.

    `body` is the user's part (preamble, exemplars, sample); `tail` is what the model is made to
    say before the answer (e.g. "\\n\\nPreferred Summary="). Without a chat template the text is
    simply body + tail.
    """

    body: str
    tail: str = ""

    @property
    def text(self) -> str:
        return self.body + self.tail


@dataclass
class Scored:
    """Normalized probabilities of the answers (same order as asked), or an error."""

    probs: list[float] | None
    prompt_tokens: int = 0
    error: str = ""
    method: str = "logits"
    """How the probabilities were read: "logits" (the model's full next-token distribution, local
    backend); over HTTP "top_logprobs", "echo" (prompt logprobs) or "logit_bias"."""


@dataclass
class Generated:
    text: str
    completion_tokens: int = 0
    prompt_tokens: int = 0
    error: str = ""


@dataclass
class Usage:
    """Tokens pushed through the model (for throughput figures)."""

    computed: int = 0  # real tokens run through the model
    padded: int = 0  # padding positions computed as well
    generated: int = 0
    extra: dict = field(default_factory=dict)


class Backend(Protocol):
    usage: Usage

    def count_tokens(self, prompt: Prompt) -> int: ...

    def score(self, groups: Sequence[Sequence[Prompt]], answers: Sequence[str], context: str,
              shared_prefix: str | None = None) -> list[list[Scored]]: ...

    def generate(self, prompts: Sequence[Prompt], *, n: int = 1, temperature: float = 0.0, top_k: int = 40,
                 max_new_tokens: int = 512, seed: int | None = None, stop: Sequence[str] = (),
                 shared_prefix: str | None = None) -> list[list[Generated]]: ...

    def rate(self, prompts: Sequence[Prompt], context: str) -> list[Scored]: ...
