"""SteadyDancer (MCG-NJU/SteadyDancer, 14B), run from its official checkout as a subprocess.

Native settings (README + ``generate_dancer.py``): a full Wan2.1-I2V-14B fine-tune with first-frame
preservation; DWPose 2D maps aligned to the reference with MusePose (``preprocess/pose_align.py``) as the
positive condition and augmented maps (``pose_align_withdiffaug.py``) as the negative one; ``--size 1024*576``
(the output keeps the reference's aspect within that area); 16 fps; 81 frames; 40 steps (the script's i2v
default), ``--sample_guide_scale 5.0``, ``--condition_guide_scale 1.0``, ``--end_cond_cfg 0.4`` (README).
No long-video mode.

Long videos (benchmark extension, recorded as "extend"): windows of 81 native frames; window ``k`` covers
native frames ``[80k, 80k + 81)`` and uses the last decoded frame of window ``k - 1`` as its image (the first
frame SteadyDancer preserves); window 0 uses the sample's reference. Resumable per window.

Subprocess contract (one run per window), job folder ``<workdir>/steadydancer/<sample>-n<frames>-s<seed>/wKKKK/``:
- ``ref_image.png`` (reference or carried frame), ``positive/0000.jpg ... 0080.jpg`` (pose maps at 16 fps),
  ``negative/0000.jpg ...`` (see adaptations), ``prompt.txt``;
- command, in the checkout: ``<python> generate_dancer.py --task i2v-14B --size 1024*576 --ckpt_dir <weights>
  --prompt <prompt> --image ref_image.png --cond_pos_folder positive/ --cond_neg_folder negative/
  --frame_num 81 --sample_steps 40 --sample_guide_scale 5.0 --condition_guide_scale 1.0 --end_cond_cfg 0.4
  --base_seed <seed> --save_file <job>/out.mp4``;
- expected back: ``out.mp4`` with at least 81 frames whose aspect matches the image's and whose area is at
  most the ``--size`` area.

Adaptations (recorded): benchmark pose maps in place of DWPose + MusePose alignment (same-source samples);
the negative folder holds the same maps (the augmented negative needs a driving video and the official
pose tools); pose 25 -> 16 fps and output 16 -> 25 fps by frame-index mapping; output resized.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from baselines.external import (OfficialCodeAnimator, OfficialCodeConfig, Requirement, WindowContext, native_poses,
                                read_video_checked, sha256_cached, write_frame_folder, write_image)
from bench.errors import MethodError

ENTRY = "generate_dancer.py"
WAN_FILES = ["models_t5_umt5-xxl-enc-bf16.pth", "Wan2.1_VAE.pth", "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"]


@dataclass(frozen=True)
class SteadyDancerConfig(OfficialCodeConfig):
    """The runtime paths, then the identity settings at their native values."""

    size: str = "1024*576"
    steps: int = 40
    guide_scale: float = 5.0
    condition_guide_scale: float = 1.0
    end_cond_cfg: float = 0.4
    prompt: str = "a person is dancing"


class SteadyDancer(OfficialCodeAnimator):
    name = "steadydancer"
    version = "1"
    description = "SteadyDancer 14B (Wan2.1-I2V fine-tune), official generate_dancer.py, extended window by window"
    repo_url = "https://github.com/MCG-NJU/SteadyDancer"
    env_prefix = "STEADYDANCER"
    native_fps = 16.0
    native_window = 81
    Config = SteadyDancerConfig
    native_settings: ClassVar[dict] = {"task": "i2v-14B", "size": "1024*576", "fps": 16, "frame_num": 81, "steps": 40,
                                       "sample_guide_scale": 5.0, "condition_guide_scale": 1.0, "end_cond_cfg": 0.4}
    failure_fix = ("run the logged command by hand in the SteadyDancer environment (see its README: torch, "
                   "flash-attn, xfuser, requirements.txt)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.weights is not None and self.weights == self.checkout:
            self.weights = self.checkout / "SteadyDancer-14B"  # the README's download location

    def requirements(self) -> list[Requirement]:
        reqs = self.base_requirements(ENTRY)
        if self.weights is None:
            return reqs
        fix = (f"huggingface-cli download jiamingZ/SteadyDancer-14B --local-dir {self.weights} "
               f"(or pass weights=PATH / set {self.env_prefix}_WEIGHTS)")
        reqs.append(Requirement("weights folder", self.weights, "dir", fix))
        reqs += [Requirement(f"weights: {f}", self.weights / f, "file", fix) for f in WAN_FILES]
        return reqs

    def weight_fingerprints(self) -> dict[str, str]:
        out = super().weight_fingerprints()
        if self.weights is not None and self.weights.is_dir():
            for shard in sorted(self.weights.glob("*.safetensors")):
                out[f"dit/{shard.name}"] = sha256_cached(shard)
        return out

    def run_window(self, ctx: WindowContext) -> np.ndarray:
        request, job, args = ctx.request, ctx.job_dir, self.identity_args
        # 1. inputs: image (reference or carried frame), positive and negative pose folders, prompt
        image = request.sample.references()[0] if ctx.carry is None else ctx.carry
        write_image(job / "ref_image.png", image)
        poses = native_poses(self, request, ctx.start, ctx.count, self.native_fps)
        write_frame_folder(job / "positive", poses, "{:04d}.jpg")
        write_frame_folder(job / "negative", poses, "{:04d}.jpg")
        (job / "prompt.txt").write_text(str(args["prompt"]))
        self.record("pose", "benchmark pose maps (OpenPose-18 skeleton) used in place of DWPose + MusePose alignment")
        self.record("negative_pose", "negative condition folder holds the positive pose maps: the official augmented "
                    "negative (pose_align_withdiffaug.py) needs a driving video and the official pose tools")
        if args["size"] != "1024*576":
            self.record("resolution", f"--size {args['size']} instead of the native 1024*576", size=args["size"])
        # 2. the official command line
        out = job / "out.mp4"
        command = [self.python, self.checkout / ENTRY, "--task", "i2v-14B", "--size", args["size"],
                   "--ckpt_dir", self.weights, "--prompt", args["prompt"], "--image", job / "ref_image.png",
                   "--cond_pos_folder", f"{job / 'positive'}/", "--cond_neg_folder", f"{job / 'negative'}/",
                   "--frame_num", ctx.count, "--sample_steps", args["steps"], "--sample_guide_scale",
                   args["guide_scale"], "--condition_guide_scale", args["condition_guide_scale"],
                   "--end_cond_cfg", args["end_cond_cfg"], "--base_seed", request.seed, "--save_file", out]
        self.run(command, ctx, cwd=self.checkout)
        # 3. collect and check: the image's aspect within the --size area
        frames, _ = read_video_checked(self.name, out, ctx.count, None, self.failure_fix)
        w_max, h_max = (int(v) for v in str(args["size"]).split("*"))
        h, w = frames.shape[1:3]
        if h * w > h_max * w_max * 1.05 or abs(h / w - image.shape[0] / image.shape[1]) > 0.1 * image.shape[0] / image.shape[1]:
            raise MethodError(f"{self.name}: {out} frames are {w}x{h}, expected the image's aspect "
                              f"({image.shape[1]}x{image.shape[0]}) within the {args['size']} area",
                              fix=f"the official run used another --size than {args['size']}; see {job / 'command.json'}")
        if len(frames) > ctx.count:
            self.record("truncate", f"official windows longer than {ctx.count} frames truncated", frames=len(frames))
        return np.ascontiguousarray(frames[:ctx.count])
