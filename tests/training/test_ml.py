"""The training algorithms on tiny models, without Django."""
from __future__ import annotations

import math

import pytest
import torch

from training.ml import common
from training.ml.reward import (RewardConfig, accuracy, baseline_margins, encode, load_reward_model, micro_batches,
                                soft_label_loss, train_reward)
from training.ml.rl import RLConfig, baseline_of, train_rl
from training.ml.sampling import SamplingConfig, generate_summaries
from training.ml.sft import SFTConfig, _encode as sft_encode, train_sft

HH_RECORD = {"task": "dialogue", "subreddit": "", "title": "",
             "post": "Human: Can you tell me about wild dogs?\n\nAssistant: Would you like to read about wolves?"
                     "\n\nHuman: Oh, I would love to learn about wolves.",
             "summary_a": "Sure! A wolf is a large canine.", "summary_b": "Read an article.", "p_a": 1.0,
             "choice": 0, "summary": "Sure! A wolf is a large canine."}


def _recording_hooks(stop_at: int = 0):
    logs: list[dict] = []
    ckpts: list[int] = []
    hooks = common.Hooks(on_log=lambda s, t, m: logs.append(dict(m, step=s, total=t)),
                         should_stop=lambda: bool(stop_at) and len(logs) >= stop_at,
                         on_checkpoint=lambda p, s: ckpts.append(s))
    return hooks, logs, ckpts


def test_soft_label_loss_matches_hand_computation():
    r_a, r_b, p = torch.tensor([1.3, -0.2]), torch.tensor([0.1, 0.9]), torch.tensor([0.7, 1.0])
    expected = []
    for ra, rb, pa in [(1.3, 0.1, 0.7), (-0.2, 0.9, 1.0)]:
        q_a = math.exp(ra) / (math.exp(ra) + math.exp(rb))  # softmax(r_A, r_B)[0]
        expected.append(-(pa * math.log(q_a) + (1 - pa) * math.log(1 - q_a)))
    assert soft_label_loss(r_a, r_b, p).item() == pytest.approx(sum(expected) / 2, rel=1e-6)
    # a hard label is the ordinary Bradley-Terry loss
    assert soft_label_loss(torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([1.0])).item() == pytest.approx(
        math.log(1 + math.exp(-2.0)), rel=1e-6)


def test_baselines_and_accuracy():
    pairs = [{"post": "the cat sat on the mat", "title": "", "summary_a": "cat sat mat", "summary_b": "a dog ran far away"}]
    m = baseline_margins(pairs)
    assert m["longer"][0] < 0 and m["overlap"][0] > 0
    assert accuracy([1.0, -1.0, 0.0], [0, 0, 1]) == pytest.approx(0.5)


def test_sft_loss_goes_down(tiny_models, refs, tmp_path):
    hooks, logs, _ = _recording_hooks()
    cfg = SFTConfig(model=str(tiny_models["causal_lm"]), learning_rate=3e-3, batch_size=4, micro_batch_size=4,
                    epochs=3, max_length=96, max_summary_tokens=24)
    result = train_sft(cfg, refs[:4], tmp_path, hooks=hooks)
    assert result.status == "done" and result.step == 3 and len(logs) == 3
    assert logs[-1]["loss"] < logs[0]["loss"] - 0.05
    assert [m["lr"] for m in logs] == pytest.approx([3e-3, 2e-3, 1e-3])  # linear decay to 0, no warm-up
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(result.output_dir)  # a standard Hugging Face checkpoint


def test_reward_loss_goes_down_with_soft_labels(tiny_models, comparisons, tmp_path):
    pairs = [dict(c, p_a=0.9 if c["choice"] == 0 else 0.2) for c in comparisons[:8]]
    hooks, logs, _ = _recording_hooks()
    cfg = RewardConfig(model=str(tiny_models["causal_lm"]), learning_rate=2e-3, batch_size=8, micro_batch_size=8,
                       epochs=4, max_length=96)
    result = train_reward(cfg, pairs, tmp_path, eval_pairs=comparisons[:8], hooks=hooks)
    assert logs[-1]["loss"] < logs[0]["loss"]
    # the floor of the soft-label loss is the labels' entropy, not 0
    assert result.summary["eval_pairs"] == 8
    for key in ("rm_accuracy", "longer_baseline_accuracy", "overlap_baseline_accuracy"):
        assert 0.0 <= result.summary[key] <= 1.0


