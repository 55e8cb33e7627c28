"""Lab rendering speed (the lab's data loader) vs lossless encoding of the same frames, on one core.

    python benchmarks/lab_render_speed.py > benchmarks/results/lab_render_speed.txt

"render" = everything a sample holds per frame: GT frame, person mask, keypoint visibility, pose map and face
crop. "encode" = writing those GT frames with the lossless writer the lab uses (libx264rgb, qp 0).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.lab.render import LabClip  # noqa: E402
from bench.lab.spec import LabSpec  # noqa: E402
from bench.video import VideoWriter  # noqa: E402


def best_fps(fn, n_frames: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n_frames / best


def main() -> None:
    cv2.setNumThreads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    print(f"# lab render speed, one core; python {platform.python_version()}, opencv {cv2.__version__}, "
          f"{platform.machine()}, best of 3")
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
        print(f"# machine: {os.cpu_count()} cores, load average {load:.1f} when started"
              + (" (other work was running: numbers are pessimistic)" if load > 1.5 else ""))
    print(f"{'size':>9} {'frames':>7} {'render fps':>11} {'encode fps':>11} {'render/encode':>14}")
    for size, n in (("lab-64", 2000), ("lab-128", 500), ("lab-480p", 60)):
        spec = LabSpec(seed=1001, size=size, n_frames=n)

        def render():
            clip = LabClip(spec)  # includes building textures, background and the motion
            return clip.chunk(0, n)

        render_fps = best_fps(render, n, 3)
        frames = render().gt
        with tempfile.TemporaryDirectory() as tmp:
            def encode():
                with VideoWriter(Path(tmp) / "gt.mp4", 25) as writer:
                    writer.write(frames)

            encode_fps = best_fps(encode, n, 3)
        print(f"{size:>9} {n:>7} {render_fps:>11.0f} {encode_fps:>11.0f} {render_fps / encode_fps:>14.2f}")


if __name__ == "__main__":
    main()
