"""How much the lab base (it plays Wan-Animate) relies on its carried frame: carry GT vs carry noise.

    python benchmarks/lab_base_carry.py [--components lab] > benchmarks/results/lab_base_carry.txt

For each lab test subject, segment 1 of a ``wan_animate`` rollout (pose frames 76..152; the segment's first
frame is the carried one) is generated three times from the same noise, with the carried frame set to:

* ``gt``    the ground-truth frame 76 (what a perfect previous segment would carry);
* ``vae``   frame 76 after one VAE round trip (what a good previous segment carries, decoded);
* ``noise`` uniform random pixels (nothing to continue from; the room must come from the reference slot).

Printed: PSNR and BG-PSNR (outside the GT person mask) of the 76 new frames against the ground truth. A base
that continues from its carried frames, as Wan-Animate does, scores clearly lower with ``noise``; a base that
copies the room from the reference slot scores the same, and cannot show pixel carry-over drift.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", default="lab", help="wan_animate components ('lab') ...")
    parser.add_argument("--model-dir", default=None, help="... or a components folder")
    parser.add_argument("--steps", type=int, default=12, help="sampling steps (default: the lab preset's 12)")
    parser.add_argument("--size", default="lab-64")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from baselines.wan_animate import WanAnimate
    from bench.animator import AnimationRequest, plan_chunks
    from bench.datasets import load_dataset
    from bench.metrics.face import background_psnr_per_frame
    from bench.metrics.pixel import psnr_per_frame
    from bench.models.wan import vae_decode, vae_encode

    method = WanAnimate(steps=args.steps,
                        **({"model_dir": args.model_dir} if args.model_dir else {"components": args.components}))
    method.load("cpu")
    samples = load_dataset("lab-test", n_frames=160, size=args.size, cache_root="results/cache", progress=False)
    L, r = method.config.chunk_frames, method.config.refert_num
    spec = plan_chunks(2 * L, L, r)[1]
    print(f"# lab base carry reliance: {method.components.source}; {args.steps} steps; {len(samples)} lab test "
          f"subjects, segment 1 "
          f"(frames {spec.src_start}..{spec.src_start + L - 1}), same noise for every carry")
    print(f"# python {platform.python_version()}, torch {torch.__version__}, one thread")
    t0 = time.perf_counter()
    results: dict[str, list[tuple[float, float]]] = {"gt": [], "vae": [], "noise": []}
    for sample in samples:
        request = AnimationRequest(sample=sample, n_frames=2 * L, fps=25, height=sample.height, width=sample.width,
                                   seed=42, pose_padding="reflect")
        state = method.start(request)
        chunk = method.chunk_input(request, spec)
        gt = sample.gt(spec.src_start, spec.src_start + L)
        masks = sample.masks(spec.src_start, spec.src_start + L)
        carried = torch.from_numpy(gt[:r]).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
        with torch.no_grad():
            carries = {"gt": carried, "vae": vae_decode(method.components.vae, vae_encode(method.components.vae, carried)),
                       "noise": torch.rand(carried.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1}
        for name, carry in carries.items():
            start = replace(state, next_chunk=1, carry=carry, generator=torch.Generator("cpu").manual_seed(7))
            frames, _ = method.step(start, chunk)
            results[name].append((psnr_per_frame(gt[r:], frames).mean(),
                                  np.nanmean(background_psnr_per_frame(gt[r:], frames, masks[r:]))))
    print("\n  carry     PSNR  BG-PSNR   (mean over subjects, dB)")
    for name, values in results.items():
        arr = np.array(values)
        print(f"  {name:<6} {arr[:, 0].mean():>7.2f} {arr[:, 1].mean():>8.2f}")
    gap = np.array(results["gt"])[:, 1].mean() - np.array(results["noise"])[:, 1].mean()
    print(f"\n  BG-PSNR gt - noise: {gap:+.2f} dB "
          f"({'relies on its carried frame' if gap >= 1.0 else 'barely uses its carried frame'})")
    print(f"# {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
