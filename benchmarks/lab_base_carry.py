"""How much the lab base (it plays Wan-Animate) relies on its carried frame and on its pose input.

    python benchmarks/lab_base_carry.py [--components lab] > benchmarks/results/lab_base_carry.txt

For each lab test subject, segment 1 of a ``wan_animate`` rollout (pose frames 76..152; the segment's first
frame is the carried one) is generated three times from the same noise, with the carried frame set to:

* ``gt``    the ground-truth frame 76 (what a perfect previous segment would carry);
* ``vae``   frame 76 after one VAE round trip (what a good previous segment carries, decoded);
* ``noise`` uniform random pixels (nothing to continue from; the room must come from the reference slot).

Printed: PSNR and BG-PSNR (outside the GT person mask) of the 76 new frames against the ground truth. A base
that continues from its carried frames, as Wan-Animate does, scores clearly lower with ``noise``; a base that
copies the room from the reference slot scores the same, and cannot show pixel carry-over drift.

Then, with the GT carried frame, the same segment with its pose input changed:

* ``real``   the segment's pose and face frames;
* ``frozen`` the segment's first pose and face frame repeated (the person should stand still);
* ``blank``  an empty pose map;

and, generating nothing, the segment's first GT frame repeated; for segment 1 (carry GT) and for segment 0 (no
carried frame, the person must come from the reference and the pose). Printed: PSNR over the person pixels (GT mask) and over
the room, each of the mean squared error. A base that animates beats ``frozen`` and the repeated frame on the
person by a clear margin.
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
    from bench.animator import plan_chunks
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
        state, chunk, gt, masks, carried = segment_inputs(method, sample, spec, L, r)
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
    pose_reliance(method, samples, plan_chunks(2 * L, L, r)[0], L, r, carry=False)
    pose_reliance(method, samples, spec, L, r, carry=True)
    print(f"# {time.perf_counter() - t0:.0f} s")


def segment_inputs(method, sample, spec, L: int, r: int):
    """Start state, chunk input, GT frames, person masks and the GT carried frame of ``spec`` for ``sample``."""
    from bench.animator import AnimationRequest

    request = AnimationRequest(sample=sample, n_frames=2 * L, fps=25, height=sample.height, width=sample.width,
                               seed=42, pose_padding="reflect")
    chunk = method.chunk_input(request, spec)
    gt = sample.gt(spec.src_start, spec.src_start + L)
    masks = sample.masks(spec.src_start, spec.src_start + L)
    carried = torch.from_numpy(gt[:r]).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
    return method.start(request), chunk, gt, masks, carried


def person_room_mse(frames: np.ndarray, gt: np.ndarray, person: np.ndarray) -> tuple[float, float]:
    from bench.metrics.face import person_room_squared_error

    person_sum, person_n, room_sum, room_n = person_room_squared_error(gt, frames, person)
    return person_sum / person_n, room_sum / room_n


def pose_reliance(method, samples, spec, L: int, r: int, carry: bool) -> None:
    """Person / room PSNR of segment ``spec`` with the real, frozen and blank pose, and of its first GT frame
    repeated; ``carry``: the segment continues from its GT first frame (else it is segment 0, no carry)."""
    from bench.metrics.pixel import psnr_from_mse

    skip = r if carry else 0
    rows: dict[str, list[tuple[float, float]]] = {"real": [], "frozen": [], "blank": [], "first GT frame repeated": []}
    for sample in samples:
        state, chunk, gt, masks, carried = segment_inputs(method, sample, spec, L, r)
        person = masks[skip:]
        variants = {"real": chunk,
                    "frozen": replace(chunk, pose=np.repeat(chunk.pose[:1], L, 0), face=np.repeat(chunk.face[:1], L, 0)),
                    "blank": replace(chunk, pose=np.zeros_like(chunk.pose))}
        for name, c in variants.items():
            gen = torch.Generator("cpu").manual_seed(7)
            start = replace(state, next_chunk=1, carry=carried, generator=gen) if carry else replace(state, generator=gen)
            frames, _ = method.step(start, c)
            rows[name].append(person_room_mse(frames, gt[skip:], person))
        rows["first GT frame repeated"].append(person_room_mse(np.repeat(gt[:1], L - skip, 0), gt[skip:], person))
    where = f"segment {spec.index}, " + ("GT carried frame" if carry else "no carried frame")
    print(f"\n  pose input ({where})  person    room   (PSNR of the mean squared error over subjects, dB)")
    for name, values in rows.items():
        mse = np.array(values).mean(0)
        print(f"  {name:<24} {psnr_from_mse(mse[0]):>7.2f} {psnr_from_mse(mse[1]):>7.2f}")
    person = {name: float(psnr_from_mse(np.array(values).mean(0)[0])) for name, values in rows.items()}
    gain = person["real"] - person["first GT frame repeated"]
    print(f"  person PSNR real - frozen: {person['real'] - person['frozen']:+.2f} dB, real - first GT frame repeated: "
          f"{gain:+.2f} dB ({'animates' if gain >= 1.0 else 'barely follows its pose'})")


if __name__ == "__main__":
    main()
