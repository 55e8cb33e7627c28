"""``python -m everanimate train --stage 1|2 --config FILE [--set section.key=value ...]``.

Run it under ``accelerate launch`` for several processes (configs in ``everanimate/configs/``)::

    accelerate launch --config_file everanimate/configs/accelerate_fsdp.yaml -m everanimate train --stage 1 \\
        --config everanimate/configs/paper_stage1.toml
"""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from bench.errors import BenchError

    parser = argparse.ArgumentParser(prog="python -m everanimate", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one LoRA stage")
    t.add_argument("--stage", type=int, choices=(1, 2), required=True)
    t.add_argument("--config", help="TOML or JSON config (everanimate/configs/*.toml)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set lora.rank=16 --set init_lora=runs/s1/lora.safetensors")
    t.add_argument("--steps", type=int)
    t.add_argument("--output-dir")
    t.add_argument("--init-lora",
                   help="the LoRA to start from: stage 2 the stage-1 file; either stage to continue an earlier run")
    t.add_argument("--no-resume", action="store_true", help="ignore checkpoints in the output folder")
    t.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        from everanimate.config import load_train_config
        from everanimate.train import train

        config = load_train_config(args.config, args.overrides, stage=args.stage, steps=args.steps,
                                   output_dir=args.output_dir, init_lora=args.init_lora)
        result = train(config, resume=not args.no_resume, progress=not args.no_progress)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    losses = result["losses"]
    print(f"stage {config.stage}: {result['step']} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}; "
          f"LoRA: {result.get('lora', '(not finished)')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
