"""Wall time of the README's main command on the lab, from an empty results folder (target: <= 10 minutes on a
2-core CPU for 10 s and 90 s on the 4 lab test subjects).

    python benchmarks/lab_main_job.py [--results DIR] [--keep]

Runs ``python -m bench run --methods everanimate wan_animate --durations 10 90`` in a subprocess (fresh lab
render cache included), prints the wall time against the target, the per-phase counts the run printed, and
the leaderboard. Output committed in ``benchmarks/results/lab_main_job.txt``.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 600.0
COMMAND = ["-m", "bench", "run", "--methods", "everanimate", "wan_animate", "--durations", "10", "90", "--no-progress"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=None, help="results folder (default: a fresh temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary results folder")
    args = parser.parse_args()
    results = args.results or Path(tempfile.mkdtemp(prefix="bench-main-job-"))
    import torch

    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *COMMAND, "--results", str(results)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], env=os.environ.copy())
    wall = time.perf_counter() - start
    print("Lab main job: python -m bench run --methods everanimate wan_animate --durations 10 90")
    print(f"machine: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; fresh results folder (lab render + generation + scoring + tables)")
    print(f"exit code {proc.returncode}")
    print(f"wall time {wall:.1f} s = {wall / 60:.2f} min; target <= {TARGET_S / 60:.0f} min: "
          f"ratio {wall / TARGET_S:.2f} ({'PASS' if wall <= TARGET_S and proc.returncode == 0 else 'FAIL'})")
    print("\n--- command output (stdout) ---")
    print(proc.stdout.strip())
    if proc.returncode:
        print("\n--- stderr (tail) ---")
        print(proc.stderr[-4000:])
    if args.results is None and not args.keep:
        shutil.rmtree(results, ignore_errors=True)
    elif args.keep:
        print(f"\nresults kept in {results}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
