"""SCAIL-Preview (zai-org/SCAIL, 14B, SAT framework), run from its official checkout as a subprocess.

Native settings (``scripts/sample_sgl_14Bsc_xc_cli.sh`` and ``configs/sampling/wan_pose_14Bsc_xc_cli.yaml``):
Wan2.1-I2V-14B with in-context pose; 3D NLF skeletons rendered as cylinders by the separate SCAIL-Pose tool
(``rendered.mp4``); ``sampling_image_size: [512, 896]``; 16 fps; 50 steps, cfg 4 (inside the official
config); long detailed prompts. The released model generates one clip (trained on 81 frames); there is no
long-video mode.

Long videos (benchmark extension, recorded as "extend"): windows of 81 native frames; window ``k`` covers
native frames ``[80k, 80k + 81)`` and uses the last decoded frame of window ``k - 1`` as its reference image;
window 0 uses the sample's reference. Resumable per window.

Subprocess contract (one run per window), job folder ``<workdir>/scail/<sample>-n<frames>-s<seed>/wKKKK/``:
- ``input/ref.jpg`` (reference or carried frame), ``input/rendered.mp4`` (pose video, 81 frames at 16 fps),
  ``input/driving.mp4`` (the same pose video; see adaptations), ``sampling.yaml`` = the official sampling
  config with ``load`` set to ``<weights>/model`` (SAT layout: ``model/latest`` + ``model/<iter>/...``),
  ``output_dir`` set to ``<job>/samples`` and ``sampling_image_size`` to ``size``; ``model.yaml`` = the
  official model config with any ``/.../SCAIL-Preview`` path prefix replaced by the weights folder;
- command, in the checkout, with ``WORLD_SIZE=1 RANK=0 LOCAL_RANK=0 LOCAL_WORLD_SIZE=1``:
  ``<python> sample_video.py --base <job>/model.yaml <job>/sampling.yaml --seed <seed>`` (what the .sh runs,
  with the request seed instead of ``$RANDOM``), stdin ``<prompt>@@<job>/input`` then end of input;
- expected back: one new ``.mp4`` under ``<job>/samples`` (or ``<checkout>/samples``) with at least 81 frames
  of ``size`` (either orientation).

Adaptations (recorded): benchmark 2D skeleton maps in place of NLF 3D cylinder renderings unless
``pose_command`` is given (a shell command run in the job's input folder that writes ``rendered.mp4`` from
``driving.mp4`` and ``ref.jpg``, e.g. the SCAIL-Pose tool; then ``driving.mp4`` is the sample's ground-truth
window at 16 fps, as the official pipeline takes the driving video); pose 25 -> 16 fps and output 16 -> 25
fps by frame-index mapping; output resized.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from baselines.external import (OfficialCodeAnimator, OfficialCodeConfig, Requirement, WindowContext,
                                native_pose_index, native_poses, read_video_checked, run_official, write_image)
from bench.errors import MethodError

ENTRY = "sample_video.py"
MODEL_CONFIG = "configs/video_model/Wan2.1-i2v-14Bsc-pose-xc-latent.yaml"
SAMPLING_CONFIG = "configs/sampling/wan_pose_14Bsc_xc_cli.yaml"
SAT_ENV = {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}


def set_yaml_key(text: str, key: str, value: str) -> str:
    """Replace (or add under ``args:``) the line ``  key: ...`` of a SAT yaml config."""
    pattern = re.compile(rf"^(\s*){re.escape(key)}:.*$", re.M)
    if pattern.search(text):
        return pattern.sub(lambda m: f"{m.group(1)}{key}: {value}", text, count=1)
    if re.search(r"^args:\s*$", text, re.M):
        return re.sub(r"^args:\s*$", f"args:\n  {key}: {value}", text, count=1, flags=re.M)
    return text + f"\nargs:\n  {key}: {value}\n"


@dataclass(frozen=True)
class SCAILConfig(OfficialCodeConfig):
    """The runtime paths, then the identity settings at their native values."""

    size: list = field(default_factory=lambda: [512, 896])  # sampling image size (H, W)
    prompt: str = "A person dances, full body, plain background."
    pose_command: str | None = None


class SCAIL(OfficialCodeAnimator):
    name = "scail"
    version = "1"
    description = "SCAIL-Preview 14B (SAT), official sample_video.py CLI, extended window by window"
    repo_url = "https://github.com/zai-org/SCAIL"
    env_prefix = "SCAIL"
    native_fps = 16.0
    native_window = 81
    Config = SCAILConfig
    native_settings: ClassVar[dict] = {"model_config": MODEL_CONFIG, "sampling_config": SAMPLING_CONFIG,
                                       "sampling_image_size": [512, 896], "fps": 16, "frames": 81, "steps": 50,
                                       "cfg": 4.0, "pose": "NLF 3D cylinders (SCAIL-Pose)"}
    failure_fix = ("run the logged command by hand in the SCAIL environment (pip install -r requirements.txt) and "
                   "type the logged stdin line; check the weights layout SCAIL-Preview/model/latest")

    def requirements(self) -> list[Requirement]:
        reqs = self.base_requirements(ENTRY)
        if self.checkout is not None:
            reqs += [Requirement("model config", self.checkout / MODEL_CONFIG, "file", "update the SCAIL checkout"),
                     Requirement("sampling config", self.checkout / SAMPLING_CONFIG, "file", "update the SCAIL checkout")]
        if self.weights is None:
            return reqs
        fix = (f"GIT_LFS_SKIP_SMUDGE=1 git clone https://huggingface.co/zai-org/SCAIL-Preview {self.weights} and "
               f"fetch its LFS files (or pass weights=PATH / set {self.env_prefix}_WEIGHTS)")
        reqs.append(Requirement("weights folder", self.weights, "dir", fix))
        reqs.append(Requirement("weights: vae", self.weights / "Wan2.1_VAE.pth", "file", fix))
        reqs.append(Requirement("weights: latest", self.weights / "model" / "latest", "file", fix))
        latest = self.weights / "model" / "latest"
        iteration = latest.read_text().strip() if latest.is_file() else "1"
        reqs.append(Requirement("weights: model", self.weights / "model" / iteration / "mp_rank_00_model_states.pt",
                                "file", fix))
        return reqs

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.weights is not None and self.weights == self.checkout:
            self.weights = self.checkout / "SCAIL-Preview"

    def run_window(self, ctx: WindowContext) -> np.ndarray:
        from bench.video import write_video

        request, job, args = ctx.request, ctx.job_dir, self.identity_args
        size = [int(v) for v in args["size"]]
        # 1. inputs: reference (or carried frame), pose video, configs pointing at the weights
        inp = job / "input"
        image = request.sample.references()[0] if ctx.carry is None else ctx.carry
        write_image(inp / "ref.jpg", image)
        poses = native_poses(self, request, ctx.start, ctx.count, self.native_fps)
        lossless = poses.shape[1] % 2 or poses.shape[2] % 2
        if args["pose_command"]:
            idx = np.minimum(native_pose_index(ctx.count, self.native_fps, request.sample.fps, ctx.start),
                             request.sample.n_frames - 1)
            lo, hi = int(idx.min()), int(idx.max()) + 1
            write_video(inp / "driving.mp4", request.sample.gt(lo, hi)[idx - lo], self.native_fps, lossless=bool(lossless))
            self.last_commands.append(["sh", "-c", args["pose_command"]])
            run_official(self.name, ["sh", "-c", args["pose_command"]], inp, job / "pose.log", timeout_s=self.timeout_s,
                         fix="run pose_command by hand in the input folder; it must write rendered.mp4")
            if not (inp / "rendered.mp4").is_file():
                raise MethodError(f"{self.name}: pose_command wrote no {inp / 'rendered.mp4'}",
                                  fix="pose_command must render the SCAIL-Pose cylinders to rendered.mp4 in its cwd")
            self.record("pose", "pose rendered by pose_command from the ground-truth driving window",
                        pose_command=args["pose_command"])
        else:
            write_video(inp / "rendered.mp4", poses, self.native_fps, lossless=bool(lossless))
            write_video(inp / "driving.mp4", poses, self.native_fps, lossless=bool(lossless))
            self.record("pose", "benchmark 2D skeleton maps used in place of SCAIL-Pose 3D NLF cylinder renderings "
                        "(outside the model's training distribution); driving.mp4 holds the same maps")
        if size != [512, 896]:
            self.record("resolution", f"sampling_image_size {size} instead of the native [512, 896]", size=size)
        sampling = (self.checkout / SAMPLING_CONFIG).read_text()
        sampling = set_yaml_key(sampling, "load", f'"{self.weights / "model"}"')
        sampling = set_yaml_key(sampling, "output_dir", f'"{job / "samples"}"')
        sampling = set_yaml_key(sampling, "sampling_image_size", f"[{size[0]}, {size[1]}]")
        (job / "sampling.yaml").write_text(sampling)
        model = re.sub(r"(?<=['\"\s])/[^'\"\s]*/SCAIL-Preview", str(self.weights),
                       (self.checkout / MODEL_CONFIG).read_text())
        (job / "model.yaml").write_text(model)
        # 2. the official CLI: one "<prompt>@@<dir>" line on stdin
        started = time.time() - 1
        command = [self.python, self.checkout / ENTRY, "--base", job / "model.yaml", job / "sampling.yaml",
                   "--seed", request.seed]
        self.run(command, ctx, cwd=self.checkout, env=SAT_ENV, stdin_text=f"{args['prompt']}@@{inp}\n")
        # 3. collect the new video
        found = [p for d in (job / "samples", self.checkout / "samples") if d.is_dir()
                 for p in d.rglob("*.mp4") if p.stat().st_mtime >= started]
        if not found:
            raise MethodError(f"{self.name}: no new .mp4 under {job / 'samples'} or {self.checkout / 'samples'}",
                              fix=self.failure_fix)
        out = max(found, key=lambda p: p.stat().st_mtime)
        frames, _ = read_video_checked(self.name, out, ctx.count, [tuple(size), tuple(size[::-1])], self.failure_fix)
        if len(frames) > ctx.count:
            self.record("truncate", f"official clips longer than {ctx.count} frames truncated", frames=len(frames))
        return np.ascontiguousarray(frames[:ctx.count])
