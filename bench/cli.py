"""``python -m bench``: run, score, table, report, regress, ls, validate, manifest, doctor, lab."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import replace
from pathlib import Path

from bench.errors import BenchError

MAIN_HELP = """\
Minute-scale pose-guided human animation benchmark.

  python -m bench run --methods everanimate wan_animate --durations 10 90
      generate one rollout per (method, sample) at the longest duration, score every duration as a
      prefix of it, write results/scores/<experiment>/scores.jsonl and print the leaderboard.
      Interrupted? Run the same command again: finished chunks are kept.

With no weights and no GPU everything runs on the embedded `lab` preset (procedural data, small models).
"""


def add_run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to run (CLI > --config file > preset > defaults)")
    g.add_argument("--preset", default="lab", help="preset name or .toml file (default: lab; `bench ls` lists them)")
    g.add_argument("--config", help="extra TOML config file ([run] keys, [methods.NAME] arguments)")
    g.add_argument("--methods", nargs="+", help="methods to run (e.g. everanimate wan_animate ground_truth)")
    g.add_argument("--baselines", nargs="*", help="trivial baselines run beside --methods and shown in the same table "
                                                 "(the lab preset: static_reference); give none to drop them")
    g.add_argument("--durations", nargs="+", type=float, help="horizons in seconds, scored as prefixes of one rollout")
    g.add_argument("--dataset", help="dataset name (lab-test), manifest .jsonl, or folder of sample folders")
    g.add_argument("--size", help="lab size: lab-64, lab-128, 480x832")
    g.add_argument("--samples", nargs="+", help="only these sample ids")
    g.add_argument("--max-samples", type=int, help="only the first N samples")
    g.add_argument("--metrics", nargs="+", help="metrics to compute (default: the whole protocol; metrics without "
                                                 "weights are skipped unless named here)")
    g.add_argument("--seed", type=int, help="rollout seed (recorded)")
    g.add_argument("--fps", type=int, help="protocol frame rate (default 25)")
    g.add_argument("--window", dest="window_s", type=float, help="drift-curve window in seconds (default 5)")
    g.add_argument("--pose-padding", choices=["error", "reflect", "hold"],
                   help="when a duration exceeds the pose sequence: error (default) or pad it (recorded)")
    g.add_argument("--references", choices=["single", "multi"],
                   help="reference views per method: single (default: the user reference only, the paper's "
                        "protocol) or multi (every view the sample ships, to every method that can take them; "
                        "recorded as n_references in every score)")
    g.add_argument("--method-arg", action="append", metavar="METHOD.ARG=VALUE",
                   help="identity argument of a method, e.g. precomputed.folder=/videos (repeatable)")
    r = p.add_argument_group("runtime (does not change results)")
    r.add_argument("--device", help="cpu, cuda, cuda:1 ...")
    r.add_argument("--results", help="results folder (default: ./results)")
    r.add_argument("--experiment", help="name of the scores folder (default: the preset name)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--workers", type=int, help="local worker processes sharing the grid's cells, one torch thread "
                                              "each (the lab preset uses 2 on a CPU; default 1); their progress is "
                                              "one bar, cells done / total across all workers (a cell = one method "
                                              "x sample, generated and scored)")
    r.add_argument("--layout", dest="table_layout", choices=["leaderboard", "ablation"],
                   help="table layout: leaderboard (Table 1) or ablation (Table 2)")


def config_from_args(args: argparse.Namespace):
    from bench.config import build_config, parse_method_args

    return build_config(
        preset=args.preset, config_file=args.config, methods=args.methods, baselines=args.baselines,
        durations=args.durations,
        dataset=args.dataset, size=args.size, samples=args.samples, max_samples=args.max_samples, metrics=args.metrics,
        seed=args.seed, fps=args.fps, window_s=args.window_s, pose_padding=args.pose_padding,
        references=getattr(args, "references", None), method_args=parse_method_args(args.method_arg),
        device=args.device, results=args.results,
        experiment=args.experiment, progress=False if args.no_progress else None, table_layout=args.table_layout,
        workers=getattr(args, "workers", None))


def print_leaderboard(config, records: list) -> None:
    """Write the experiment's tables and drift plots and print its leaderboard."""
    from bench.tables import write_tables

    folder = Path(config.results) / "tables" / config.experiment_name
    board, _ = write_tables(records, folder, config.table_layout, list(config.methods))
    print()
    print(board.markdown())
    print(f"tables and drift plots: {folder}")


