"""The OpenAI-compatible backend against a real HTTP server on loopback that speaks the
completions protocol (a tiny http.server thread returning logprobs/top_logprobs)."""
from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from labeling.judges.base import JudgeError
from labeling.judges.labeler import LabelerSpec, PairInput, label_pairs, rate_summaries
from labeling.judges.openai_http import OpenAIHTTPBackend


class FakeCompletions:
    """Answers like vLLM: p("1") depends on which summary is shown first (the longer one wins)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.fail_first = 0  # answer this many requests with HTTP 503 first
        self.drop_token = None  # leave this token out of top_logprobs
        self.tokenize = False  # serve vLLM's /tokenize (a token per whitespace-separated word)
        self.tokenize_requests: list[dict] = []

    def reply(self, body: dict) -> dict:
        prompt = body["prompt"]
        if body.get("max_tokens", 1) > 1:  # a rationale
            texts = [f" Rationale number {i}." for i in range(body.get("n", 1))]
            return {"choices": [{"index": i, "text": t} for i, t in enumerate(texts)],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 4 * len(texts)}}
        if prompt.endswith("Score="):  # direct rating: "10" is not one token on this server
            return self._top({"1": 0.4, "5": 0.4, " 7": 0.2})
        if prompt.endswith("Score=1"):
            return self._top({"0": 0.5, "\n": 0.5})
        s1 = prompt.rsplit("Summary 1 - ", 1)[1].split("\n\nSummary 2 - ")[0]
        s2 = prompt.rsplit("Summary 2 - ", 1)[1].split("\n\n")[0]
        p1 = 0.8 if len(s1) > len(s2) else 0.3
        top = {"1": math.log(p1 * 0.9), " 2": math.log((1 - p1) * 0.9), "The": math.log(0.05)}
        if self.drop_token:
            top = {k: v for k, v in top.items() if k.strip() != self.drop_token}
        return {"choices": [{"index": 0, "text": "1", "logprobs": {"tokens": ["1"], "token_logprobs": [top.get("1", -9.0)],
                                                                   "top_logprobs": [top]}}],
                "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": 1}}


    def _top(self, probs: dict) -> dict:
        top = {k: math.log(v) for k, v in probs.items() if k.strip() != self.drop_token}
        return {"choices": [{"index": 0, "text": "", "logprobs": {"top_logprobs": [top]}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 1}}


@pytest.fixture
def server():
    fake = FakeCompletions()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/tokenize":
                with lock:
                    fake.tokenize_requests.append(body)
            if self.path == "/tokenize" and fake.tokenize:
                words = body["prompt"].split()
                return self._json({"count": len(words), "max_model_len": 4096, "tokens": list(range(len(words)))})
            if self.path != "/v1/completions":
                self.send_response(404)
                self.end_headers()
                return
            with lock:
                fake.requests.append(body)
                fake.headers.append(dict(self.headers))
                fail = fake.fail_first > 0
                fake.fail_first -= fail
            if fail:
                self.send_response(503)
                self.end_headers()
                self.wfile.write(b"busy")
                return
            self._json(fake.reply(body))

        def _json(self, reply: dict):
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield fake
    httpd.shutdown()
    httpd.server_close()


PAIRS = [PairInput(1, "A post.", "A much longer first summary.", "Short."),
         PairInput(2, "Another post.", "Tiny.", "A much longer second summary.")]


def test_soft_labels_both_orders_over_http(server, monkeypatch):
    monkeypatch.setenv("TEST_LABELER_KEY", "sk-test")
    backend = OpenAIHTTPBackend(server.url, "served-model", api_key_env="TEST_LABELER_KEY", concurrency=3)
    res = label_pairs(backend, LabelerSpec(), PAIRS)
    # 0.8 when the longer summary is first; normalized over "1"/"2" only (" 2" counts as "2").
    assert res[0].p_a_ab == pytest.approx(0.8) and res[0].p_a_ba == pytest.approx(0.7)
    assert res[0].p_a == pytest.approx(0.75) and res[0].consistent is True
    assert res[1].p_a_ab == pytest.approx(0.3) and res[1].p_a_ba == pytest.approx(0.2)
    assert len(server.requests) == 4
    req = server.requests[0]
    assert req["model"] == "served-model" and req["max_tokens"] == 1 and req["logprobs"] >= 2
    assert req["prompt"].endswith("Preferred Summary=")
    assert all(h.get("Authorization") == "Bearer sk-test" for h in server.headers)


def test_missing_answer_token_is_a_recorded_failure_not_half(server):
    server.drop_token = "2"
    res = label_pairs(OpenAIHTTPBackend(server.url, "m"), LabelerSpec(), PAIRS[:1])[0]
    assert res.p_a is None and res.p_a_ab is None
    assert "['2'] not among the top" in res.error


def test_retries_with_backoff_on_503_then_succeeds(server):
    server.fail_first = 2
    backend = OpenAIHTTPBackend(server.url, "m", backoff=0.01, max_retries=3, concurrency=1)
    res = label_pairs(backend, LabelerSpec(both_orders=False), PAIRS[:1])[0]
    assert not res.error and res.p_a == pytest.approx(0.8)
    assert len(server.requests) == 3


def test_gives_up_after_retries_with_a_clear_error(server):
    server.fail_first = 100
    backend = OpenAIHTTPBackend(server.url, "m", backoff=0.01, max_retries=1)
    res = label_pairs(backend, LabelerSpec(both_orders=False), PAIRS[:1])[0]
    assert res.p_a is None and "HTTP 503" in res.error and "after 2 attempts" in res.error


def test_unreachable_server_is_an_error(server):
    backend = OpenAIHTTPBackend("http://127.0.0.1:9/v1", "m", backoff=0.01, max_retries=0, timeout=2)
    res = label_pairs(backend, LabelerSpec(both_orders=False), PAIRS[:1])[0]
    assert res.p_a is None and "cannot reach" in res.error


def test_chain_of_thought_and_self_consistency_over_http(server):
    spec = LabelerSpec(chain_of_thought=True, self_consistency_n=2, temperature=0.5)
    res = label_pairs(OpenAIHTTPBackend(server.url, "m"), spec, PAIRS[:1])[0]
    assert not res.error
    assert res.rationales[0] == {"order": "ab", "samples": ["Rationale number 0.", "Rationale number 1."]}
    gen = [r for r in server.requests if r["max_tokens"] > 1]
    assert gen and all(r["n"] == 2 and r["temperature"] == 0.5 and r["top_k"] == 40 for r in gen)
    scoring = [r["prompt"] for r in server.requests if r["max_tokens"] == 1]
    assert any(p.endswith("Rationale: Rationale number 1.\n\nPreferred Summary=") for p in scoring)
    assert res.p_a_ab == pytest.approx(0.8)


def test_prompt_budget_uses_the_servers_token_count_where_it_has_one(server):
    """vLLM's /tokenize gives exact counts: a long post is cut (never the summaries) until each
    order's prompt fits max_prompt_tokens by the server's own count."""
    server.tokenize = True
    post = " ".join(f"word{i}" for i in range(400))
    pair = PairInput(3, post, "A much longer first summary.", "Short.")
    backend = OpenAIHTTPBackend(server.url, "m")
    res = label_pairs(backend, LabelerSpec(max_prompt_tokens=200), [pair])[0]
    assert backend.server_token_counts is True and server.tokenize_requests
    assert not res.error and res.truncated
    sent = [r["prompt"] for r in server.requests]
    assert len(sent) == 2
    assert all(150 < len(p.split()) <= 200 for p in sent)  # cut to fit, not far below the budget
    assert all("A much longer first summary." in p and "Short." in p for p in sent)


def test_without_a_tokenize_endpoint_counts_are_estimated(server):
    backend = OpenAIHTTPBackend(server.url, "m")
    res = label_pairs(backend, LabelerSpec(max_prompt_tokens=2048), PAIRS[:1])[0]
    assert not res.error and backend.server_token_counts is False
    assert len(server.requests) == 2
    assert len(server.tokenize_requests) == 1  # asked once, got 404, estimated from then on


def test_direct_rating_reads_a_split_10_with_a_second_request(server):
    """P("1") = 0.4 splits into P(1) = 0.2 and P(10) = 0.2 by P("0" | "1") = 0.5; the reward is
    the expected score 0.2*1 + 0.4*5 + 0.2*7 + 0.2*10 = 5.6 rescaled to [-1, 1]."""
    reward = rate_summaries(OpenAIHTTPBackend(server.url, "m"), [("A post.", "A summary.")])[0]
    assert reward == pytest.approx((5.6 - 1) / 4.5 - 1)
    assert [r["prompt"][-7:] for r in server.requests] == ["\nScore=", "Score=1"]


def test_a_failed_direct_rating_is_an_error_not_a_made_up_reward(server):
    server.drop_token = "1"
    server.requests.clear()
    server.fail_first = 100
    backend = OpenAIHTTPBackend(server.url, "m", backoff=0.01, max_retries=0)
    with pytest.raises(JudgeError, match="direct rating of item 0 failed: HTTP 503"):
        rate_summaries(backend, [("A post.", "A summary.")])
