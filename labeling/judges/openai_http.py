"""OpenAI-compatible HTTP backend (vLLM, Ollama, OpenAI): the legacy completions endpoint with
`logprobs`, read from `top_logprobs` of the first generated position.

Bounded concurrency (a thread pool), a timeout per request, retries with exponential backoff on
connection errors, 429 and 5xx; the API key comes from an environment variable. If the top
logprobs lack "1" or "2" the prompt fails with an explicit error: we never guess 0.5.
Prefix reuse is the server's business (vLLM's automatic prefix caching does it).
Token counts (for `max_prompt_tokens`) come from the server's `/tokenize` endpoint where it has one
(vLLM); elsewhere (OpenAI, Ollama) they are estimated at 4 characters a token.
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
                 max_retries: int = 4, backoff: float = 1.0, concurrency: int = 8, top_logprobs: int = 5,
                 extra_body: dict | None = None, send_top_k: bool = True, server_token_counts: bool = True):
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
        self.top_logprobs = top_logprobs
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

    def _score_one(self, prompt: Prompt, answers: Sequence[str]) -> Scored:
        try:
            resp = self._post({"prompt": prompt.text, "max_tokens": 1, "temperature": 0, "logprobs": self.top_logprobs})
            choice = resp["choices"][0]
            top = (choice.get("logprobs") or {}).get("top_logprobs") or []
            if not top or not isinstance(top[0], dict):
                return Scored(None, error="the server returned no top_logprobs (does it support logprobs?)")
            found: dict[str, float] = {}
            for token, logprob in top[0].items():
                key = _norm(token)
                if key in answers and (key not in found or logprob > found[key]):
                    found[key] = float(logprob)
            missing = [a for a in answers if a not in found]
            n_prompt = int((resp.get("usage") or {}).get("prompt_tokens") or 0)
            self.usage.computed += n_prompt
            if missing:
                return Scored(None, prompt_tokens=n_prompt, error=(
                    f"answer token(s) {missing} not among the top {len(top[0])} logprobs "
                    f"{sorted(top[0], key=top[0].get, reverse=True)}"))
            m = max(found[a] for a in answers)
            exps = [math.exp(found[a] - m) for a in answers]
            return Scored([e / sum(exps) for e in exps], prompt_tokens=n_prompt)
        except JudgeError as exc:
            return Scored(None, error=str(exc))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            return Scored(None, error=f"unexpected completions response: {exc!r}")

    def score(self, groups: Sequence[Sequence[Prompt]], answers: Sequence[str] = ("1", "2"),
              context: str = "Preferred Summary=", shared_prefix: str | None = None) -> list[list[Scored]]:
        flat = [p for g in groups for p in g]
        scored = iter(self._map(lambda p: self._score_one(p, tuple(answers)), flat))
        return [[next(scored) for _ in g] for g in groups]

    def _top(self, text: str) -> dict[str, float]:
        resp = self._post({"prompt": text, "max_tokens": 1, "temperature": 0, "logprobs": self.top_logprobs})
        return resp["choices"][0]["logprobs"]["top_logprobs"][0]

    def rate(self, prompts: Sequence[Prompt], context: str = "Score=") -> list[Scored]:
        """Normalized P(1..10) after each rating prompt. Where the server's tokenizer has no single
        "10" token, "10" is "1" then "0": a second request (the prompt + "1") reads P("0" | "1"),
        so P(10) = P("1") P("0" | "1") and P(1) = P("1") (1 - P("0" | "1")), as the local backend
        does."""
        answers = tuple(str(i) for i in range(1, 11))

        def one(p: Prompt) -> Scored:
            try:
                top = self._top(p.text)
                mass = {a: 0.0 for a in answers}
                for token, logprob in top.items():
                    if _norm(token) in mass:
                        mass[_norm(token)] += math.exp(logprob)
                if mass["1"] > 0 and not any(_norm(t) == "10" for t in top):
                    after_one = self._top(p.text + "1")
                    p0 = sum(math.exp(lp) for t, lp in after_one.items() if _norm(t) == "0")
                    mass["10"], mass["1"] = mass["1"] * p0, mass["1"] * (1 - p0)
            except (JudgeError, KeyError, IndexError, TypeError) as exc:
                return Scored(None, error=str(exc))
            total = sum(mass.values())
            if total == 0:
                return Scored(None, error="no score token 1..10 among the top logprobs")
            return Scored([mass[a] / total for a in answers])

        return self._map(one, prompts)

    def generate(self, prompts: Sequence[Prompt], *, n: int = 1, temperature: float = 0.0, top_k: int = 40,
                 max_new_tokens: int = 512, seed: int | None = None) -> list[list[Generated]]:
        def one(p: Prompt) -> list[Generated]:
            body = {"prompt": p.text, "max_tokens": max_new_tokens, "temperature": temperature, "n": n}
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
