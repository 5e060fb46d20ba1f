"""Run one algorithm from the shell, on one process or several under `accelerate launch`.

    accelerate launch --multi_gpu --num_processes 4 -m training.ml.launch sft \\
        --config cfg.json --data examples.jsonl --output-dir out/

On CPU (tests), start the processes with `torchrun --standalone --nproc_per_node N -m ...`:
accelerate's own launcher runs CPU jobs in a single process. `--config` is a JSON object of the
algorithm's config fields (a file or inline JSON); `--data` holds one example / pair / prompt per line in the shape the algorithm takes. Each process takes its
share of every batch; the main process prints one JSON line per event on stdout
({"event": "step" | "checkpoint" | "result", ...}). A file named STOP in the output folder stops
the run after the current step, with a checkpoint. The training worker uses this for runs with
`num_processes` > 1; it is also the way to train without Django.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from . import common


def _read_jsonl(path: str | None) -> list[dict]:
    if not path:
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise SystemExit(f"{path}:{n}: not JSON ({exc.msg})") from exc
    return out


def _emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}, default=str), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.ml.launch", description=__doc__.split("\n")[0])
    p.add_argument("algorithm", choices=["sft", "reward", "rl"])
    p.add_argument("--config", required=True, help="JSON object (inline or a file) of config fields.")
    p.add_argument("--data", required=True, help="JSONL: SFT examples, reward pairs or RL prompts.")
    p.add_argument("--eval-data", default="", help="JSONL of held-out human pairs (reward models).")
    p.add_argument("--reward-model", default="", help="Reward-model checkpoint (RL).")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--resume-from", default="")
    args = p.parse_args(argv)

    raw = Path(args.config).read_text() if Path(args.config).is_file() else args.config
    values = json.loads(raw)
    out = Path(args.output_dir)
    stop_file = out / "STOP"
    hooks = common.Hooks(
        on_log=lambda step, total, metrics: _emit("step", step=step, total=total, metrics=metrics),
        should_stop=stop_file.exists,
        on_checkpoint=lambda path, step: _emit("checkpoint", path=path, step=step),
    )
    data = _read_jsonl(args.data)
    resume = args.resume_from or None
    if args.algorithm == "sft":
        from .sft import SFTConfig, train_sft

        result = train_sft(common.config_from_dict(SFTConfig, values, where=args.config), data, out, hooks=hooks,
                           resume_from=resume)
    elif args.algorithm == "reward":
        from .reward import RewardConfig, train_reward

        result = train_reward(common.config_from_dict(RewardConfig, values, where=args.config), data, out,
                              eval_pairs=_read_jsonl(args.eval_data), hooks=hooks, resume_from=resume)
    else:
        from .reward import RewardScorer
        from .rl import RLConfig, train_rl

        if not args.reward_model:
            raise SystemExit("rl needs --reward-model")
        import torch

        from accelerate import PartialState

        device = PartialState().device if torch.cuda.is_available() else "cpu"
        result = train_rl(common.config_from_dict(RLConfig, values, where=args.config), data,
                          RewardScorer(args.reward_model, device=str(device)), out, hooks=hooks, resume_from=resume)
    from accelerate import PartialState

    if PartialState().is_main_process:
        _emit("result", **asdict(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
