"""``wan_animate``: Wan2.2-Animate's long-video mechanism, driven by this project's own segment loop.

Native settings (``diffusers.WanAnimatePipeline``, animate mode; official ``generate.py --task animate-14B``):
segments of 77 frames, 20 steps, flow shift 5, cfg 1, ``refert_num`` 1 (5 allowed), the default prompt.
Per segment the DiT sees ``[reference slot | 20 target slots]``:

- reference slot: the reference image VAE-encoded alone (mask 1); its CLIP tokens go to image cross-attention;
- target slots: noise, concatenated along channels with the VAE encoding of ``[last refert_num decoded frames
  of the previous segment | zeros]`` (mask 1 on the carried frames; all zeros and mask 0 in segment 0);
- pose clip VAE-encoded and added after patch embedding; face crops through the motion encoder + face adapter.

After denoising, the target slots are decoded; the last ``refert_num`` **decoded** frames (float, unclipped)
are carried into the next segment and re-encoded there (the pixel round trip EverAnimate's paper analyses).

Frame accounting: segment ``c`` reads pose frames ``[c (77 - r), c (77 - r) + 77)`` and, after the first,
drops its first ``r`` output frames (they re-generate the carried frames). So N segments give
``77 + (77 - r)(N - 1)`` frames: exactly ``bench.animator.plan_chunks(n, 77, overlap=r)``, and the pipeline's
segment count for ``n`` pose frames. Pose/face past the end are padded by reflection ("ping-pong", as the
pipeline pads); the tail past ``n`` is generated and cut by the harness, as the pipeline cuts it.

What differs from calling the pipeline (and why): segments are streamed and resumable (the pipeline keeps all
pose/face frames and every decoded segment on the device and cannot resume); the face motion features are
computed once per segment instead of at each of the 20 steps (identical values); the RNG is one CPU
``torch.Generator`` seeded with the request seed and consumed segment after segment, as the pipeline
consumes its ``generator``. ``tests/test_wan_animate.py`` checks frame equality with the pipeline.

Adaptations (recorded): face crops resized (Lanczos) to the motion encoder's input size (512 for the 14B
model); pose maps resized (Lanczos) to the request size when they differ; the reference image resized to fit
and centred on black ("fill"); pose/face past the sample end padded by the harness (reflect).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from baselines.arguments import WanAnimateConfig
from bench.animator import AnimationRequest, Animator, Capabilities, ChunkInput
from bench.errors import ConfigError, MethodError

NATIVE = {"segment_frames": 77, "steps": 20, "shift": 5.0, "guidance": 1.0, "refert_num": 1, "fps": 25,
          "face_size": 512, "resolution": "480x832 or 720x1280 (H, W divisible by 16)"}
STATE_FORMAT = "wan_animate/1"


@dataclass
class WanAnimateState:
    request: AnimationRequest
    rollout_key: str
    next_chunk: int
    generator: torch.Generator
    carry: torch.Tensor | None  # (1, 3, refert_num, H, W) decoded pixels of the previous segment
    reference: torch.Tensor  # (1, 20, 1, h, w) reference-slot conditioning
    clip: torch.Tensor
    prompt_embeds: torch.Tensor


class WanAnimate(Animator):
    name = "wan_animate"
    version = "1"
    description = "Wan2.2-Animate: segments of 77 frames, last 1 or 5 decoded frames re-encoded into the next"

    Config = WanAnimateConfig  # baselines/arguments.py: every argument check, torch-free

    def __init__(self, **identity_args: Any):
        super().__init__(**identity_args)
        cfg = self.config
        from bench.lab.shipped import resolve_lab_path

        self.lora_path = resolve_lab_path(cfg.lora)  # identity keeps the portable "lab:<file>" form
        self.components = None
        self.scheduler = None
        self.lora_info = None

    # -- identity / readiness --------------------------------------------------------------------------------
    def _folder(self):
        """The components folder to load (``model_dir`` or the lab model), None for tiny random components."""
        from bench.models.wan import components_folder

        return components_folder(self.config.model_dir, self.config.components)

    def capabilities(self) -> Capabilities:
        return Capabilities(native_fps=25, chunk_frames=self.config.chunk_frames, overlap_frames=self.config.refert_num,
                            can_resume=True)

    def is_trained(self) -> bool:
        return self._folder() is not None  # tiny-random: untrained components

    def weight_fingerprints(self) -> dict[str, str]:
        fp = {}
        if self._folder() is not None:
            from bench.models.wan import fingerprint

            self.check_ready()
            fp["wan_animate"] = fingerprint(self._folder())
        if self.config.lora is not None:
            from bench.sample import sha256_file

            fp["lora"] = sha256_file(self.lora_path)
        return fp

    def check_ready(self) -> None:
        try:
            from diffusers import AutoencoderKLWan, WanAnimateTransformer3DModel  # noqa: F401
        except ImportError as exc:
            raise ConfigError(f"wan_animate needs diffusers with Wan-Animate support: {exc}",
                              fix="pip install 'diffusers>=0.36'") from exc
        if self.config.components == "lab":
            from bench.lab.shipped import verify_lab_models

            verify_lab_models(["wan_animate_base"], method=self.name)
        if self._folder() is not None:
            from bench.models.wan import check_model_dir

            check_model_dir(self._folder(), method=self.name)
        if self.config.lora is not None:
            from bench.lab.shipped import check_lora_base, verify_if_shipped

            verify_if_shipped(self.lora_path, method=self.name)
            check_lora_base(self.lora_path, self._folder(), method=self.name, memory="pixel_carry")

    def load(self, device: str = "cpu") -> None:
        from bench.models.wan import load_components, make_scheduler, tiny_components

        self.check_ready()
        super().load(device)
        cfg = self.config
        if cfg.components == "lab":
            comps = load_components(self._folder(), dtype=torch.float32, method=self.name)
        elif cfg.model_dir is not None:
            comps = load_components(cfg.model_dir, dtype=getattr(torch, cfg.dtype), method=self.name)
        else:
            comps = tiny_components(cfg.components_seed)
        if cfg.lora is not None:
            from bench.models.lora import load_lora

            self.lora_info = load_lora(comps.transformer, self.lora_path, scale=cfg.lora_scale, merge=True)
        self.components = comps.to(device)
        self.scheduler = make_scheduler(comps, shift=cfg.shift, solver=cfg.solver)

    def model_info(self) -> dict[str, Any]:
        info = super().model_info()
        info["native_settings"] = NATIVE
        info["settings"] = {"segment_frames": self.config.chunk_frames, "steps": self.config.steps,
                            "shift": self.config.shift, "guidance": self.config.guidance,
                            "refert_num": self.config.refert_num}
        info["frame_accounting"] = (f"segment c reads pose [c*{self.config.chunk_frames - self.config.refert_num}, "
                                    f"+{self.config.chunk_frames}); segments after the first drop their first "
                                    f"{self.config.refert_num} frame(s) (re-generated carry-over)")
        info["components"] = self.components.info() if self.components is not None else None
        if self.components is not None and not self.components.trained:
            info["description"] += " [untrained random components: smoke tests only]"
        info["adaptations"] = [a.to_dict() for a in self.adaptations]
        info["lora"] = self.lora_info
        return info

    # -- rollout ---------------------------------------------------------------------------------------------
    def _require_loaded(self):
        if self.components is None:
            raise MethodError("wan_animate: start() called before load()", fix="call animator.load(device) first")

    @torch.no_grad()
    def start(self, request: AnimationRequest) -> WanAnimateState:
        from bench.models.wan import (DEFAULT_PROMPT, clip_image_features, encode_prompt, pixel_multiple,
                                      reference_condition, reference_pixels)

        # 1. Input checks.
        self._require_loaded()
        multiple = pixel_multiple(self.components)
        if request.height % multiple or request.width % multiple:
            raise ConfigError(f"wan_animate: height and width must be divisible by {multiple} (VAE factor x patch), "
                              f"got {request.height}x{request.width}",
                              fix=f"ask for a size divisible by {multiple} (e.g. 64x64, 480x832)")
        references = request.references()
        if not references:
            raise MethodError(f"wan_animate: sample {request.sample.id} has no reference image",
                              fix="re-create the sample with a ref_000.png")
        reference = references[0]
        comps, device = self.components, self.device
        if reference.shape[:2] != (request.height, request.width):
            self.record("resize", "reference image resized to fit and centred on black (pipeline 'fill' mode)",
                        src=f"{reference.shape[1]}x{reference.shape[0]}", dst=f"{request.width}x{request.height}")
        # 2. Per-run conditioning: reference slot, CLIP tokens, prompt embeddings.
        ref_cond = reference_condition(comps.vae, reference_pixels(comps, reference, request.height, request.width).to(device))
        clip = clip_image_features(comps, reference, device)
        prompt = encode_prompt(comps, self.config.prompt or DEFAULT_PROMPT, device)
        # 3. One CPU generator for the whole rollout, as the pipeline's ``generator``.
        generator = torch.Generator("cpu").manual_seed(int(request.seed))
        return WanAnimateState(request=request, rollout_key=self.resume_key(request), next_chunk=0,
                               generator=generator, carry=None, reference=ref_cond, clip=clip, prompt_embeds=prompt)

    @torch.no_grad()
    def step(self, state: WanAnimateState, chunk: ChunkInput) -> tuple[np.ndarray, WanAnimateState]:
        from diffusers.utils.torch_utils import randn_tensor

        from bench.models.wan import (carry_condition, latent_channels, latent_frames, pixels_to_unit, pose_latents,
                                      reuse_face_motion, unit_to_uint8, vae_decode, vae_spatial_factor, video_pixels)

        # 1. Input checks: the harness plan must be this method's segment plan.
        cfg, comps, device = self.config, self.components, self.device
        spec, request = chunk.spec, state.request
        expected_drop = 0 if spec.index == 0 else cfg.refert_num
        if spec.index != state.next_chunk:
            raise MethodError(f"wan_animate: got chunk {spec.index}, expected {state.next_chunk}",
                              fix="run chunks in order; resume from the stored state of the previous chunk")
        if spec.chunk_frames != cfg.chunk_frames or spec.drop != expected_drop or len(chunk.pose) != cfg.chunk_frames:
            raise MethodError(f"wan_animate: chunk {spec.index} has {spec.chunk_frames} frames / drop {spec.drop}, "
                              f"expected {cfg.chunk_frames} / {expected_drop}",
                              fix="plan chunks with this method's capabilities (chunk_frames, overlap_frames=refert_num)")
        if len(chunk.face) != len(chunk.pose):
            raise MethodError(f"wan_animate: chunk {spec.index} has {len(chunk.face)} face crops for "
                              f"{len(chunk.pose)} pose frames", fix="re-create the sample's face.mp4")
        H, W, r, L = request.height, request.width, cfg.refert_num, cfg.chunk_frames
        dtype = comps.transformer.dtype

        # 2. Pose latents and face crops of this segment (once per segment).
        if chunk.pose.shape[1:3] != (H, W):
            self.record("resize", "pose maps resized (Lanczos) to the request size, as the pipeline does",
                        src=f"{chunk.pose.shape[2]}x{chunk.pose.shape[1]}", dst=f"{W}x{H}")
        pose = pose_latents(comps.vae, video_pixels(chunk.pose, H, W).to(device)).to(dtype)
        size = comps.motion_encoder_size
        if chunk.face.shape[1:3] != (size, size):
            self.record("resize", "face crops resized (Lanczos) to the motion encoder's input size",
                        src=f"{chunk.face.shape[2]}x{chunk.face.shape[1]}", dst=f"{size}x{size}")
        face = video_pixels(chunk.face, size, size).to(device=device, dtype=dtype)

        # 3. Conditioning: reference slot + carried-over decoded frames re-encoded with zeros after them.
        carry = carry_condition(comps.vae, state.carry, L, H, W, r, known=spec.index > 0)
        condition = torch.cat([state.reference, carry], dim=2)

        # 4. Denoise from fresh noise (the generator continues from the previous segment).
        f = vae_spatial_factor(comps.vae)
        shape = (1, latent_channels(comps.vae), latent_frames(comps.vae, L) + 1, H // f, W // f)
        latents = randn_tensor(shape, generator=state.generator, device=torch.device(device), dtype=torch.float32)
        self.scheduler.set_timesteps(cfg.steps, device=device)
        with reuse_face_motion(comps.transformer, face):
            for t in self.scheduler.timesteps:
                model_input = torch.cat([latents, condition], dim=1).to(dtype)
                velocity = comps.transformer(hidden_states=model_input, timestep=t.expand(1),
                                             encoder_hidden_states=state.prompt_embeds,
                                             encoder_hidden_states_image=state.clip, pose_hidden_states=pose,
                                             face_pixel_values=face, return_dict=False)[0]
                latents = self.scheduler.step(velocity, t, latents, return_dict=False)[0]

        # 5. Decode the target slots; carry the last r decoded frames; output the new ones.
        pixels = vae_decode(comps.vae, latents[:, :, 1:])
        frames = unit_to_uint8(pixels_to_unit(pixels[:, :, spec.drop:]))
        new_state = replace(state, next_chunk=spec.index + 1, carry=pixels[:, :, -r:].clone())
        return frames, new_state

    # -- resume ----------------------------------------------------------------------------------------------
    def state_dict(self, state: WanAnimateState) -> dict:
        carry = state.carry.detach().cpu() if state.carry is not None else torch.zeros(0)
        return {"format": STATE_FORMAT, "rollout_key": state.rollout_key, "next_chunk": state.next_chunk,
                "rng_state": state.generator.get_state(), "carry": carry}

    def load_state_dict(self, request: AnimationRequest, blob: dict) -> WanAnimateState:
        if not isinstance(blob, dict) or blob.get("format") != STATE_FORMAT:
            raise MethodError("wan_animate: the stored resume state is not a wan_animate/1 state",
                              fix="delete the stored rollout and run it again")
        state = self.start(request)
        self.check_resume(request, blob)
        state.generator.set_state(blob["rng_state"])
        carry = blob["carry"]
        state.carry = carry.to(device=self.device, dtype=self.components.vae.dtype) if carry.numel() else None
        state.next_chunk = int(blob["next_chunk"])
        return state
