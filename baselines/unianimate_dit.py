"""UniAnimate-DiT (ali-vilab/UniAnimate-DiT), run from its official checkout as a subprocess.

Native settings (official long-video script ``examples/unianimate_wan/inference_unianimate_wan_long_video_480p.py``):
Wan2.1-I2V-14B-720P + the UniAnimate LoRA and pose embedders; 832x480 (H x W, portrait); 50 steps, cfg 1.5,
prompt "a person is dancing" (all fixed inside the script); DWPose 2D maps (body, hands, feet) aligned to the
reference pose by ``run_align_pose.py``; long videos by sliding context windows of 21 latents with overlap 4,
all denoised at every step and averaged (the whole video in one run, no resume); saved at 15 fps as a
side-by-side ``[reference | pose | generated]`` video.

Subprocess contract (one run for the whole video):
- job folder ``<workdir>/unianimate_dit/<sample>-n<frames>-s<seed>/w0000/`` with
  ``data/images/ref.png`` (the sample's canonical reference), ``data/saved_pose/ref/0000.png ...`` (one pose
  map per native frame at 15 fps) and ``data/saved_pose/ref/pose.jpg`` (the reference's pose),
  symlinks ``Wan2.1-I2V-14B-720P`` and ``checkpoints`` into the weights folder (the script loads them by
  relative path), ``driver.py`` and ``job.json``;
- command ``<python> driver.py job.json`` in the job folder: the driver executes the official script with its
  top-level settings ``height``, ``width``, ``seed``, ``use_teacache`` and ``test_list_path`` replaced (the
  edits its README asks for), the checkout on ``sys.path``;
- expected back: ``outputs/video_480P_long_ref.png_ref.mp4``, at least as many frames as pose maps, each
  ``height x 3*width``; the right third is the generated frame.

Adaptations (recorded): benchmark pose maps (OpenPose-18 skeletons) in place of DWPose maps aligned by
``run_align_pose.py`` (same-source samples: the driving pose is already the reference person's); the
reference pose is the first frame's pose map; pose resampled 25 -> 15 fps and output 15 -> 25 fps by
frame-index mapping; aspect change when the sample is not 832x480-shaped; output cropped from the
side-by-side video and resized to the request size.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from baselines.external import (OfficialCodeAnimator, OfficialCodeConfig, Requirement, WindowContext, native_poses,
                                read_video_checked, write_driver_job, write_frame_folder, write_image)

ENTRY = "examples/unianimate_wan/inference_unianimate_wan_long_video_480p.py"
BASE_MODEL = "Wan2.1-I2V-14B-720P"
BASE_FILES = ["models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth", "models_t5_umt5-xxl-enc-bf16.pth",
              "Wan2.1_VAE.pth"] + [f"diffusion_pytorch_model-{i:05d}-of-00007.safetensors" for i in range(1, 8)]
LORA = "checkpoints/UniAnimate-Wan2.1-14B-Lora-12000.ckpt"


@dataclass(frozen=True)
class UniAnimateDiTConfig(OfficialCodeConfig):
    """The runtime paths, then the identity settings at their native values."""

    height: int = 832
    width: int = 480
    script: str = ENTRY  # the official long-video script, relative to the checkout


class UniAnimateDiT(OfficialCodeAnimator):
    name = "unianimate_dit"
    version = "1"
    description = "UniAnimate-DiT (Wan2.1-I2V-14B + LoRA), official long-video script with sliding context windows"
    repo_url = "https://github.com/ali-vilab/UniAnimate-DiT"
    env_prefix = "UNIANIMATE_DIT"
    native_fps = 15.0
    native_window = 0  # the official script handles any length itself
    Config = UniAnimateDiTConfig
    native_settings: ClassVar[dict] = {"base_model": BASE_MODEL, "lora": LORA, "height": 832, "width": 480,
                                       "steps": 50, "cfg": 1.5, "fps": 15, "context_size_latents": 21,
                                       "context_overlap_latents": 4, "prompt": "a person is dancing"}
    failure_fix = ("run `python driver.py job.json` in the logged job folder with the UniAnimate-DiT environment; "
                   "check that the checkout is ali-vilab/UniAnimate-DiT and `pip install -e .` was run there")

    def requirements(self) -> list[Requirement]:
        reqs = self.base_requirements(self.identity_args["script"])
        if self.weights is None:
            return reqs
        fix = (f"download Wan-AI/Wan2.1-I2V-14B-720P into {self.weights / BASE_MODEL} and ZheWang123/UniAnimate-DiT "
               f"into {self.weights / 'checkpoints'} (or set {self.env_prefix}_WEIGHTS)")
        reqs.append(Requirement("weights folder", self.weights, "dir", fix))
        reqs += [Requirement(f"weights: {BASE_MODEL}/{f}", self.weights / BASE_MODEL / f, "file", fix) for f in BASE_FILES]
        reqs.append(Requirement("weights: lora", self.weights / LORA, "file", fix))
        return reqs

    def run_window(self, ctx: WindowContext) -> np.ndarray:
        request, job = ctx.request, ctx.job_dir
        height, width = int(self.identity_args["height"]), int(self.identity_args["width"])
        # 1. inputs: reference, one pose map per native frame, the reference's pose
        poses = native_poses(self, request, 0, ctx.count, self.native_fps)
        write_image(job / "data/images/ref.png", request.sample.references()[0])
        pose_dir = job / "data/saved_pose/ref"
        write_frame_folder(pose_dir, poses, "{:04d}.png")
        write_image(pose_dir / "pose.jpg", request.sample.pose(0, 1)[0])
        self.record("pose", "benchmark pose maps (OpenPose-18 skeleton) used in place of DWPose maps aligned by "
                    "run_align_pose.py; reference pose = the first frame's pose map")
        if (height, width) != (832, 480):
            self.record("resolution", f"ran at {height}x{width} (H x W) instead of the native 832x480", height=height,
                        width=width)
        if abs(request.sample.height / request.sample.width - height / width) > 0.01:
            self.record("aspect", f"the official script resizes reference and poses from "
                        f"{request.sample.width}x{request.sample.height} to {width}x{height} (aspect changed)")
        for name in (BASE_MODEL, "checkpoints"):
            link = job / name
            if not link.exists():
                os.symlink(self.weights / name, link)
        # 2. the official script with its settings replaced, run by the driver
        settings = {"height": height, "width": width, "seed": int(request.seed), "use_teacache": False,
                    "test_list_path": [[1, "data/images/ref.png", "data/saved_pose/ref"]]}
        job_file = write_driver_job(job, {"mode": "script", "script": str(self.checkout / self.identity_args["script"]),
                                          "cwd": str(job), "sys_path": [str(self.checkout)], "settings": settings})
        self.run([self.python, job / "driver.py", job_file], ctx, cwd=job)
        # 3. collect: the generated panel is the right third of the side-by-side video
        out = job / "outputs" / "video_480P_long_ref.png_ref.mp4"
        frames, _ = read_video_checked(self.name, out, ctx.count, [(height, 3 * width)], self.failure_fix)
        self.record("crop", "generated frames taken from the right third of the official [reference | pose | "
                    "generated] side-by-side video")
        return np.ascontiguousarray(frames[:ctx.count, :, 2 * width:])
