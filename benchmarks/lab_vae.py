"""The lab VAE on held-out lab test chunks: reconstruction quality and the loss per pixel round trip.

    python benchmarks/lab_vae.py [--vae models/lab/vae] > benchmarks/results/lab_vae.txt

1. Reconstruction: 77-frame chunks of the 4 lab test subjects (never seen in training; the train split uses
   seeds >= 100000) at 0 s, 30 s and 60 s, each encoded (posterior mode) and decoded once as one clip.
   PSNR (float64 on [0, 255] after rounding to uint8, per frame, mean) and SSIM (the protocol's Gaussian
   11x11 SSIM, bench.metrics) against the ground truth. Targets: >= 28 dB and >= 0.85.
2. Round trips: what compounds in a pixel carry-over rollout. ``image``: one frame encoded alone and decoded,
   the decode encoded again, 18 times; ``video``: a whole 77-frame chunk through decode -> encode 18 times.
   PSNR against the original after 1, 6 and 18 trips (18 is a 60 s rollout's chunk count) must fall.
3. Pose maps: the base's pose input is these chunks' pose maps encoded by the same VAE (as in Wan-Animate).
   PSNR of one trip over the whole map and over the skeleton's own pixels (any channel above 20): what the
   decoder can still draw of the limbs is a proxy for what the pose latents hold of them.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.lab.render import LabClip  # noqa: E402
from bench.lab.spec import LAB_VERSION, LabSpec  # noqa: E402
from bench.lab.splits import TEST_SEEDS  # noqa: E402
from bench.lab.training import frames_to_pixels  # noqa: E402

CHUNK = 77
STARTS = (0, 750, 1500)
TRIPS = (1, 6, 18)


def to_pixels(frames: np.ndarray) -> torch.Tensor:
    return frames_to_pixels(frames)[None]


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(((pixels[0].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 3, 0).to(torch.uint8).numpy())


def psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    from bench.metrics.pixel import psnr_per_frame

    return float(np.mean(psnr_per_frame(gt, pred)))


def ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    from bench.metrics.pixel import ssim_per_frame

    return float(np.mean(ssim_per_frame(gt, pred)))


@torch.no_grad()
def trip(vae, pixels: torch.Tensor) -> torch.Tensor:
    return vae.decode(vae.encode(pixels).latent_dist.mode()).sample.clamp(-1, 1)


def pose_round_trip(vae, pose: np.ndarray) -> tuple[float, float, float]:
    """One trip of a pose map chunk: PSNR over the whole map, PSNR over its skeleton pixels (any channel above
    20), and the skeleton's share of the pixels."""
    rec = to_uint8(trip(vae, to_pixels(pose)))
    drawn = pose.max(-1) > 20
    err = np.square(rec.astype(np.float64) - pose.astype(np.float64))
    return psnr(rec, pose), float(10 * np.log10(255.0 ** 2 / err[drawn].mean())), float(drawn.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vae", default="models/lab/vae", help="an AutoencoderKLWan folder")
    parser.add_argument("--lab-version", default=LAB_VERSION)
    args = parser.parse_args()
    from diffusers import AutoencoderKLWan

    torch.set_num_threads(1)
    vae = AutoencoderKLWan.from_pretrained(args.vae).eval()
    cfg = vae.config
    print(f"# lab VAE benchmark: {args.vae} ({sum(p.numel() for p in vae.parameters()) / 1e6:.2f} M parameters, "
          f"z {cfg.z_dim}, {2 ** len(cfg.temperal_downsample)}x spatial, {2 ** sum(cfg.temperal_downsample)}x temporal)")
    print(f"# {args.lab_version} test subjects {TEST_SEEDS} at lab-64, chunks of {CHUNK} frames at {STARTS}; "
          f"python {platform.python_version()}, torch {torch.__version__}, one thread")
    t0 = time.perf_counter()
    rows, psnrs, ssims = [], [], []
    clips = {}
    for seed in TEST_SEEDS:
        clip = LabClip(LabSpec(seed=seed, size="lab-64", n_frames=STARTS[-1] + CHUNK, version=args.lab_version))
        clips[seed] = clip
        for start in STARTS:
            gt = clip.chunk(start, start + CHUNK).gt
            rec = to_uint8(trip(vae, to_pixels(gt)))
            p, s = psnr(rec, gt), ssim(rec, gt)
            psnrs.append(p)
            ssims.append(s)
            rows.append(f"{seed:>6} {start / 25:>6.0f}s {p:>9.2f} {s:>7.3f}")
    print("\n## reconstruction of held-out 77-frame chunks (one trip)")
    print("  seed  start  PSNR(dB)    SSIM")
    print("\n".join(rows))
    verdict = "met" if np.mean(psnrs) >= 28 and np.mean(ssims) >= 0.85 else "NOT met"
    print(f"  mean          {np.mean(psnrs):>8.2f} {np.mean(ssims):>7.3f}   target >= 28 dB and >= 0.85: {verdict}")

    print("\n## loss per round trip (decode -> encode again), PSNR vs the original (dB)")
    print("  mode    " + "".join(f"{f'after {n}':>10}" for n in TRIPS))
    for mode in ("image", "video"):
        values = {n: [] for n in TRIPS}
        for seed, clip in clips.items():
            gt = clip.chunk(0, CHUNK).gt
            x = to_pixels(gt[:1] if mode == "image" else gt)
            ref = gt[:1] if mode == "image" else gt
            for n in range(1, TRIPS[-1] + 1):
                x = trip(vae, x)
                if n in values:
                    values[n].append(psnr(to_uint8(x), ref))
        print(f"  {mode:<8}" + "".join(f"{np.mean(values[n]):>10.2f}" for n in TRIPS))

    print("\n## pose maps (the base's pose input) through the same VAE, one trip, PSNR (dB)")
    print("  seed  start   whole  skeleton pixels  skeleton share")
    whole, skeleton = [], []
    for seed, clip in clips.items():
        for start in STARTS:
            w, k, share = pose_round_trip(vae, clip.chunk(start, start + CHUNK).pose)
            whole.append(w)
            skeleton.append(k)
            print(f"{seed:>6} {start / 25:>6.0f}s {w:>7.2f} {k:>16.2f} {share:>15.3f}")
    print(f"  mean          {np.mean(whole):>7.2f} {np.mean(skeleton):>16.2f}")
    print(f"\n# {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
