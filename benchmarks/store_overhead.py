"""Run-store overhead per chunk vs the work the chunk stores, measured side by side in one run.

Per chunk the store encodes the new frames losslessly, hashes them, saves the resume state and writes the
chunk record (all atomically). The work it stores:

* lab-64: one real chunk of the lab's ``wan_animate`` (the small diffusers components the lab preset runs:
  20 denoising steps, VAE encode/decode, face and pose conditioning), measured in this run;
* 480x832: the VAE decode of the chunk with the real Wan VAE architecture (``AutoencoderKLWan`` default
  config, random weights) - a lower bound on any Wan-based method's per-chunk cost (the 14B DiT's 20
  steps come on top of it).

    python benchmarks/store_overhead.py            # writes nothing; prints the table
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.store import Rollout, rollout_key


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def store_chunk_seconds(height: int, width: int, frames: int, latent_shape: tuple[int, ...]) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    state = {"last_latent": torch.randn(latent_shape), "anchors": torch.randn(4, *latent_shape[1:]),
             "rng": torch.Generator().get_state(), "config_hash": "0" * 64}
    with tempfile.TemporaryDirectory() as tmp:
        key, payload = rollout_key("bench", "1", {}, {}, "s", frames * 10, 25, height, width, 0)
        rollout = Rollout(Path(tmp), "bench", key, payload)
        rollout.ensure_key()
        counter = iter(range(1000))
        write = timed(lambda: rollout.write_chunk(next(counter), 0, video, 25, state))
        scan = timed(lambda: rollout.chunk_records(verify=True))
    return write, scan


def vae_decode_seconds(height: int, width: int, latent_slices: int) -> float:
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    vae = AutoencoderKLWan().eval()
    z = torch.randn(1, 16, latent_slices, height // 8, width // 8)
    with torch.no_grad():
        return timed(lambda: vae.decode(z).sample, repeat=1)


def lab_chunk_seconds() -> float:
    """Wall time of chunk 1 (a carry-over chunk) of the lab preset's wan_animate on a lab test sample."""
    from bench.animator import AnimationRequest
    from bench.datasets import load_dataset
    from baselines.wan_animate import WanAnimate

    with tempfile.TemporaryDirectory() as tmp:
        sample = load_dataset("lab-test", n_frames=250, cache_root=Path(tmp), progress=False)[0]
        animator = WanAnimate(components="tiny-random")
        animator.load("cpu")
        request = AnimationRequest(sample=sample, n_frames=250, fps=25, height=sample.height, width=sample.width,
                                   seed=42)
        times = []

        def sink(spec, frames, state):
            times.append(time.perf_counter())

        start = time.perf_counter()
        animator.generate(request, sink)
        times.insert(0, start)
    return min(b - a for a, b in zip(times[1:], times[2:]))  # carry-over chunks, best of them


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"store overhead benchmark - {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} threads")
    rows = []
    # lab-64: one chunk of the lab's wan_animate (the work the lab preset stores)
    new_frames = 73
    write, scan = store_chunk_seconds(64, 64, new_frames, (16, 1, 8, 8))
    chunk = lab_chunk_seconds()
    rows.append(("lab-64 (64x64)", write, scan, chunk, "work = one lab wan_animate chunk (measured)"))
    # 480x832: decode 2 latent slices (5 frames) and scale per frame to the 77-frame chunk
    write, scan = store_chunk_seconds(480, 832, new_frames, (16, 1, 60, 104))
    short = vae_decode_seconds(480, 832, 2)
    decode = short / 5 * 77
    rows.append(("480x832", write, scan, decode, "2 latent slices measured (5 frames), x 77/5"))
    print(f"\n{'size':16s} {'store write/chunk':>18s} {'resume scan':>12s} {'work/chunk':>12s} "
          f"{'store/work':>11s}  note")
    for name, write, scan, work, note in rows:
        print(f"{name:16s} {write * 1e3:15.1f} ms {scan * 1e3:9.1f} ms {work:10.2f} s  {write / work:10.1%}  {note}")
    print("\nThe store's cost is the lossless encode + sha256 of the chunk's new frames (73 per chunk) and the "
          "resume state, written atomically.")


if __name__ == "__main__":
    main()
