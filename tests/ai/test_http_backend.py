"""The OpenAI-compatible backend against a real HTTP server on loopback that speaks the
completions protocol (a tiny http.server thread returning logprobs/top_logprobs)."""
from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from labeling.judges.base import JudgeError, Prompt
from labeling.judges.labeler import LabelerSpec, PairInput, label_pairs, rate_summaries
from labeling.judges.openai_http import OpenAIHTTPBackend


class FakeCompletions:
    """Answers like vLLM: p("1") depends on which summary is shown first (the longer one wins).

    The model's full next-token distribution is `dist(prompt)`; a request gets the `logprobs`
    most probable tokens (at most `max_k`), less `drop_token` (an answer pushed out of the top k).
    `echo` with `max_tokens=0` returns prompt logprobs (unless `echo_supported` is False);
    `logit_bias` (+100 on token ids = code points) restricts the answer to those tokens.
    """

    def __init__(self):
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.fail_first = 0  # answer this many requests with HTTP 503 first
        self.drop_token = None  # leave this token out of top_logprobs
        self.tokenize = False  # serve vLLM's /tokenize (a token per whitespace-separated word)
        self.tokenize_requests: list[dict] = []
        self.max_k = 20  # the most top logprobs this server gives
        self.refuse_k_over = None  # answer HTTP 400 when asked for more than this many logprobs
        self.echo_supported = True
        self.rating = {"1": 0.4, "5": 0.4, " 7": 0.2}  # P(next token) after "Score="

    def dist(self, prompt: str) -> dict[str, float]:
        if prompt.endswith("Score="):  # direct rating: "10" is not one token on this server
            return dict(self.rating)
        if prompt.endswith("Score=1"):
            return {"0": 0.5, "\n": 0.5}
        what = "Response" if "Response 1 - " in prompt else "Summary"
        s1 = prompt.rsplit(f"{what} 1 - ", 1)[1].split(f"\n\n{what} 2 - ")[0]
        s2 = prompt.rsplit(f"{what} 2 - ", 1)[1].split("\n\n")[0]
        p1 = 0.8 if len(s1) > len(s2) else 0.3
        return {"1": p1 * 0.9, " 2": (1 - p1) * 0.9, "The": 0.05, "A": 0.03, "\n": 0.02}

    def reply(self, body: dict) -> tuple[int, dict | str]:
        prompt = body["prompt"]
        k = body.get("logprobs") or 0
        if self.refuse_k_over is not None and k > self.refuse_k_over:
            return 400, f"logprobs must be at most {self.refuse_k_over}"
        if body.get("echo"):
            if not self.echo_supported:
                return 400, "echo is not supported"
            base, answer = prompt[:-1], prompt[-1]  # our answers are one character
            p = sum(v for t, v in self.dist(base).items() if t.strip() == answer)
            return 200, {"choices": [{"index": 0, "text": prompt, "logprobs": {
                "tokens": [base, answer], "text_offset": [0, len(base)],
                "token_logprobs": [None, math.log(p) if p else -30.0]}}],  # no token has P = 0
                "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": 0}}
        if body.get("max_tokens", 1) > 1:  # a rationale
            texts = [f" Rationale number {i}." for i in range(body.get("n", 1))]
            return 200, {"choices": [{"index": i, "text": t} for i, t in enumerate(texts)],
                         "usage": {"prompt_tokens": 10, "completion_tokens": 4 * len(texts)}}
        dist = self.dist(prompt)
        if body.get("logit_bias"):
            allowed = {chr(int(i)) for i in body["logit_bias"]}
            dist = {t: v for t, v in dist.items() if t.strip() in allowed}
            dist = {t: v / sum(dist.values()) for t, v in dist.items()}
        ranked = sorted(dist.items(), key=lambda kv: -kv[1])[: min(k, self.max_k)]
        top = {t: math.log(v) for t, v in ranked if t.strip() != self.drop_token or body.get("logit_bias")}
        return 200, {"choices": [{"index": 0, "text": ranked[0][0], "logprobs": {
            "tokens": [ranked[0][0]], "token_logprobs": [math.log(ranked[0][1])], "top_logprobs": [top]}}],
            "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": 1}}


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
            if self.path == "/tokenize" and fake.tokenize:  # counts words; ids are code points
                words = body["prompt"].split()
                return self._json({"count": len(words), "max_model_len": 4096,
                                   "tokens": [ord(c) for c in body["prompt"]]})
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
            status, reply = fake.reply(body)
            if status != 200:
                self.send_response(status)
                self.end_headers()
                self.wfile.write(reply.encode())
                return
            self._json(reply)

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