def test_reward_rejects_bad_labels(tiny_models, comparisons, tmp_path):
    bad = [dict(comparisons[0], p_a=1.5)]
    with pytest.raises(common.TrainingDataError, match="pair 0: field 'p_a'"):
        train_reward(RewardConfig(model=str(tiny_models["causal_lm"])), bad, tmp_path)


def test_rl_kl_is_zero_at_step_0_and_reward_goes_up(tiny_models, refs, tmp_path):
    # SFT first so the policy can emit end-of-text; the reward favours short summaries.
    sft = train_sft(SFTConfig(model=str(tiny_models["causal_lm"]), learning_rate=3e-3, batch_size=4, epochs=2,
                              max_length=96, max_summary_tokens=8), refs[:4], tmp_path / "sft")

    def reward(records, summaries):
        return [-len(s.split()) / 8 for s in summaries]

    hooks, logs, _ = _recording_hooks()
    cfg = RLConfig(model=sft.output_dir, learning_rate=3e-3, batch_size=4, samples_per_prompt=2, micro_batch_size=8,
                   epochs=4, max_new_tokens=8, max_prompt_length=64, optimizer="adamw")
    train_rl(cfg, refs[:4], reward, tmp_path / "rl", hooks=hooks)
    assert logs[0]["kl"] == pytest.approx(0.0, abs=1e-5)
    assert any(abs(m["kl"]) > 1e-4 for m in logs[1:])  # the policy moved away from SFT
    first, last = logs[0]["reward"] + logs[1]["reward"], logs[-1]["reward"] + logs[-2]["reward"]
    assert last > first


def test_rloo_baseline():
    r = torch.tensor([1.0, 3.0, 0.0, 4.0])
    assert baseline_of(r, 2, "leave_one_out").tolist() == [3.0, 1.0, 4.0, 0.0]
    assert baseline_of(r, 1, "batch_mean").tolist() == [2.0] * 4


def test_sft_resume_after_stop_matches_uninterrupted_run(tiny_models, refs, tmp_path):
    cfg = SFTConfig(model=str(tiny_models["causal_lm"]), learning_rate=1e-3, batch_size=2, micro_batch_size=2,
                    epochs=1, max_length=64, max_summary_tokens=16, checkpoint_every=100)
    full = train_sft(cfg, refs[:8], tmp_path / "full")
    hooks, logs, ckpts = _recording_hooks(stop_at=2)
    stopped = train_sft(cfg, refs[:8], tmp_path / "cut", hooks=hooks)
    assert stopped.status == "stopped" and stopped.step == 2 and ckpts == [2]
    hooks2, logs2, _ = _recording_hooks()
    resumed = train_sft(cfg, refs[:8], tmp_path / "cut", hooks=hooks2, resume_from=stopped.checkpoint_dir)
    assert resumed.status == "done" and [m["step"] for m in logs2] == [3, 4]
    from transformers import AutoModelForCausalLM

    a = AutoModelForCausalLM.from_pretrained(full.output_dir).state_dict()
    b = AutoModelForCausalLM.from_pretrained(resumed.output_dir).state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)


def test_sampling_writes_one_summary_per_post(tiny_models, refs):
    out = generate_summaries(SamplingConfig(model=str(tiny_models["causal_lm"]), max_new_tokens=5, batch_size=2),
                             refs[:3])
    assert len(out) == 3 and all(isinstance(s, str) for s in out)


def test_config_from_dict_names_the_bad_field():
    with pytest.raises(ValueError, match="unknown field"):
        common.config_from_dict(SFTConfig, {"lr": 1})
    with pytest.raises(ValueError, match="'epochs'"):
        common.config_from_dict(SFTConfig, {"epochs": "many"})
    assert common.field_docs(RLConfig)["kl_beta"].startswith("beta")


# --- TRL's defaults: dropout off, linear decay; micro-batches change nothing -----------------------


def test_disable_dropout_makes_train_mode_deterministic(tiny_models):
    model, tok = load_reward_model(str(tiny_models["causal_lm"]))
    model.train()
    batch = tok(["TITLE: t\nPOST: a post\nTL;DR: a summary"], return_tensors="pt")
    torch.manual_seed(0)
    assert not torch.equal(model(**batch).logits, model(**batch).logits)  # dropout is on in the checkpoint
    assert common.disable_dropout(model) > 0
    assert torch.equal(model(**batch).logits, model(**batch).logits)


