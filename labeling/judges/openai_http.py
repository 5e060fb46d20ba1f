"""OpenAI-compatible HTTP backend (vLLM, Ollama, OpenAI): the legacy completions endpoint with
`logprobs`, read from `top_logprobs` of the first generated position.

Bounded concurrency (a thread pool), a timeout per request, retries with exponential backoff on
connection errors, 429 and 5xx; the API key comes from an environment variable.
Prefix reuse is the server's business (vLLM's automatic prefix caching does it).
Token counts (for `max_prompt_tokens`) come from the server's `/tokenize` endpoint where it has one
(vLLM); elsewhere (OpenAI, Ollama) they are estimated at 4 characters a token.

How an answer's probability is read (recorded per label as `Scored.method`):

1. ``top_logprobs``: ask for as many top log-probabilities as the server allows (20 by default,
   the limit of vLLM and OpenAI; `top_logprobs` in the config's `extra` changes it; a server that
   refuses the number is asked again with 5). Where every answer token is among them, done.
2. ``echo``: an answer still missing is scored exactly from prompt log-probabilities: the prompt
   followed by the answer, with ``echo`` and ``max_tokens=0``; the answer's tokens are those
   whose offset starts at the end of the prompt. Servers without echo say so once, and the
   backend stops asking.
3. ``logit_bias``: else the answer is restricted with a +100 `logit_bias` on the answer tokens'
   ids (from the server's `/tokenize`, or `answer_token_ids` in the config's `extra`). A bias
   equal on every answer leaves their ratios as they were, so the softmax over them is exact.

If none of these can read a missing answer the prompt fails with an explicit error: we never
guess 0.5, and never normalize over only the answers that happened to be in the top k. Direct
RLAIF reads P(1..10) the same way.
"""
from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from .base import Generated, JudgeError, Prompt, Scored, Usage


def _norm(token: str) -> str:
    return token.replace("▁", " ").replace("Ġ", " ").strip()