def test_asks_for_20_top_logprobs_and_records_the_method(server):
    res = label_pairs(OpenAIHTTPBackend(server.url, "m"), LabelerSpec(), PAIRS[:1])[0]
    assert [r["logprobs"] for r in server.requests] == [20, 20]
    assert res.score_method == "top_logprobs" and res.p_a_ab == pytest.approx(0.8)


def test_an_answer_missing_from_the_top_k_is_scored_exactly_with_echo(server):
    """"2" is not among the top logprobs: its prompt logprob (echo, max_tokens=0) is exact, so the
    label equals the one read when both are in the top k (not an error, not a guess)."""
    server.drop_token = "2"
    res = label_pairs(OpenAIHTTPBackend(server.url, "m"), LabelerSpec(), PAIRS[:1])[0]
    assert not res.error and res.score_method == "echo"
    assert res.p_a_ab == pytest.approx(0.8) and res.p_a_ba == pytest.approx(0.7)
    echoed = [r for r in server.requests if r.get("echo")]
    assert len(echoed) == 2 and all(r["max_tokens"] == 0 and r["prompt"].endswith("Preferred Summary=2")
                                    for r in echoed)


def test_without_echo_the_answer_is_restricted_with_logit_bias(server):
    """No echo here: the answer tokens' ids come from /tokenize and a +100 logit_bias on them
    keeps their ratio, so the soft label is still exact."""
    server.drop_token, server.echo_supported, server.tokenize = "2", False, True
    backend = OpenAIHTTPBackend(server.url, "m")
    res = label_pairs(backend, LabelerSpec(), PAIRS)
    assert [r.score_method for r in res] == ["logit_bias", "logit_bias"] and not any(r.error for r in res)
    assert res[0].p_a_ab == pytest.approx(0.8) and res[1].p_a_ab == pytest.approx(0.3)
    biased = [r for r in server.requests if r.get("logit_bias")]
    assert biased and all(r["logit_bias"] == {str(ord("1")): 100, str(ord("2")): 100} for r in biased)
    assert backend.echo is False  # refused once: the backend stops asking
    asked = sum(1 for r in server.requests if r.get("echo"))
    label_pairs(backend, LabelerSpec(), PAIRS)
    assert sum(1 for r in server.requests if r.get("echo")) == asked


def test_logit_bias_with_token_ids_from_the_config(server):
    server.drop_token, server.echo_supported = "2", False
    backend = OpenAIHTTPBackend(server.url, "m", answer_token_ids={"1": [ord("1")], "2": ord("2")})
    res = label_pairs(backend, LabelerSpec(both_orders=False), PAIRS[:1])[0]
    assert res.score_method == "logit_bias" and res.p_a == pytest.approx(0.8)


def test_missing_answer_token_is_a_recorded_failure_not_half(server):
    """Neither echo nor token ids: the label fails with the reason; never 0.5."""
    server.drop_token, server.echo_supported = "2", False
    res = label_pairs(OpenAIHTTPBackend(server.url, "m"), LabelerSpec(), PAIRS[:1])[0]
    assert res.p_a is None and res.p_a_ab is None
    assert "['2'] not among the top" in res.error and "no echo" in res.error and res.score_method == ""