def test_reward_lr_decays_linearly_to_zero_without_warmup(tiny_models, comparisons, tmp_path):
    pairs = [dict(c, p_a=1.0 - c["choice"]) for c in comparisons[:8]]
    hooks, logs, _ = _recording_hooks()
    cfg = RewardConfig(model=str(tiny_models["causal_lm"]), learning_rate=1e-3, batch_size=2, micro_batch_size=2,
                       epochs=1, max_length=64)
    assert (cfg.lr_scheduler, cfg.warmup_steps, cfg.disable_dropout) == ("linear", 0, True)  # TRL's defaults
    train_reward(cfg, pairs, tmp_path, hooks=hooks)
    # the Trainer's linear schedule: step k of n runs at lr * (1 - k / n)
    assert [m["lr"] for m in logs] == pytest.approx([1e-3, 0.75e-3, 0.5e-3, 0.25e-3])


def test_reward_micro_batches_sum_to_the_whole_batch(tiny_models, comparisons, tmp_path):
    assert micro_batches([4, 5, 6, 7], [9, 30, 10, 20, 5, 40, 1, 2], 3) == [[5, 4, 7], [6]]
    pairs = [dict(c, p_a=1.0 - c["choice"]) for c in comparisons[:8]]
    weights = []
    for micro in (8, 3):
        cfg = RewardConfig(model=str(tiny_models["causal_lm"]), learning_rate=1e-4, batch_size=8,
                           micro_batch_size=micro, epochs=2, max_length=64)
        out = train_reward(cfg, pairs, tmp_path / f"micro{micro}")
        weights.append(load_reward_model(out.output_dir)[0].state_dict())
    start = load_reward_model(str(tiny_models["causal_lm"]))[0].state_dict()
    key = "transformer.h.0.mlp.c_fc.weight"
    assert (weights[0][key] - start[key]).abs().max() > 1e-4  # Adam moved the weights by ~lr per step
    for key in weights[0]:  # Adam turns float rounding in gradients near 0 into steps of up to ~lr / 30
        torch.testing.assert_close(weights[0][key], weights[1][key], atol=1e-5, rtol=1e-4)


# --- dialogue (HH) formats -----------------------------------------------------------------------


def test_reward_and_sft_inputs_use_the_dialogue_format(tiny_models):
    tok = load_reward_model(str(tiny_models["causal_lm"]))[1]
    text = tok.decode(encode(tok, HH_RECORD, HH_RECORD["summary_a"], 256))
    assert text.endswith("learn about wolves.\n\nAssistant: Sure! A wolf is a large canine.")
    assert "TL;DR" not in text and "TITLE:" not in text and "POST:" not in text
    prompt_ids, reply_ids = sft_encode(tok, HH_RECORD, SFTConfig(max_length=256))
    assert tok.decode(prompt_ids).endswith("learn about wolves.\n\nAssistant:")
    assert tok.decode(reply_ids).startswith(" Sure! A wolf")
    assert "TL;DR" not in tok.decode(prompt_ids)


def test_long_dialogue_loses_its_oldest_turns_not_the_last():
    from transformers import AutoTokenizer

    from training.ml.tiny import minilm_path

    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    context = "\n\n".join(f"Human: question number {i} about dogs?\n\nAssistant: answer {i}." for i in range(40))
    context += "\n\nHuman: and the very last question?"
    prompt = common.fit_record_prompt(tok, dict(HH_RECORD, post=context), 64)
    assert len(tok(prompt, add_special_tokens=False)["input_ids"]) <= 64
    assert prompt.startswith("…") and prompt.endswith("the very last question?\n\nAssistant:")
    assert "question number 0 " not in prompt


# --- KL at step 0 under mixed precision (issue 12, item 6) ---------------------------------------


def test_rl_kl_is_zero_at_step_0_under_bf16_autocast(tiny_models, refs, tmp_path):
    """On a GPU the prepared policy runs under bf16 autocast; on CPU precision=bf16 takes the same path."""
    logs = []
    hooks = common.Hooks(on_log=lambda s, t, m: logs.append(m))
    cfg = RLConfig(model=str(tiny_models["causal_lm"]), learning_rate=1e-3, batch_size=2, samples_per_prompt=2,
                   micro_batch_size=4, epochs=1, max_new_tokens=6, max_prompt_length=48, optimizer="adamw",
                   precision="bf16", max_steps=1)
    train_rl(cfg, refs[:2], lambda records, summaries: [0.0] * len(summaries), tmp_path, hooks=hooks)
    assert logs[0]["kl"] == 0.0
