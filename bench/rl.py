"""Benchmark: our RL loop (REINFORCE, leave-one-out baseline, KL to SFT) vs TRL's RLOOTrainer,
on a tiny policy with the same settings, in one run.

Policy: the tiny random GPT-2 of `training.ml.tiny` (built here, offline). Prompts: TL;DR posts
from data/tldr_sft_reference_summaries.jsonl in the paper's format, pre-shortened to
--max-prompt-length tokens (TRL 1.x no longer truncates prompts). Reward: a fixed function of
the summary (prefer about 12 words), the same for both; TRL subtracts beta * KL from the reward,
we use (1 - beta) * r - beta * KL, so TRL is handed (1 - beta) * r to optimize the same objective.
Same: 2 samples per prompt (RLOO), temperature 0.9, top-k off, beta 0.05, AdamW at a constant
lr, one optimizer step per batch of samples, no gradient checkpointing, fp32 on CPU. Speed is sampled summaries per second
from the end of the first step to the end of the last (loading and the first step's warm-up
excluded for both), in wall time and in this process's CPU time (steadier on a shared machine).

    .venv/bin/python bench/rl.py [--steps 8 --prompts-per-step 4 --max-new-tokens 24]

Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from training.ml import common  # noqa: E402
from training.ml.rl import RLConfig, train_rl  # noqa: E402
from training.ml.tiny import build_all  # noqa: E402


def target_length_reward(summary: str, target: int = 12) -> float:
    return -abs(len(summary.split()) - target) / target


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--prompts-per-step", type=int, default=4)
    p.add_argument("--samples-per-prompt", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--max-prompt-length", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--beta", type=float, default=0.05)
    p.add_argument("--temperature", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads for both trainers (1: stable on a shared, loaded machine; 0: torch's default)")
    p.add_argument("--models", default="", help="Folder for the tiny models (default: a temporary folder).")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    tmp = tempfile.TemporaryDirectory()
    root = Path(args.models or tmp.name)
    paths = build_all(root, [REPO / "data" / "tldr_comparisons_sample.jsonl",
                             REPO / "data" / "tldr_sft_reference_summaries.jsonl"])
    policy_path = str(paths["causal_lm"])
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(policy_path)
    records = []
    with open(REPO / "data" / "tldr_sft_reference_summaries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            records.append(json.loads(line))
            if len(records) >= args.steps * args.prompts_per_step:
                break
    prompts = [common.fit_prompt(tok, r["subreddit"], r["title"], r["post"], args.max_prompt_length) for r in records]
    k = args.samples_per_prompt
    print(f"tiny GPT-2 policy; {args.steps} steps x {args.prompts_per_step} prompts x {k} samples, "
          f"{args.max_new_tokens} new tokens, prompts <= {args.max_prompt_length} tokens; torch threads "
          f"{torch.get_num_threads()}", flush=True)

    # ours
    per_step = args.prompts_per_step * k
    clocks = {"ours": ([], []), "trl": ([], [])}

    def tick(name):
        clocks[name][0].append(time.perf_counter())
        clocks[name][1].append(time.process_time())

    def rates(name):
        wall, cpu = clocks[name]
        n = per_step * (len(wall) - 1)
        return n / (wall[-1] - wall[0]), n / (cpu[-1] - cpu[0])

    rewards = []

    def on_log(step, total, m):
        tick("ours")
        rewards.append(m["reward"])

    cfg = RLConfig(model=policy_path, learning_rate=args.lr, epochs=1, batch_size=args.prompts_per_step,
                   samples_per_prompt=k, micro_batch_size=args.prompts_per_step * k, kl_beta=args.beta,
                   temperature=args.temperature, max_new_tokens=args.max_new_tokens,
                   max_prompt_length=args.max_prompt_length, optimizer="adamw", seed=args.seed,
                   checkpoint_every=10**9)
    posts = [{"subreddit": r["subreddit"], "title": r["title"], "post": r["post"]} for r in records]
    with tempfile.TemporaryDirectory() as out:
        train_rl(cfg, posts, lambda recs, summaries: [target_length_reward(s) for s in summaries], out,
                 hooks=common.Hooks(on_log=on_log))
    ours_speed, ours_cpu = rates("ours")
    print(f"ours: {ours_speed:.2f} samples/s; reward first/last step {rewards[0]:.3f}/{rewards[-1]:.3f}", flush=True)

    # TRL RLOO
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import RLOOConfig, RLOOTrainer

    class Tick(TrainerCallback):
        def on_step_end(self, *a, **kw):
            tick("trl")

    trl_rewards: list[float] = []

    def trl_reward(prompts, completions, **kwargs):
        raw = [target_length_reward(c.strip()) for c in completions]
        trl_rewards.append(sum(raw) / len(raw))
        return [(1 - args.beta) * r for r in raw]

    common.set_seed(args.seed)
    with tempfile.TemporaryDirectory() as out:
        trl_cfg = RLOOConfig(
            output_dir=out, learning_rate=args.lr, per_device_train_batch_size=args.prompts_per_step * k,
            num_generations=k, max_completion_length=args.max_new_tokens, temperature=args.temperature, top_k=0,
            gradient_checkpointing=False, top_p=1.0, beta=args.beta, num_iterations=1, max_steps=args.steps, lr_scheduler_type="constant",
            report_to=[], save_strategy="no", logging_steps=args.steps, seed=args.seed, bf16=False, fp16=False,
            use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, max_grad_norm=1.0,
        )
        trainer = RLOOTrainer(model=policy_path, reward_funcs=trl_reward, args=trl_cfg,
                              train_dataset=Dataset.from_list([{"prompt": t} for t in prompts]), processing_class=tok,
                              callbacks=[Tick()])
        trainer.train()
    trl_speed, trl_cpu = rates("trl")
    print(f"TRL RLOOTrainer: {trl_speed:.2f} samples/s; reward first/last step {trl_rewards[0]:.3f}/"
          f"{trl_rewards[-1]:.3f}", flush=True)
    print(json.dumps({
        "ours_samples_per_s": round(ours_speed, 3), "trl_samples_per_s": round(trl_speed, 3),
        "ours_samples_per_cpu_s": round(ours_cpu, 3), "trl_samples_per_cpu_s": round(trl_cpu, 3),
        "ours_reward_first_step": round(rewards[0], 4), "ours_reward_last_step": round(rewards[-1], 4),
        "trl_reward_first_step": round(trl_rewards[0], 4), "trl_reward_last_step": round(trl_rewards[-1], 4),
        "steps": args.steps, "prompts_per_step": args.prompts_per_step, "samples_per_prompt": k,
        "max_new_tokens": args.max_new_tokens, "max_prompt_length": args.max_prompt_length,
        "temperature": args.temperature, "beta": args.beta, "lr": args.lr,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }))


if __name__ == "__main__":
    main()
