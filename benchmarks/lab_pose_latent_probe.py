"""Do the lab VAE encoder's latents hold the skeleton of a pose map? A decoder-only probe.

    python benchmarks/lab_pose_latent_probe.py [--vae models/lab/vae] [--minutes 9] > benchmarks/results/lab_pose_latent_probe.txt

The lab base reads its pose input as lab-VAE latents of the pose maps. The shipped decoder draws those maps
back poorly (``benchmarks/lab_vae.py`` section 3), but the decoder never saw a pose map; the question is
whether the *encoder's* latents keep the limbs. This trains a copy of the decoder (and ``post_quant_conv``)
alone, with the encoder frozen, on 13-frame pose clips of 24 lab train subjects for ``--minutes`` on one
thread (MSE, AdamW 5e-4, batch 1), and prints, every 100 steps, the PSNR of the 4 lab test subjects' first
77-frame pose chunks over the whole map and over the skeleton's own pixels (any channel above 20). If the
skeleton PSNR stays low while the black background is learned, the encoder's latents do not hold the limbs.
Nothing is saved.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from lab_vae import TEST_SEEDS, pose_round_trip, to_pixels  # noqa: E402  (benchmarks/lab_vae.py)

TRAIN_SEEDS = range(100000, 100024)


def pose_psnr(vae, poses: list[np.ndarray]) -> tuple[float, float]:
    """Mean PSNR over ``poses`` of one trip (``lab_vae.pose_round_trip``): whole map, skeleton pixels."""
    vae.eval()
    trips = [pose_round_trip(vae, pose)[:2] for pose in poses]
    vae.train()
    return tuple(float(v) for v in np.mean(trips, axis=0))


def main() -> None:
    from diffusers import AutoencoderKLWan

    from bench.lab.render import LabClip
    from bench.lab.spec import LAB_VERSION, LabSpec
    from bench.models.wan import onednn_conv3d

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vae", default="models/lab/vae", help="an AutoencoderKLWan folder")
    parser.add_argument("--minutes", type=float, default=9.0, help="decoder training time (default 9)")
    parser.add_argument("--lab-version", default=LAB_VERSION)
    args = parser.parse_args()
    torch.set_num_threads(1)
    vae = AutoencoderKLWan.from_pretrained(args.vae)
    vae.requires_grad_(False)
    vae.decoder.requires_grad_(True)
    vae.post_quant_conv.requires_grad_(True)
    onednn_conv3d(vae, training=True)
    version = args.lab_version
    train = [LabClip(LabSpec(seed=s, size="lab-64", n_frames=400, version=version)) for s in TRAIN_SEEDS]
    test = [LabClip(LabSpec(seed=s, size="lab-64", n_frames=77, version=version)).chunk(0, 77).pose for s in TEST_SEEDS]
    print(f"# decoder-only probe of {args.vae} on {version} pose maps, {args.minutes:g} min on one thread; "
          f"python {platform.python_version()}, torch {torch.__version__}")
    print("  step    loss   whole PSNR  skeleton PSNR   (4 test subjects, 77-frame pose chunks, dB)")
    whole, skeleton = pose_psnr(vae, test)
    print(f"  {0:>4} {'-':>7} {whole:>12.2f} {skeleton:>14.2f}   (shipped decoder)")
    opt = torch.optim.AdamW([p for p in vae.parameters() if p.requires_grad], lr=5e-4)
    rng = np.random.default_rng(0)
    t0, step, loss = time.time(), 0, float("nan")
    while time.time() - t0 < args.minutes * 60:
        clip = train[rng.integers(len(train))]
        start = int(rng.integers(0, 400 - 13))
        x = to_pixels(clip.chunk(start, start + 13).pose)
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mode()
        loss_t = (vae.decode(z).sample - x).square().mean()
        opt.zero_grad()
        loss_t.backward()
        opt.step()
        step, loss = step + 1, loss_t.item()
        if step % 100 == 0:
            whole, skeleton = pose_psnr(vae, test)
            print(f"  {step:>4} {loss:>7.4f} {whole:>12.2f} {skeleton:>14.2f}", flush=True)
    whole, skeleton = pose_psnr(vae, test)
    print(f"  {step:>4} {loss:>7.4f} {whole:>12.2f} {skeleton:>14.2f}   (end)")
    print(f"# {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