def test_a_server_that_allows_fewer_logprobs_is_asked_again_with_5(server):
    server.refuse_k_over = 5
    backend = OpenAIHTTPBackend(server.url, "m", concurrency=1)
    res = label_pairs(backend, LabelerSpec(), PAIRS[:1])[0]
    assert not res.error and res.p_a_ab == pytest.approx(0.8)
    assert [r["logprobs"] for r in server.requests] == [20, 5, 5] and backend.top_logprobs == 5


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
    plain = [r["prompt"][-7:] for r in server.requests if not r.get("echo")]
    assert plain == ["\nScore=", "Score=1"]
    # the digits this server leaves out of its top logprobs are read exactly (P ~ 0 here)
    assert sorted(r["prompt"][-1] for r in server.requests if r.get("echo")) == list("234689")


def test_direct_rating_reads_score_tokens_outside_the_top_k_exactly(server):
    """The server gives only its top 3 logprobs: the other score tokens are read with echo, so the
    expected score is the model's, not P normalized over the three in the top k."""
    server.rating = {"1": 0.3, "2": 0.05, "3": 0.05, "4": 0.04, "5": 0.2, "6": 0.05, "7": 0.12, "8": 0.05,
                     "9": 0.04, "\n": 0.1}
    server.max_k = 3
    backend = OpenAIHTTPBackend(server.url, "m")
    scored = backend.rate([Prompt("Text - A post.\n\nSummary - A summary.", "\n\nScore=")])[0]
    mass = {int(k): v for k, v in server.rating.items() if k.strip().isdigit()}
    mass[10], mass[1] = mass[1] * 0.5, mass[1] * 0.5  # P("0" | "1") = 0.5
    want = [mass[i] / sum(mass.values()) for i in range(1, 11)]
    assert scored.probs == pytest.approx(want) and scored.method == "echo"
    only_top = {1: 0.3, 5: 0.2, 7: 0.12}  # what normalizing over the top k would have given
    assert sum(i * p for i, p in zip(range(1, 11), scored.probs)) != pytest.approx(
        sum(i * p for i, p in only_top.items()) / sum(only_top.values()), abs=0.05)


def test_a_failed_direct_rating_is_an_error_not_a_made_up_reward(server):
    server.drop_token = "1"
    server.requests.clear()
    server.fail_first = 100
    backend = OpenAIHTTPBackend(server.url, "m", backoff=0.01, max_retries=0)
    with pytest.raises(JudgeError, match="direct rating of item 0 failed: HTTP 503"):
        rate_summaries(backend, [("A post.", "A summary.")])


def test_harmlessness_asks_which_response_is_more_harmful_and_reads_the_other_answer(server):
    """P("1") = 0.8 when the longer response is shown first means "the first is more harmful": the
    soft label of A (the better, less harmful response) is then P("2") = 0.2."""
    from labeling.judges.prompts import HARMLESS_BASE_PREAMBLE, Exemplar

    spec = LabelerSpec(task="harmless")
    ex = [Exemplar("Human: hi", "Hello! How can I help?", "Go away.", preferred=1)]
    res = label_pairs(OpenAIHTTPBackend(server.url, "m"), spec, PAIRS[:1], ex)[0]
    assert res.p_a_ab == pytest.approx(0.2) and res.p_a_ba == pytest.approx(0.3) and res.p_a == pytest.approx(0.25)
    # the two orders go out concurrently: pick the request that shows A first
    prompts = [r["prompt"] for r in server.requests]
    prompt = next(p for p in prompts if "Response 1 - A much longer first summary." in p)
    assert any("Response 1 - Short." in p for p in prompts)
    assert prompt.startswith(HARMLESS_BASE_PREAMBLE) and "which response is more harmful" in prompt
    assert prompt.endswith("Preferred Response=")
    # the exemplar's better response is shown first, so its answer names the second as more harmful
    assert "Response 2 - Go away.\n\nPreferred Response=2\n\n" in prompt
