"""Teacher-forced x0 of the lab base on segment 0 vs copying the reference (why frame 0 looks like noise).

    python benchmarks/lab_base_copy.py [COMPONENTS_DIR]   # default: the shipped lab base

For the first two lab test subjects: decoded segment-0 PSNR of frame 0 and frames 1-8, then the latent MSE
of ``x0 = x_sigma - sigma v`` against the ground truth's latents at sigma 1.0 / 0.9 / 0.5 / 0.2, per slot
(reference slot, slice 1 = the one-frame first latent, slices 2+), beside two copies: the reference image's
latents (slice 1) and a static video of the reference (slices 2+). Output: benchmarks/results/lab_base_width.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@torch.no_grad()
def main() -> None:
    torch.set_num_threads(1)
    from baselines.wan_animate import WanAnimate
    from bench.animator import AnimationRequest, plan_chunks
    from bench.datasets import load_dataset
    from bench.metrics.pixel import psnr_per_frame
    from bench.models import wan

    model_dir = sys.argv[1] if len(sys.argv) > 1 else None
    method = WanAnimate(**({"model_dir": model_dir, "dtype": "float32"} if model_dir else {"components": "lab"}))
    method.load("cpu")
    comps, vae, L = method.components, method.components.vae, 77
    print(f"# {comps.source}")
    samples = load_dataset("lab-test", n_frames=160, size="lab-64", cache_root="results/cache", progress=False)[:2]
    for s in samples:
        request = AnimationRequest(sample=s, n_frames=2 * L, fps=25, height=64, width=64, seed=42,
                                   pose_padding="reflect")
        state, spec = method.start(request), plan_chunks(2 * L, L, 1)[0]
        chunk = method.chunk_input(request, spec)
        frames, _ = method.step(state, chunk)
        gt = s.gt(0, L)
        p = psnr_per_frame(gt, frames)
        print(f"{s.id} segment 0 decoded PSNR: frame 0 {p[0]:.2f}, frames 1-4 {p[1:5].mean():.2f}, "
              f"5-8 {p[5:9].mean():.2f}, all {p.mean():.2f} dB")
        x0 = wan.vae_encode(vae, wan.video_pixels(gt, 64, 64))
        cond = torch.cat([state.reference, wan.carry_condition(vae, None, L, 64, 64, 1, known=False)], 2)
        pose = wan.pose_latents(vae, wan.video_pixels(chunk.pose, 64, 64))
        face = wan.video_pixels(chunk.face, comps.motion_encoder_size, comps.motion_encoder_size)
        ref = state.reference[:, -x0.shape[1]:]
        full = torch.cat([ref, x0], 2)
        eps = torch.randn(full.shape, generator=torch.Generator().manual_seed(0))
        for sigma in (1.0, 0.9, 0.5, 0.2):
            noisy = (1 - sigma) * full + sigma * eps
            v = comps.transformer(hidden_states=torch.cat([noisy, cond], 1), timestep=torch.tensor([sigma * 1000.0]),
                                  encoder_hidden_states=state.prompt_embeds, encoder_hidden_states_image=state.clip,
                                  pose_hidden_states=pose, face_pixel_values=face, return_dict=False)[0]
            err = ((noisy - sigma * v - full) ** 2).mean(dim=(0, 1, 3, 4))
            print(f"  sigma {sigma}: x0 latent MSE reference slot {err[0]:.3f}, slice 1 {err[1]:.3f}, "
                  f"slices 2+ {err[2:].mean():.3f}")
        static = wan.vae_encode(vae, wan.video_pixels(np.repeat(s.references()[0][None], L, 0), 64, 64))
        print(f"  copies: reference latents at slice 1 {((ref[:, :, 0] - x0[:, :, 0]) ** 2).mean():.3f}; "
              f"static reference video at slices 2+ {((static[:, :, 1:] - x0[:, :, 1:]) ** 2).mean():.3f}")


if __name__ == "__main__":
    main()