class OpenAIHTTPBackend:
    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0,
                 max_retries: int = 4, backoff: float = 1.0, concurrency: int = 8, top_logprobs: int = 20,
                 extra_body: dict | None = None, send_top_k: bool = True, server_token_counts: bool = True,
                 echo: bool = True, answer_token_ids: dict[str, list[int]] | None = None):
        if not base_url:
            raise ValueError("the OpenAI-compatible backend needs a base_url (e.g. http://localhost:8000/v1)")
        self.url = base_url.rstrip("/") + "/completions"
        root = base_url.rstrip("/")
        self.tokenize_url = (root[:-3] if root.endswith("/v1") else root) + "/tokenize"
        # None: not tried yet; False: the server has no /tokenize, so counts are estimates.
        self.server_token_counts: bool | None = None if server_token_counts else False
        self.model = model
        self.api_key = os.environ.get(api_key_env, "") if api_key_env else ""
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self.concurrency = max(1, concurrency)
        self.top_logprobs = max(1, int(top_logprobs))
        # None: not tried yet; False: the server refused echo / has no token ids for logit_bias.
        self.echo: bool | None = None if echo else False
        self._token_ids: dict[str, list[int] | None] = {
            str(a): [int(ids)] if isinstance(ids, int) else [int(i) for i in ids]
            for a, ids in (answer_token_ids or {}).items()}
        self.extra_body = dict(extra_body or {})
        self.send_top_k = send_top_k  # OpenAI itself rejects top_k; vLLM and Ollama accept it
        self.usage = Usage()

    # --- transport ----------------------------------------------------------------------------

    def _post(self, body: dict, *, url: str | None = None, retries: int | None = None) -> dict:
        url = url or self.url
        retries = self.max_retries if retries is None else retries
        data = json.dumps({"model": self.model, **self.extra_body, **body}).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            req = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:300]
                last = f"HTTP {exc.code} from {url}: {detail}"
                if exc.code != 429 and exc.code < 500:
                    raise JudgeError(last) from exc
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                last = f"cannot reach {url}: {exc}"
            except json.JSONDecodeError as exc:
                raise JudgeError(f"invalid JSON from {url}: {exc}") from exc
        raise JudgeError(f"{last} (after {retries + 1} attempts)")

    def _map(self, fn, items):
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(fn, items))

    # --- the backend API ------------------------------------------------------------------------

    def count_tokens(self, prompt: Prompt) -> int:
        """The server's count (vLLM's `/tokenize`) where it has one, else ~4 characters a token."""
        if self.server_token_counts is not False:
            try:
                resp = self._post({"prompt": prompt.text}, url=self.tokenize_url, retries=1)
                count = int(resp["count"]) if "count" in resp else len(resp["tokens"])
                self.server_token_counts = True
                return count
            except JudgeError:
                if self.server_token_counts is None:
                    self.server_token_counts = False  # no such endpoint here: estimate from now on
                else:
                    raise  # it worked before: a failure now is the server's, not a missing endpoint
            except (KeyError, TypeError, ValueError):
                self.server_token_counts = False
        return math.ceil(len(prompt.text) / 4)

    # --- reading answer probabilities -------------------------------------------------------

    def _top(self, text: str) -> tuple[dict[str, float], int]:
        """The top log-probabilities of the first generated position, as many as the server allows,
        and the prompt's token count."""
        body = {"prompt": text, "max_tokens": 1, "temperature": 0, "logprobs": self.top_logprobs}
        try:
            resp = self._post(body)
        except JudgeError as exc:
            # A server with a lower limit (OpenAI's legacy completions: 5) answers 400: ask with 5.
            if self.top_logprobs <= 5 or "HTTP 400" not in str(exc) or "logprob" not in str(exc).lower():
                raise
            self.top_logprobs = 5
            resp = self._post({**body, "logprobs": 5})
        n_prompt = int((resp.get("usage") or {}).get("prompt_tokens") or 0)
        self.usage.computed += n_prompt
        top = ((resp["choices"][0].get("logprobs") or {}).get("top_logprobs") or [None])[0]
        if not isinstance(top, dict):
            raise JudgeError("the server returned no top_logprobs (does it support logprobs?)")
        return {k: float(v) for k, v in top.items()}, n_prompt

    def _echo_logprob(self, text: str, answer: str) -> float | None:
        """log P(answer | text) from prompt log-probabilities (echo, max_tokens=0); None when the
        server has no echo, or when its tokenizer merges the answer into the prompt's last token."""
        if self.echo is False:
            return None
        try:
            resp = self._post({"prompt": text + answer, "max_tokens": 0, "echo": True, "logprobs": 1,
                               "temperature": 0}, retries=min(self.max_retries, 1))
            lp = resp["choices"][0]["logprobs"]
            offsets, values = lp["text_offset"], lp["token_logprobs"]
        except JudgeError as exc:
            if "HTTP 4" in str(exc):
                self.echo = False  # no echo / max_tokens=0 here: stop asking
                return None
            raise
        except (KeyError, IndexError, TypeError):
            self.echo = False
            return None
        self.echo = True
        tail = [k for k, off in enumerate(offsets) if off >= len(text)]
        if not tail or offsets[tail[0]] != len(text) or any(values[k] is None for k in tail):
            return None
        return float(sum(values[k] for k in tail))

    def _answer_ids(self, answer: str, context: str) -> list[int] | None:
        """Token ids of `answer` after `context` (from the config, else the server's /tokenize)."""
        if answer not in self._token_ids:
            ids = None
            if self.server_token_counts is not False:
                try:
                    whole = self._post({"prompt": context + answer}, url=self.tokenize_url, retries=1)["tokens"]
                    head = self._post({"prompt": context}, url=self.tokenize_url, retries=1)["tokens"]
                    if whole[: len(head)] == head and len(whole) > len(head):
                        ids = [int(t) for t in whole[len(head):]]
                except (JudgeError, KeyError, TypeError, ValueError):
                    ids = None
            self._token_ids[answer] = ids
        return self._token_ids[answer]

    def _biased_top(self, text: str, answers: Sequence[str], context: str) -> dict[str, float] | None:
        """log P of each single-token answer, with the answers' tokens pushed up by +100 so they
        are the top k: their ratios are the model's, the softmax over them exact."""
        ids = {a: self._answer_ids(a, context) for a in answers}
        if any(v is None or len(v) != 1 for v in ids.values()):
            return None
        bias = {str(v[0]): 100 for v in ids.values()}
        resp = self._post({"prompt": text, "max_tokens": 1, "temperature": 0,
                           "logprobs": max(min(self.top_logprobs, 20), len(answers)), "logit_bias": bias})
        top = ((resp["choices"][0].get("logprobs") or {}).get("top_logprobs") or [None])[0] or {}
        found = _pick(top, answers)
        return found if len(found) == len(answers) else None

    def _answer_logprobs(self, text: str, answers: Sequence[str], context: str, *,
                         top: dict[str, float] | None = None, ratios_ok: bool = True) -> tuple[dict[str, float], str]:
        """log P(answer) for each answer after `text`, and the method that read them (see the module
        doc). `top`: the top logprobs already read for `text`. With `ratios_ok` False the caller
        needs absolute probabilities, which logit_bias cannot give."""
        if top is None:
            top = self._top(text)[0]
        found = _pick(top, answers)
        if len(found) == len(answers):
            return found, "top_logprobs"
        missing = [a for a in answers if a not in found]
        exact = {a: self._echo_logprob(text, a) for a in missing}
        if all(v is not None for v in exact.values()):
            return {**found, **exact}, "echo"
        biased = self._biased_top(text, answers, context) if ratios_ok else None
        if biased is not None:
            return biased, "logit_bias"
        raise JudgeError(
            f"answer token(s) {missing} not among the top {len(top)} logprobs "
            f"{sorted(top, key=top.get, reverse=True)}, and the server offers no echo"
            + (" nor token ids for logit_bias (set answer_token_ids in the config's extra)" if ratios_ok else ""))

    def _score_one(self, prompt: Prompt, answers: Sequence[str], context: str) -> Scored:
        try:
            top, n_prompt = self._top(prompt.text)
            logps, method = self._answer_logprobs(prompt.text, answers, context, top=top)
        except JudgeError as exc:
            return Scored(None, error=str(exc))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            return Scored(None, error=f"unexpected completions response: {exc!r}")
        m = max(logps[a] for a in answers)
        exps = [math.exp(logps[a] - m) for a in answers]
        return Scored([e / sum(exps) for e in exps], prompt_tokens=n_prompt, method=method)

    def score(self, groups: Sequence[Sequence[Prompt]], answers: Sequence[str] = ("1", "2"),
              context: str = "Preferred Summary=", shared_prefix: str | None = None) -> list[list[Scored]]:
        flat = [p for g in groups for p in g]
        scored = iter(self._map(lambda p: self._score_one(p, tuple(answers), context), flat))
        return [[next(scored) for _ in g] for g in groups]

    def rate(self, prompts: Sequence[Prompt], context: str = "Score=") -> list[Scored]:
        """Normalized P(1..10) after each rating prompt, every score token read exactly.

        The digits 1..9 (and "10" where the tokenizer has it as one token) are read like the pairwise
        answers: top logprobs, then echo or logit_bias for any missing, never normalized over only
        those in the top k. Where "10" is "1" then "0", a second read after the prompt + "1" gives
        P("0" | "1"), so P(10) = P("1") P("0" | "1") and P(1) = P("1") (1 - P("0" | "1")), as the
        local backend does."""
        digits = tuple(str(i) for i in range(1, 10))

        def one(p: Prompt) -> Scored:
            try:
                top, n_prompt = self._top(p.text)
                # "10" is one token when the server lists it, or its /tokenize says so; else "1" then "0".
                ten_is_one_token = any(_norm(t) == "10" for t in top) or self._answer_ids("10", context) is not None \
                    and len(self._answer_ids("10", context)) == 1
                answers = digits + (("10",) if ten_is_one_token else ())
                logps, method = self._answer_logprobs(p.text, answers, context, top=top)
                m = max(logps.values())
                mass = {a: math.exp(logps[a] - m) for a in answers}
                if not ten_is_one_token:
                    after, how = self._answer_logprobs(p.text + "1", ("0",), context + "1", ratios_ok=False)
                    p0 = math.exp(after["0"])
                    method = method if how in ("top_logprobs", method) else f"{method}+{how}"
                    mass["10"], mass["1"] = mass["1"] * p0, mass["1"] * (1 - p0)
            except (JudgeError, KeyError, IndexError, TypeError) as exc:
                return Scored(None, error=str(exc))
            total = sum(mass.values())
            if total == 0:
                return Scored(None, error="every score token 1..10 has probability 0")
            return Scored([mass[str(i)] / total for i in range(1, 11)], prompt_tokens=n_prompt, method=method)

        return self._map(one, prompts)

    def generate(self, prompts: Sequence[Prompt], *, n: int = 1, temperature: float = 0.0, top_k: int = 40,
                 max_new_tokens: int = 512, seed: int | None = None, stop: Sequence[str] = (),
                 shared_prefix: str | None = None) -> list[list[Generated]]:
        def one(p: Prompt) -> list[Generated]:
            body = {"prompt": p.text, "max_tokens": max_new_tokens, "temperature": temperature, "n": n}
            if stop:
                body["stop"] = list(stop)[:4]  # the OpenAI API takes up to 4 stop sequences
            if temperature > 0 and self.send_top_k:
                body["top_k"] = top_k
            if seed is not None:
                body["seed"] = seed
            try:
                resp = self._post(body)
            except JudgeError as exc:
                return [Generated("", error=str(exc)) for _ in range(n)]
            usage = resp.get("usage") or {}
            done = [Generated(c.get("text", ""), completion_tokens=int(usage.get("completion_tokens") or 0) // max(1, n),
                              prompt_tokens=int(usage.get("prompt_tokens") or 0)) for c in resp.get("choices", [])]
            self.usage.generated += sum(g.completion_tokens for g in done)
            return (done + [Generated("", error="fewer choices than asked")] * n)[:n]

        return self._map(one, prompts)


def _pick(top: dict[str, float], answers: Sequence[str]) -> dict[str, float]:
    """The answers' log-probabilities among `top` (" 2" counts as "2": the best spelling wins)."""
    found: dict[str, float] = {}
    for token, logprob in top.items():
        key = _norm(token)
        if key in answers and (key not in found or logprob > found[key]):
            found[key] = float(logprob)
    return found