def finish_run(config, outcome) -> int:
    """After a run (one process, or the merged workers): the leaderboard of *this* run's scores, or, when
    no cell was scored, only the failures (never an older run's table). A rank of a torchrun / accelerate
    run prints how to merge; a ``--workers`` worker prints nothing (its parent reports the whole run)."""
    from bench.records import read_records
    from bench.runner import shard_from_env

    rank, world = shard_from_env()
    if world > 1:
        if "BENCH_WORKER" in os.environ:
            return 1 if outcome.failures else 0
        print(f"rank {rank}/{world} done; when every rank is done: python -m bench table --experiment "
              f"{config.experiment_name} --results {config.results}")
    elif outcome.scored_cells == 0:
        print("\nno scores: every cell failed (see below); no table written", file=sys.stderr)
    else:
        print_leaderboard(config, read_records(outcome.scores_file))
    if outcome.failures:
        print(f"\n{len(outcome.failures)} cell(s) FAILED:", file=sys.stderr)
        for method, sample, message in outcome.failures:
            print(f"  - {method} / {sample}: {message}", file=sys.stderr)
        return 1
    return 0


def run_workers(config, argv: list[str]) -> int:
    """``config.workers`` local processes, each a shard (RANK / WORLD_SIZE) with one torch thread; every
    argument is checked here first, before any worker starts. The workers show no bars of their own: this
    process shows one, cells done / total across all workers, from their progress shard files. The runner
    merges the shards into one ``scores.jsonl`` (pooled metrics computed once); a run that failed prints its
    errors and no table."""
    import subprocess
    import time

    from bench.records import shard_pattern
    from bench.runner import check_run, merge_shards, workers_done

    samples = check_run(config)
    n = config.workers
    folder = Path(config.results) / "scores" / config.experiment_name
    kinds = ("scores", "pooled", "progress")
    for stale in [p for kind in kinds for p in folder.glob(shard_pattern(kind))]:
        stale.unlink()  # shards of an interrupted earlier run must never merge into this one
    print(f"bench run: {n} worker processes (RANK 0..{n - 1}, one torch thread each)", flush=True)
    base_env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    procs = [subprocess.Popen([sys.executable, "-m", "bench", *argv, "--workers", "1", "--no-progress"],
                              env={**base_env, "RANK": str(i), "WORLD_SIZE": str(n), "OMP_NUM_THREADS": "1",
                                   "BENCH_WORKER": str(i)})
             for i in range(n)]
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(config.methods) * len(samples), desc=f"cells ({n} workers)", unit="cell")
    while any(p.poll() is None for p in procs):
        if bar is not None:
            bar.n = workers_done(folder, n)
            bar.refresh()
        time.sleep(0.5)
    codes = [p.wait() for p in procs]
    if bar is not None:
        bar.n = workers_done(folder, n)
        bar.close()
    for progress in folder.glob(shard_pattern("progress")):
        progress.unlink()
    if any(code not in (0, 1) for code in codes):  # 1 = some cells failed (merged below); else a crash
        print(f"\nworker exit codes {codes}: see the errors above; no table written", file=sys.stderr)
        return max(codes)
    return finish_run(replace(config, workers=1), merge_shards(folder))


def cmd_run(args) -> int:
    from bench.runner import run_grid

    config = config_from_args(args)
    if config.workers > 1 and "WORLD_SIZE" not in os.environ:
        return run_workers(config, args.argv)
    return finish_run(config, run_grid(config))


def cmd_score(args) -> int:
    if getattr(args, "gt", None) or getattr(args, "pred", None):
        from bench.metrics import pair

        return pair.main(args)
    from bench.runner import run_grid

    config = config_from_args(args)
    return finish_run(config, run_grid(config, score_only=True))


