"""Exact prompt text of every variant against the paper's format (PAPER.md), answer-token lookup,
truncation of long posts, and the direct-RLAIF reward scale."""
from __future__ import annotations

import pytest

from labeling.judges import prompts
from labeling.judges.labeler import choose_exemplars, rating_to_reward
from labeling.judges.tokens import AnswerTokenError, answer_token_id, answer_token_ids, rating_token_ids

BASE = ("You are an expert summary rater. Given a piece of text and two of its possible summaries, "
        "output 1 or 2 to indicate which summary is better.")


def test_base_preamble_is_the_papers_word_for_word():
    assert prompts.BASE_PREAMBLE == BASE


def test_base_0shot_prompt_exact():
    text = prompts.pair_prompt(prompts.PromptStyle("base"), "My cat sat.", "A cat sat.", "Cats sit.")
    assert text == (
        f"{BASE}\n\n"
        "Text - My cat sat.\n\n"
        "Summary 1 - A cat sat.\n\n"
        "Summary 2 - Cats sit.\n\n"
        "Preferred Summary="
    )


def test_detailed_preamble_defines_the_four_criteria_in_our_words():
    d = prompts.DETAILED_PREAMBLE
    for criterion in ("Coherence:", "Accuracy:", "Coverage:", "Overall quality:"):
        assert criterion in d
    assert len(d) > 3 * len(BASE)


def test_detailed_2shot_prompt_exact():
    ex = [prompts.Exemplar("Post one.", "S one.", "S two.", 2), prompts.Exemplar("Post two.", "T one.", "T two.", 1)]
    text = prompts.pair_prompt(prompts.PromptStyle("detailed"), "The post.", "First.", "Second.", ex)
    assert text == (
        f"{prompts.DETAILED_PREAMBLE}\n\n"
        "»»»» Example »»»»\n\n"
        "Text - Post one.\n\nSummary 1 - S one.\n\nSummary 2 - S two.\n\nPreferred Summary=2\n\n"
        "»»»» Example »»»»\n\n"
        "Text - Post two.\n\nSummary 1 - T one.\n\nSummary 2 - T two.\n\nPreferred Summary=1\n\n"
        "»»»» Follow the instructions and the example(s) above »»»»\n\n"
        "Text - The post.\n\nSummary 1 - First.\n\nSummary 2 - Second.\n\n"
        "Preferred Summary="
    )


def test_chain_of_thought_prompt_and_scoring_prompt_exact():
    style = prompts.PromptStyle("base", chain_of_thought=True)
    cot = prompts.pair_prompt(style, "T.", "A.", "B.")
    assert cot == (
        f"{BASE}\n\nText - T.\n\nSummary 1 - A.\n\nSummary 2 - B.\n\n"
        "Consider the coherence, accuracy, coverage, and overall quality of each summary and explain "
        "which one is better.\n\nRationale:"
    )
    assert prompts.cot_scoring_prompt(style, cot, " Summary 1 is accurate.\n") == cot + " Summary 1 is accurate.\n\nPreferred Summary="


def test_dialogue_prompt_uses_preferred_response():
    text = prompts.pair_prompt(prompts.PromptStyle("base", task="dialogue"), "Human: hi", "Hello!", "Go away.")
    assert text.endswith("Context - Human: hi\n\nResponse 1 - Hello!\n\nResponse 2 - Go away.\n\nPreferred Response=")


def test_rating_prompt_exact():
    assert prompts.rating_prompt("T.", "S.") == f"{prompts.RATING_PREAMBLE}\n\nText - T.\n\nSummary - S.\n\nScore="


def test_bad_style_values_are_refused():
    with pytest.raises(ValueError, match="preamble"):
        prompts.PromptStyle("fancy")
    with pytest.raises(ValueError, match="preferred"):
        prompts.Exemplar("t", "a", "b", 0)


def test_fit_text_truncates_only_the_post_and_says_so():
    def build(t):
        return [prompts.pair_prompt(prompts.PromptStyle(), t, "short A", "short B")]

    count = len  # one "token" per character
    post = "word " * 200
    kept, truncated = prompts.fit_text(build, post, count, 400)
    assert truncated and kept.endswith(" …") and post.startswith(kept[:-2])
    assert all(len(p) <= 400 for p in build(kept)) and "short A" in build(kept)[0] and "short B" in build(kept)[0]
    assert prompts.fit_text(build, "tiny post", count, 400) == ("tiny post", False)
    with pytest.raises(ValueError, match="does not fit"):
        prompts.fit_text(build, post, count, 50)


def test_choose_exemplars_fixed_and_random():
    pool = [prompts.Exemplar(f"t{i}", "a", "b", 1) for i in range(10)]
    assert choose_exemplars(pool, 2) == pool[:2]
    r1, r2 = choose_exemplars(pool, 3, "random", seed=7), choose_exemplars(pool, 3, "random", seed=7)
    assert r1 == r2 and len(set(r1)) == 3
    with pytest.raises(ValueError, match="only 10"):
        choose_exemplars(pool, 11)


def test_rating_reward_scale():
    one_hot = lambda i: [1.0 if j == i else 0.0 for j in range(1, 11)]  # noqa: E731
    assert rating_to_reward(one_hot(1)) == pytest.approx(-1.0)
    assert rating_to_reward(one_hot(10)) == pytest.approx(1.0)
    assert rating_to_reward([0.1] * 10) == pytest.approx(0.0)


class _SpaceTokenizer:
    """A tokenizer that splits on spaces and marks a leading space SentencePiece-style (▁)."""

    def __init__(self, vocab):
        self.vocab = {w: i for i, w in enumerate(vocab)}

    def get_vocab(self):
        return dict(self.vocab)

    def __call__(self, text, add_special_tokens=False):
        words = text.split(" ")
        pieces = [words[0]] + ["▁" + w for w in words[1:]]
        out = []
        for p in pieces:
            if p in self.vocab:
                out.append(self.vocab[p])
            else:  # "▁Summary=12" -> "▁Summary=", then the tail as known pieces or characters
                head, eq, tail = p.partition("=")
                if eq:
                    out.append(self.vocab[head + "="])
                else:
                    tail = p
                if tail in self.vocab:
                    out.append(self.vocab[tail])
                elif tail:
                    out += [self.vocab[c] for c in tail]
        return {"input_ids": out}


def test_answer_ids_from_a_real_bpe_tokenizer(tiny_models):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_models["tokenizer"]))
    one, two = answer_token_ids(tok, ("1", "2"), "Preferred Summary=")
    assert tok.decode([one]).strip() == "1" and tok.decode([two]).strip() == "2"
    ids = tok("Preferred Summary=2", add_special_tokens=False)["input_ids"]
    assert ids[-1] == two
    spelled = rating_token_ids(tok, "Score=")
    assert sorted(spelled) == list(range(1, 11))
    assert "".join(tok.decode(spelled[10]).split()) == "10"


def test_answer_ids_with_a_leading_space_marker():
    tok = _SpaceTokenizer(["Preferred", "▁Summary=", "▁1", "▁2", "1", "2"])
    # "Preferred Summary= 1": the answer after a space is the ▁ form.
    assert answer_token_id(tok, " 1", "Preferred Summary=") == tok.vocab["▁1"]
    assert answer_token_id(tok, "1", "Preferred Summary=") == tok.vocab["1"]
    with pytest.raises(AnswerTokenError, match="'12' is not a single token"):
        answer_token_ids(tok, ("1", "12"))
