"""Do the lab VAE encoder's latents hold the skeleton of a pose map? A decoder-only probe, and a whole-VAE one.

    python benchmarks/lab_pose_latent_probe.py [--vae models/lab/vae] [--minutes 9] > benchmarks/results/lab_pose_latent_probe.txt
    python benchmarks/lab_pose_latent_probe.py --train vae --minutes 15 > benchmarks/results/lab_pose_vae_probe.txt

The lab base reads its pose input as lab-VAE latents of the pose maps. The shipped decoder draws those maps
back poorly (``benchmarks/lab_vae.py`` section 3), but the decoder never saw a pose map; the question is
whether the *encoder's* latents keep the limbs. This trains a copy of the decoder (and ``post_quant_conv``)
alone, with the encoder frozen, on 13-frame pose clips of 24 lab train subjects for ``--minutes`` on one
thread (MSE, AdamW 5e-4, batch 1), and prints, every 100 steps, the PSNR of the 4 lab test subjects' first
77-frame pose chunks over the whole map and over the skeleton's own pixels (any channel above 20). If the
skeleton PSNR stays low while the black background is learned, the encoder's latents do not hold the limbs.

``--train vae``: the whole VAE (encoder too) fine-tuned on 13-frame clips of the same train subjects, a lab
frame clip and a pose clip in turn, and the frames of the test chunks watched as well: could a lab VAE that
also learns pose maps keep its 28 dB on frames (lab v4's candidate)? Nothing is saved.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from lab_vae import TEST_SEEDS, pose_round_trip, psnr, to_pixels, to_uint8, trip  # noqa: E402  (benchmarks/lab_vae.py)

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
    parser.add_argument("--train", choices=("decoder", "vae"), default="decoder",
                        help="decoder: the decoder alone on pose maps (default); "
                             "vae: the whole VAE on frames and pose maps")
    args = parser.parse_args()
    torch.set_num_threads(1)
    whole_vae = args.train == "vae"
    vae = AutoencoderKLWan.from_pretrained(args.vae)
    vae.requires_grad_(whole_vae)
    vae.decoder.requires_grad_(True)
    vae.post_quant_conv.requires_grad_(True)
    onednn_conv3d(vae, training=True)
    version = args.lab_version
    train = [LabClip(LabSpec(seed=s, size="lab-64", n_frames=400, version=version)) for s in TRAIN_SEEDS]
    chunks = [LabClip(LabSpec(seed=s, size="lab-64", n_frames=77, version=version)).chunk(0, 77) for s in TEST_SEEDS]
    test = [c.pose for c in chunks]
    frames = [c.gt for c in chunks] if whole_vae else []
    what = "whole-VAE probe (frames and pose maps in turn)" if whole_vae else "decoder-only probe"
    print(f"# {what} of {args.vae} on {version}, {args.minutes:g} min on one thread; "
          f"python {platform.python_version()}, torch {torch.__version__}")
    print("  step    loss   whole PSNR  skeleton PSNR" + ("   frames PSNR" if whole_vae else "")
          + "   (4 test subjects, 77-frame chunks, dB)")

    def report(step, loss, note=""):
        whole, skeleton = pose_psnr(vae, test)
        line = f"  {step:>4} {loss:>7} {whole:>12.2f} {skeleton:>14.2f}"
        if whole_vae:
            vae.eval()
            line += f" {np.mean([psnr(to_uint8(trip(vae, to_pixels(f))), f) for f in frames]):>13.2f}"
            vae.train()
        print(line + (f"   ({note})" if note else ""), flush=True)

    report(0, "-", "shipped VAE")
    opt = torch.optim.AdamW([p for p in vae.parameters() if p.requires_grad], lr=1e-4 if whole_vae else 5e-4)
    rng = np.random.default_rng(0)
    t0, step, loss = time.time(), 0, float("nan")
    while time.time() - t0 < args.minutes * 60:
        clip = train[rng.integers(len(train))]
        start = int(rng.integers(0, 400 - 13))
        part = clip.chunk(start, start + 13)
        x = to_pixels(part.gt if whole_vae and step % 2 else part.pose)
        with torch.set_grad_enabled(whole_vae):
            z = vae.encode(x).latent_dist.mode()
        loss_t = (vae.decode(z).sample - x).square().mean()
        opt.zero_grad()
        loss_t.backward()
        opt.step()
        step, loss = step + 1, loss_t.item()
        if step % 100 == 0:
            report(step, f"{loss:.4f}")
    report(step, f"{loss:.4f}", "end")
    print(f"# {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