def cmd_table(args) -> int:
    from bench.records import ExperimentManifest, read_scores, shard_pattern
    from bench.runner import merge_shards
    from bench.tables import write_tables

    results = Path(args.results or "results")
    experiment = args.experiment or "lab"
    if any((results / "scores" / experiment).glob(shard_pattern("scores"))):  # a torchrun run's ranks
        print(f"merged shards into {merge_shards(results / 'scores' / experiment)}", file=sys.stderr)
    records = read_scores(results / "scores" / experiment)
    folder = results / "tables" / experiment
    run = ExperimentManifest.read(results / "scores" / experiment)
    board, paths = write_tables(records, folder, args.layout, list(run.methods) if run else None)
    text = {"md": board.markdown(), "csv": board.csv(), "latex": board.latex()}[args.format]
    print(text)
    print(f"written: {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    return 0


def cmd_report(args) -> int:
    from bench.report import report_main

    return report_main(args)


def cmd_regress(args) -> int:
    from bench.regress import regress_main

    return regress_main(args)


def method_arguments(name: str) -> str:
    """``arg=default, ...`` of a registered method (required ones bare), or why it cannot be listed. Read from
    the method's torch-free ``Config`` (a plugin without one: from its class)."""
    from dataclasses import MISSING

    from bench import registry
    from bench.animator import config_arguments

    try:
        config_cls = registry.method_config(name)
        arguments = config_arguments(config_cls) if config_cls else registry.method_class(name).arguments()
    except BenchError as exc:
        return f"(not importable here: {exc.message})"
    items = [n if d is MISSING else f"{n}={d!r}" for n, d in arguments]
    return ", ".join(items) or "none"


def cmd_ls(args) -> int:
    from bench import registry

    show_all = not (args.methods or args.metrics or args.presets or args.datasets)
    if show_all or args.methods:
        print("methods:")
        for name, entry in registry.methods().items():
            print(f"  {name:18s} {entry.summary}  [needs: {entry.needs}]")
            if args.methods:  # asked for methods by name: their arguments too (imports each method's module)
                print(f"  {'':18s} arguments: {method_arguments(name)}")
    if show_all or args.metrics:
        print("metrics:")
        from bench.metrics import METRICS, summary_line

        for name, info in METRICS.items():
            print(f"  {name:18s} {info.display:9s} {summary_line(name)}{' (default)' if info.default else ''}")
    if show_all or args.presets:
        print("presets:")
        for name, path in registry.presets().items():
            first = next((l.lstrip("# ").strip() for l in path.read_text().splitlines() if l.startswith("#")), "")
            print(f"  {name:18s} {first}")
    if show_all or args.datasets:
        print("datasets:")
        for name, summary in registry.datasets().items():
            print(f"  {name:18s} {summary}")
        print(f"  {'<path>.jsonl':18s} a manifest (python -m bench validate checks it)")
    return 0


def cmd_doctor(args) -> int:
    from bench.doctor import doctor

    return doctor(args)


def delegate(module: str, add: str, main: str, active: bool):
    """Subcommands owned by other modules: imported only when that subcommand is used."""

    def add_arguments(p):
        if active:
            try:
                getattr(importlib.import_module(module), add)(p)
            except ImportError as exc:
                raise BenchError(f"{module} cannot be imported: {exc}", fix="reinstall: pip install -e '.[dev]'") from exc

    def run(args):
        return getattr(importlib.import_module(module), main)(args)

    return add_arguments, run


def pair_options_help() -> str:
    """The pair mode's options as help text, so `bench score --help` shows both modes."""
    from bench.metrics import pair

    helper = argparse.ArgumentParser(prog="python -m bench score", add_help=False)
    pair.add_arguments(helper)
    text = helper.format_help()
    text = text[text.index("\n\n") + 2:] if "\n\n" in text else text
    return text.split("\n", 1)[1] if text.startswith("options:") else text


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = argparse.ArgumentParser(prog="python -m bench", description=MAIN_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="generate (or resume) rollouts, score them, print the leaderboard",
                       description="Generate one rollout per (method, sample) at the longest duration, resume "
                                   "anything unfinished, score every duration as a prefix, write scores.jsonl, "
                                   "tables and drift plots. Shards over RANK/WORLD_SIZE when launched with torchrun.")
    add_run_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("score", help="re-score stored rollouts (no generation), or score one video pair",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Without --gt/--pred: re-score the stored rollouts of a run configuration\n"
                                   "(same options as `run`; nothing is generated).\n"
                                   "With --gt GT.mp4 --pred PRED.mp4: score one pair with the full protocol and\n"
                                   "print a summary table (--json: the JSON). --metrics takes names the same way\n"
                                   "in both modes: --metrics psnr ssim")
    pair_mode = command == "score" and any(a.split("=")[0] in ("--gt", "--pred") for a in argv)
    if pair_mode:
        from bench.metrics import pair

        pair.add_arguments(p.add_argument_group("one video pair (the protocol without the harness)"))
    else:
        add_run_options(p)
        p.add_argument_group("one video pair (with --gt GT.mp4 --pred PRED.mp4, these options instead of the above)",
                             pair_options_help())
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("table", help="leaderboards (Markdown, CSV, LaTeX) and drift plots from stored scores",
                       description="Build leaderboards from stored scores only (merging shard files): rows = methods, "
                                   "column groups = durations, arrows = better direction, best value bold, missing "
                                   "cells shown as missing. Also writes one drift-curve PNG per metric. Scores of "
                                   "runs with different dataset, size, fps or pose padding are never one table: one "
                                   "table (and plot set) per run setting, each headed by what differs.")
    p.add_argument("--experiment", help="scores folder name (default: lab)")
    p.add_argument("--results", help="results folder (default: ./results)")
    p.add_argument("--format", choices=["md", "csv", "latex"], default="md", help="what to print (all are written)")
    p.add_argument("--layout", choices=["leaderboard", "ablation"], default="leaderboard")
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("report", help="one self-contained HTML page: leaderboard, drift curves, frame strips",
                       description="Build one self-contained HTML file from stored results only (nothing is "
                                   "generated or scored): the leaderboard (best value per column bold, untrained "
                                   "rows marked), the drift curves per metric, and frame strips - for each of the "
                                   "first test samples, one row of ground-truth frames and one row per method at "
                                   "fixed times, read from each method's stored rollout (times past the rollout's "
                                   "end are skipped and listed). CSS and images (base64 PNG) are inline: the file "
                                   "references nothing outside itself and opens offline.")
    p.add_argument("--experiment", help="scores folder name under RESULTS/scores (default: lab)")
    p.add_argument("--results", help="results folder holding scores/, runs/ and cache/ (default: ./results)")
    p.add_argument("--out", help="HTML file to write (default: RESULTS/report/<experiment>.html)")
    p.add_argument("--times", nargs="+", type=float, default=[0, 10, 30, 60, 90], metavar="SECONDS",
                   help="frame-strip times in seconds (default: 0 10 30 60 90)")
    p.add_argument("--max-samples", type=int, default=2, help="frame strips for the first N samples (default 2; "
                                                              "0 = all)")
    p.add_argument("--layout", choices=["leaderboard", "ablation"], default="leaderboard",
                   help="table layout, as in `bench table`")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("regress", help="short deterministic lab run compared with golden scores in git",
                       description="Run a short lab regression from scratch in a temporary results folder "
                                   "(default: everanimate and wan_animate with the lab preset's method arguments, "
                                   "4 s, 1 sample, metrics that need no downloaded weights: psnr ssim fpsnr "
                                   "bgpsnr) and compare every (metric, method, duration) mean with "
                                   "results/golden/<name>.json within per-metric absolute tolerances (see "
                                   "bench/regress.py). Prints a diff table; exit 1 on any regression, missing or "
                                   "extra cell, or failed run. After an intended change, refresh the golden "
                                   "file with --update and commit it.")
    p.add_argument("--update", action="store_true",
                   help="write (overwrite) the golden file from this run, with provenance (date, torch version, "
                        "method arguments and weight fingerprints), instead of comparing")
    p.add_argument("--golden", help="golden file (default: results/golden/lab.json, relative to the current folder)")
    p.add_argument("--methods", nargs="+", help="override the spec's methods (default: everanimate wan_animate)")
    p.add_argument("--durations", nargs="+", type=float, help="override the spec's durations in seconds (default: 4)")
    p.add_argument("--max-samples", type=int, help="override the number of lab test samples (default: 1)")
    p.add_argument("--keep", action="store_true", help="keep the temporary results folder of the run (path printed)")
    p.set_defaults(func=cmd_regress)

    p = sub.add_parser("ls", help="list methods, metrics, presets and datasets (imports no torch)",
                       description="List every registered method (with what it needs to run), metric (default set "
                                   "marked), preset (TOML files in bench/presets) and dataset. Nothing heavy is "
                                   "imported, so this answers instantly on any machine; `ls --methods` also lists "
                                   "each method's arguments with their defaults (from their argument dataclasses, "
                                   "still without torch).")
    for what in ("methods", "metrics", "presets", "datasets"):
        p.add_argument(f"--{what}", action="store_true", help=f"only {what}")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("doctor", help="environment, devices, and which weights are present and verified",
                       description="Report Python/torch/CUDA, every registered method (ready or what is missing) "
                                   "and every metric's weights (present/missing/corrupt, and where each file goes).")
    p.add_argument("--preset", default="lab", help="preset whose method arguments are checked (default: lab)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_doctor)

    add, run = delegate("bench.manifest", "add_validate_arguments", "validate_main", command == "validate")
    p = sub.add_parser("validate", help="check a manifest: files, hashes, decoding, fps, size, lengths",
                       description="Check every file of a manifest exists, matches its sha256, decodes, has the stated "
                                   "fps, size and frame count, and that pose/face/GT lengths agree; every problem "
                                   "is reported at once (exit 1 if any).")
    add(p)
    p.set_defaults(func=run)

    add, run = delegate("bench.manifest", "add_manifest_arguments", "manifest_main", command == "manifest")
    p = sub.add_parser("manifest", help="build a dataset manifest from your own data (Wan-Animate folders or raw "
                                        "videos)",
                       description="Build a bench.sample/1 manifest (docs/data.md) from Wan-Animate preprocessed "
                                   "folders (from-wan) or from raw 25 fps videos through local ONNX pose models "
                                   "(from-videos); every problem is reported at once, the result is validated and "
                                   "written atomically. Use it with `bench run --dataset MANIFEST.jsonl`.")
    add(p)
    p.set_defaults(func=run)

    add, run = delegate("bench.lab.commands", "add_arguments", "main", command == "lab")
    p = sub.add_parser("lab", help="render lab clips (the procedural benchmark) and frame strips",
                       description="The lab: procedural minute-scale clips with exact ground truth.")
    add(p)
    p.set_defaults(func=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser(argv)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BenchError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.fix:
            print(f"  fix: {exc.fix}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; finished chunks are kept - run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
