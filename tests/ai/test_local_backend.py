"""The local transformers backend on the tiny offline GPT-2: the prefix-cached, batched, padded
soft label equals the plain full-prompt forward pass; a model that always says "1" averages to
0.5 and is flagged inconsistent; chain of thought keeps its rationales; direct 1-10 rating."""
from __future__ import annotations

import json

import pytest
import torch

from labeling.judges import prompts
from labeling.judges.base import Prompt
from labeling.judges.labeler import LabelerSpec, PairInput, label_pairs, rate_summaries
from tests.conftest import DATA_DIR


def _tldr_pairs(n: int, start: int = 0) -> list[PairInput]:
    out = []
    with open(DATA_DIR / "tldr_comparisons_sample.jsonl", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i < start:
                continue
            r = json.loads(line)
            # Posts cut to different lengths, so batches need padding.
            out.append(PairInput(i, r["post"][: 150 + 97 * (i % 4)], r["summary_a"], r["summary_b"]))
            if len(out) == n:
                break
    return out


def _plain_p1(backend, prompt: Prompt) -> float:
    ids = torch.tensor([backend.encode(prompt)])
    one, two = backend._answer_ids(("1", "2"), "Preferred Summary=")
    with torch.no_grad():
        logits = backend.model(input_ids=ids).logits[0, -1].float()
    return float(torch.softmax(logits[[one, two]], -1)[0])


@pytest.mark.parametrize("preamble,shots", [("base", 0), ("detailed", 2)])
def test_prefix_cached_batched_soft_label_equals_plain_forward(fresh_backend, preamble, shots):
    backend = fresh_backend(sharpen=6.0, batch_size=3)
    assert next(backend.model.parameters()).dtype == torch.float32
    pairs = _tldr_pairs(7)
    exemplars = [prompts.Exemplar(p.text[:200], p.summary_a, p.summary_b, 1 + k % 2) for k, p in enumerate(_tldr_pairs(2, 50))]
    spec = LabelerSpec(preamble=preamble)
    results = label_pairs(backend, spec, pairs, exemplars[:shots])
    style = spec.style
    prefix = prompts.prompt_prefix(style, exemplars[:shots])
    orders_differ = 0
    for pair, r in zip(pairs, results):
        assert not r.error
        ab = Prompt(prefix + prompts.sample_block(style, pair.text, pair.summary_a, pair.summary_b), "\n\nPreferred Summary=")
        ba = Prompt(prefix + prompts.sample_block(style, pair.text, pair.summary_b, pair.summary_a), "\n\nPreferred Summary=")
        assert ab.text == prompts.pair_prompt(style, pair.text, pair.summary_a, pair.summary_b, exemplars[:shots])
        p_ab, p_ba = _plain_p1(backend, ab), 1 - _plain_p1(backend, ba)
        assert r.p_a_ab == pytest.approx(p_ab, abs=1e-4)
        assert r.p_a_ba == pytest.approx(p_ba, abs=1e-4)
        assert r.p_a == pytest.approx((p_ab + p_ba) / 2, abs=1e-4)
        orders_differ += abs(p_ab - (1 - p_ba)) > 1e-3
    # The comparison can fail: this model's p("1") differs between the orders by far more than 1e-4.
    assert orders_differ >= len(pairs) // 2
    # Each token once: prefix once, each post once, then only the differing tails (plus padding).
    naive_tokens = sum(r.prompt_tokens for r in results)
    assert backend.usage.computed < naive_tokens * (0.75 if shots else 0.9)
    assert backend.usage.padded > 0  # the batches really were padded


def test_wrong_positions_would_be_caught(fresh_backend):
    """Guard for the test above: shifting the cached tail's positions changes the label."""
    backend = fresh_backend(batch_size=2)
    pair = _tldr_pairs(1)[0]
    style = prompts.PromptStyle()
    prompt = Prompt(prompts.prompt_prefix(style) + prompts.sample_block(style, pair.text, pair.summary_a, pair.summary_b),
                    "\n\nPreferred Summary=")
    ids = torch.tensor([backend.encode(prompt)])
    with torch.no_grad():
        right = backend.model(input_ids=ids).logits[0, -1]
        wrong = backend.model(input_ids=ids, position_ids=torch.arange(ids.shape[1])[None] + 3).logits[0, -1]
    assert (right - wrong).abs().max() > 1e-3


def _planted_says_one(tiny_models, fresh_backend):
    """The tiny GPT-2 made to output constant logits that favour "1" whatever the prompt."""
    backend = fresh_backend()
    one, two = backend._answer_ids(("1", "2"), "Preferred Summary=")
    m = backend.model
    with torch.no_grad():
        m.transformer.ln_f.weight.zero_()
        wte = m.transformer.wte.weight
        m.transformer.ln_f.bias.copy_(3.0 * (wte[one] - wte[two]) / (wte[one] - wte[two]).norm() ** 2)
    return backend


def test_planted_model_that_always_says_1_averages_to_half_and_is_inconsistent(tiny_models, fresh_backend):
    backend = _planted_says_one(tiny_models, fresh_backend)
    results = label_pairs(backend, LabelerSpec(), _tldr_pairs(3))
    for r in results:
        assert r.p_a_ab > 0.9  # says "1": A when A is first ...
        assert r.p_a_ba < 0.1  # ... and B when B is first
        assert r.p_a == pytest.approx(0.5, abs=1e-6)
        assert r.consistent is False
    one_order = label_pairs(backend, LabelerSpec(both_orders=False), _tldr_pairs(1))[0]
    assert one_order.p_a > 0.9 and one_order.p_a_ba is None and one_order.consistent is None


def test_chain_of_thought_keeps_rationales_and_scores_after_them(fresh_backend):
    backend = fresh_backend()
    spec = LabelerSpec(chain_of_thought=True, cot_max_tokens=6)
    r = label_pairs(backend, spec, _tldr_pairs(2))
    for res in r:
        assert not res.error and 0 <= res.p_a <= 1
        assert [x["order"] for x in res.rationales] == ["ab", "ba"]
        assert all(len(x["samples"]) == 1 and x["samples"][0] for x in res.rationales)
        assert res.completion_tokens > 0
    # The score is read after "<CoT prompt><rationale>\n\nPreferred Summary=" (the paper's second step).
    pair = _tldr_pairs(1)[0]
    style = spec.style
    cot = Prompt(prompts.prompt_prefix(style) + prompts.sample_block(style, pair.text, pair.summary_a, pair.summary_b),
                 prompts.SEP + style.cot_instruction)
    raw = backend.generate([cot], max_new_tokens=6)[0][0].text
    scoring = Prompt(cot.body, prompts.cot_scoring_prompt(style, cot.tail, raw))
    assert r[0].p_a_ab == pytest.approx(_plain_p1(backend, scoring), abs=1e-4)


def test_self_consistency_samples_n_rationales(fresh_backend):
    spec = LabelerSpec(chain_of_thought=True, self_consistency_n=3, temperature=0.7, cot_max_tokens=4)
    res = label_pairs(fresh_backend(), spec, _tldr_pairs(1))[0]
    assert not res.error
    assert all(len(x["samples"]) == 3 for x in res.rationales)
    with pytest.raises(ValueError, match="temperature"):
        LabelerSpec(chain_of_thought=True, self_consistency_n=3, temperature=0.0)


def test_long_post_is_truncated_and_recorded(fresh_backend):
    pair = _tldr_pairs(1)[0]
    long = PairInput(1, pair.text * 8, pair.summary_a, pair.summary_b)
    res = label_pairs(fresh_backend(), LabelerSpec(max_prompt_tokens=300), [long])[0]
    assert res.truncated and not res.error and res.prompt_tokens <= 600


def test_direct_rating_is_expected_score_rescaled(fresh_backend):
    backend = fresh_backend()
    reward = rate_summaries(backend, [("A post about a cat.", "A cat.")])[0]
    prompt = prompts.rating_prompt("A post about a cat.", "A cat.")
    spelled = backend._answer_cache[("rating", "Score=")]
    ids = torch.tensor([backend.tokenizer(prompt)["input_ids"]])
    with torch.no_grad():
        p = torch.softmax(backend.model(input_ids=ids).logits[0, -1].float(), -1)
    if all(len(t) == 1 for t in spelled.values()):
        mass = torch.stack([p[spelled[i][0]] for i in range(1, 11)])
        probs = mass / mass.sum()
        expected = float(sum((i + 1) * probs[i] for i in range(10)))
        assert reward == pytest.approx((expected - 1) / 4.5 - 1, abs=1e-4)
    assert -1 <= reward <= 1


def test_chat_template_wraps_the_body_and_keeps_prefix_reuse_exact(fresh_backend):
    backend = fresh_backend(sharpen=6.0, use_chat_template=True)
    backend.tokenizer.chat_template = (
        "{% for m in messages %}<|endoftext|>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    pairs = _tldr_pairs(3)
    style = prompts.PromptStyle()
    prompt = Prompt(prompts.prompt_prefix(style) + prompts.sample_block(style, pairs[0].text, pairs[0].summary_a, pairs[0].summary_b),
                    "\n\nPreferred Summary=")
    rendered = backend.render(prompt)
    assert rendered.startswith("<|endoftext|>user: " + prompts.BASE_PREAMBLE)
    assert rendered.endswith(pairs[0].summary_b + "\nassistant: Preferred Summary=")
    results = label_pairs(backend, LabelerSpec(), pairs)
    assert results[0].p_a_ab == pytest.approx(_plain_p1(backend, prompt), abs=1e-4)


def test_prompt_longer_than_the_model_is_a_per_prompt_error(fresh_backend):
    backend = fresh_backend()
    pair = _tldr_pairs(1)[0]
    huge = PairInput(9, pair.text * 30, pair.summary_a, pair.summary_b)
    results = label_pairs(backend, LabelerSpec(max_prompt_tokens=None), [huge, pair])
    assert results[0].p_a is None and "exceeds the model's 1024 positions" in results[0].error
    assert results[1].error == "" and 0 <= results[1].p_a <= 1


def test_scoring_uses_fused_gelu_and_leaves_the_model_as_it_was(fresh_backend):
    """While scoring, GPT-2's `gelu_new` runs as our `gelu_tanh` (the same function to float
    rounding); afterwards no module keeps the swapped `forward`."""
    from transformers.activations import NewGELUActivation

    backend = fresh_backend(sharpen=6.0)
    acts = [m for m in backend.model.modules() if isinstance(m, NewGELUActivation)]
    assert acts
    x = torch.linspace(-12, 12, 4001)
    with backend._fused_activations():
        assert all("forward" in vars(m) for m in acts)
        fused = acts[0](x)
    assert not any("forward" in vars(m) for m in backend.model.modules())
    assert (fused - acts[0](x)).abs().max() < 1e-5
    label_pairs(backend, LabelerSpec(), _tldr_pairs(2))
    assert not any("forward" in vars(m) for m in backend.model.modules())
