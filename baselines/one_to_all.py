"""One-to-All Animation (ssj9596/One-to-All-Animation, 14B), run from its official checkout as a subprocess.

Native settings (``video-generation/inference_14b.py``): Wan2.1-T2V-14B + reference extractor + pose
ControlNet; DWPose 2D maps with alignment-free retargeting (``infer_preprocess.py``); short side capped at
576 and rounded down to a multiple of 16; 30 steps; image cfg 2.0 / pose cfg 1.5; seed 42 (fixed in the
script); frame rate = the pose video's; long videos by chunks of 81 frames, the 5 decoded frames of the
previous chunk replacing the first tokens of the next ("token replace"), done inside the official worker.

Subprocess contract (one run for the whole video):
- job folder ``<workdir>/one_to_all/<sample>-n<frames>-s<seed>/w0000/`` with ``cache/image_input.png``
  (reference), ``cache/pose.mp4`` (pose maps at 25 fps), ``cache/pose_input.png`` (the reference's pose),
  ``cache/mask_input.png`` (the reference's person mask), ``driver.py`` and ``job.json``;
- command ``<python> driver.py job.json``: the driver imports ``inference_14b`` from
  ``<checkout>/video-generation`` (working directory there, so its relative config paths resolve), sets its
  globals ``model_path``, ``vae_path``, ``output_base_dir``, ``max_short`` and calls
  ``unified_worker(0, 1, [(job, cache, "", "", image_cfg, pose_cfg, prompt)], ckpt_path)`` (one GPU, no spawn);
- expected back: ``out/<date>_ref_<cfg>_pose_<cfg>/<job>_ref_<cfg>_pose_<cfg>/frame_000000.png ...``, one
  PNG per pose frame at the reference's size (short side <= 576, multiples of 16).

Adaptations (recorded): benchmark pose maps in place of DWPose + retargeting (same-source samples); the
reference pose is the first frame's pose map; the mask is the sample's first person mask or, without
masks, the whole frame; the request seed is not used (the script fixes 42); output resized to the request.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from baselines.external import (OfficialCodeAnimator, OfficialCodeConfig, Requirement, WindowContext,
                                check_native_frames, native_poses, sha256_cached, write_driver_job, write_image)
from bench.errors import MethodError

ENTRY = "video-generation/inference_14b.py"
BASE_MODEL = "Wan2.1-T2V-14B-Diffusers"
CHECKPOINT = "One-to-All-14b"


def official_size(height: int, width: int, max_short: int) -> tuple[int, int]:
    """The official script's output size for a reference of ``height x width``."""
    h, w = float(height), float(width)
    if min(h, w) > max_short:
        h, w = (max_short, int(w * max_short / h)) if h < w else (int(h * max_short / w), max_short)
    return int(h // 16 * 16), int(w // 16 * 16)


@dataclass(frozen=True)
class OneToAllConfig(OfficialCodeConfig):
    """The runtime paths, then the identity settings at their native values."""

    image_cfg: float = 2.0
    pose_cfg: float = 1.5
    max_short: int = 576
    prompt: str = ""


class OneToAll(OfficialCodeAnimator):
    name = "one_to_all"
    version = "1"
    description = "One-to-All Animation 14B, official worker with 5-frame token replace between 81-frame chunks"
    repo_url = "https://github.com/ssj9596/One-to-All-Animation"
    env_prefix = "ONE_TO_ALL"
    native_fps = 25.0  # the script keeps the pose video's frame rate; the benchmark feeds 25 fps
    native_window = 0
    Config = OneToAllConfig
    native_settings: ClassVar[dict] = {"base_model": BASE_MODEL, "checkpoint": CHECKPOINT, "steps": 30,
                                       "image_cfg": 2.0, "pose_cfg": 1.5, "max_short": 576, "seed": 42,
                                       "chunk_frames": 81, "token_replace_frames": 5, "prompt": ""}
    failure_fix = ("run `python driver.py job.json` in the logged job folder with the One-to-All environment; check "
                   "that the checkout is ssj9596/One-to-All-Animation and its requirements are installed")

    def base_dir(self) -> Path:
        return self.weights / "pretrained_models" if (self.weights / "pretrained_models").is_dir() else self.weights

    def ckpt_dir(self) -> Path:
        return self.weights / "checkpoints" if (self.weights / "checkpoints").is_dir() else self.weights

    def requirements(self) -> list[Requirement]:
        reqs = self.base_requirements(ENTRY)
        if self.weights is None:
            return reqs
        fix = (f"download Wan-AI/Wan2.1-T2V-14B-Diffusers and MochunniaN1/One-to-All-14b into {self.weights} "
               f"(as <weights>/{BASE_MODEL} and <weights>/{CHECKPOINT}, or the checkout's pretrained_models/ and "
               f"checkpoints/ folders), or set {self.env_prefix}_WEIGHTS")
        reqs.append(Requirement("weights: base model", self.base_dir() / BASE_MODEL / "model_index.json", "file", fix))
        reqs.append(Requirement("weights: vae", self.base_dir() / BASE_MODEL / "vae" / "config.json", "file", fix))
        reqs.append(Requirement("weights folder: checkpoint", self.ckpt_dir() / CHECKPOINT, "dir", fix))
        return reqs

    def weight_fingerprints(self) -> dict[str, str]:
        out = super().weight_fingerprints()
        if self.weights is not None:
            for shard in sorted((self.ckpt_dir() / CHECKPOINT).glob("*.safetensors")):
                out[f"checkpoint/{shard.name}"] = sha256_cached(shard)
        return out

    def run_window(self, ctx: WindowContext) -> np.ndarray:
        from bench.video import write_video

        request, job, sample = ctx.request, ctx.job_dir, ctx.request.sample
        args = self.identity_args
        # 1. the input cache the official preprocessing would write
        cache = job / "cache"
        reference = sample.references()[0]
        write_image(cache / "image_input.png", reference)
        poses = native_poses(self, request, 0, ctx.count, self.native_fps)
        even = poses.shape[1] % 2 == 0 and poses.shape[2] % 2 == 0
        write_video(cache / "pose.mp4", poses, self.native_fps, lossless=not even)
        write_image(cache / "pose_input.png", sample.pose(0, 1)[0])
        masks = sample.masks(0, 1)
        mask = (masks[0] * 255).astype(np.uint8) if masks is not None else np.full(reference.shape[:2], 255, np.uint8)
        write_image(cache / "mask_input.png", np.repeat(mask[..., None], 3, axis=2))
        self.record("pose", "benchmark pose maps (OpenPose-18 skeleton) used in place of DWPose + retargeting from "
                    "infer_preprocess.py; reference pose = the first frame's pose map")
        if masks is None:
            self.record("mask", "the sample has no person masks: the reference mask covers the whole frame")
        self.record("seed", "the official worker seeds every chunk with 42; the request seed is not used", seed=42)
        # 2. the official worker, called by the driver
        out_dir = job / "out"
        settings = {"model_path": str(self.base_dir() / BASE_MODEL), "vae_path": str(self.base_dir() / BASE_MODEL / "vae"),
                    "output_base_dir": str(out_dir), "max_short": int(args["max_short"])}
        task = ["job", str(cache), "", "", float(args["image_cfg"]), float(args["pose_cfg"]), str(args["prompt"])]
        job_file = write_driver_job(job, {"mode": "call", "module_dir": str(self.checkout / "video-generation"),
                                          "module": "inference_14b", "cwd": str(self.checkout / "video-generation"),
                                          "settings": settings, "function": "unified_worker",
                                          "args": [0, 1, [task], str(self.ckpt_dir() / CHECKPOINT)]})
        self.run([self.python, job / "driver.py", job_file], ctx, cwd=self.checkout / "video-generation")
        # 3. collect the per-frame PNGs
        files = sorted(glob.glob(str(out_dir / "*" / "job_ref_*_pose_*" / "frame_*.png")))
        if not files:
            raise MethodError(f"{self.name}: the official worker wrote no frames under {out_dir}", fix=self.failure_fix)
        from PIL import Image

        frames = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files[:ctx.count]])
        size = official_size(reference.shape[0], reference.shape[1], int(args["max_short"]))
        return check_native_frames(self.name, frames, ctx.count, [size], str(out_dir), self.failure_fix)
