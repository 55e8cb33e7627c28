"""Where each method wins or loses on the lab: PSNR inside and outside the ground-truth person mask.

    python benchmarks/lab_person_region.py [RESULTS] [--seconds 10] > benchmarks/results/lab_person_region.txt

Reads every finished lab-64 rollout under ``RESULTS/runs`` (default ``results``; run ``python -m bench run``
first) and scores its first ``--seconds`` against the lab test subject it was generated for. Printed per
method, averaged over subjects: PSNR over the person pixels (GT mask), over the room pixels, over all pixels
(each the PSNR of the mean squared error over those pixels and frames, so it is not the leaderboard's mean of
per-frame PSNR), frame 0's PSNR, and the share of pixels the person covers.

The static reference copies the room exactly and puts the reference's person where the person was at frame 0;
a method that animates must beat it on the person pixels, while paying its VAE's loss on the room. The oracles
(person from GT through the VAE) give the ceiling a perfect person reaches with this VAE.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def psnr(mse: float) -> float:
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def rollout_errors(rollout, sample, n_frames: int) -> dict:
    """Summed squared errors (all three channels) and pixel counts inside / outside the person mask."""
    from bench.metrics.face import person_room_squared_error
    from bench.metrics.pixel import squared_error_map

    sums = {"person": 0.0, "room": 0.0, "frame0": 0.0}
    counts = {"person": 0, "room": 0, "frame0": 0}
    for start, pred in rollout.iter_frames(n_frames):
        stop = start + len(pred)
        gt = sample.gt(start, stop)
        person_sum, person_n, room_sum, room_n = person_room_squared_error(gt, pred, sample.masks(start, stop))
        sums["person"] += person_sum
        sums["room"] += room_sum
        counts["person"] += person_n
        counts["room"] += room_n
        if start == 0:
            sums["frame0"], counts["frame0"] = int(squared_error_map(gt[:1], pred[:1]).sum()), gt[0].size
    return {"sums": sums, "counts": counts}


def main() -> None:
    from bench.datasets import load_dataset
    from bench.store import Rollout

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="?", default="results", help="a results folder (default: results)")
    parser.add_argument("--seconds", type=float, default=10.0, help="score the first SECONDS (default 10)")
    args = parser.parse_args()

    keys = [(p.parent.parent.name, json.loads(p.read_text())) for p in sorted(Path(args.results, "runs").glob("*/*/key.json"))]
    keys = [(m, k) for m, k in keys if k["payload"].get("resolution") == [64, 64]]
    lengths = sorted({k["payload"]["frames"] for _, k in keys})
    samples = {s.content_hash: s for n in lengths
               for s in load_dataset("lab-test", n_frames=n, cache_root=Path(args.results) / "cache", progress=False)}
    by_method = defaultdict(list)
    for method, key in keys:
        payload = key["payload"]
        sample = samples.get(payload["sample"])
        rollout = Rollout(Path(args.results), method, key["key"], payload)
        n = int(round(args.seconds * payload["fps"]))
        if sample is None or not rollout.is_complete() or payload["frames"] < n:
            continue
        by_method[method].append(rollout_errors(rollout, sample, n))
    print(f"# lab-64 test subjects, first {args.seconds:g} s; PSNR of the mean squared error over the pixels named")
    print(f"{'method':34s} {'n':>2s} {'person':>7s} {'room':>7s} {'all':>7s} {'frame 0':>8s} {'person share':>13s}")
    for tag, rows in sorted(by_method.items()):
        mse = {}
        for part in ("person", "room", "frame0"):
            mse[part] = np.mean([r["sums"][part] / max(r["counts"][part], 1) for r in rows])
        total = np.mean([(r["sums"]["person"] + r["sums"]["room"]) / (r["counts"]["person"] + r["counts"]["room"])
                         for r in rows])
        share = np.mean([r["counts"]["person"] / (r["counts"]["person"] + r["counts"]["room"]) for r in rows])
        print(f"{tag:34s} {len(rows):2d} {psnr(mse['person']):7.2f} {psnr(mse['room']):7.2f} {psnr(total):7.2f} "
              f"{psnr(mse['frame0']):8.2f} {share:13.3f}")


if __name__ == "__main__":
    main()
