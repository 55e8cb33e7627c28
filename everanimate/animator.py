"""``EverAnimate``: the method behind the harness's ``Animator`` contract (registry name ``everanimate``).

Identity arguments (all change pixels, all go into the rollout key)::

    components = "tiny-random" | "lab"   tiny-random: random untrained Wan-Animate components (tiny_seed);
                                     lab: the shipped lab models under $BENCH_LAB_MODELS (default models/lab)
    model_dir = None | DIR           a local Wan-AI/Wan2.2-Animate-14B-Diffusers folder (overrides components)
    lora = None | FILE               EverAnimate LoRA (diffusers-peft or the release's DiffSynth file)
    lora_scale = 1.0, tiny_seed = 0, dtype = None ("bfloat16" with model_dir, else "float32")
    chunk_frames = 77, overlap_frames = 4, steps = 20, shift = 5.0, n_memory = 4, seed_stride = 42,
    clip_source = "previous_frame", flag_motion_mask = False, prompt = Wan-Animate's default

Sampling runs on the release's sigma grid (``rfm.sampling_sigmas``; ``model_info()["sigmas"]``). The identity
memory uses the reference views the request gives (``request.n_references``: 1 under the default
single-reference protocol) and is completed from generated chunk 0 when they are fewer than K.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.animator import AnimationRequest, Animator, Capabilities, ChunkInput, check_frames
from bench.errors import ConfigError, DataError, MethodError, WeightsError

from everanimate.arguments import EverAnimateConfig
from everanimate.config import SamplerConfig

LAB_LORA = "lab:everanimate/stage2/lora.safetensors"


def sampler_sigmas(config: SamplerConfig) -> list[float]:
    """The ``steps`` noise levels a chunk is denoised from (the grid's final 0 is where the last step lands)."""
    from everanimate.rfm import sampling_sigmas

    return [round(float(v), 6) for v in sampling_sigmas(config.steps, config.shift)[:-1]]


def lab_paths() -> tuple[Path, Path]:
    """The shipped lab base model and EverAnimate stage-2 LoRA (``components="lab"``)."""
    from bench.models import wan

    return wan.lab_model_dir("wan_animate_base"), wan.lab_model_dir("everanimate") / "stage2" / "lora.safetensors"


class EverAnimate(Animator):
    name = "everanimate"
    version = "2"  # 2: the release's sigma grid; chunk-0 completion never picks frame 0; single-reference requests
    description = "EverAnimate: persistent latent propagation (K identity + 1 motion latent slot) and a " \
                  "restorative-flow-matching LoRA on Wan2.2-Animate"

    Config = EverAnimateConfig  # the sampler settings and the components (torch-free: checked before any load)

    def __init__(self, **args: Any):
        super().__init__(**args)
        cfg = self.config
        from bench.lab.shipped import resolve_lab_path

        # identity keeps the portable names ("lab", "lab:<file>"); the resolved paths are only used to load
        self.lab = cfg.model_dir is None and cfg.components == "lab"
        dtype = cfg.dtype or ("bfloat16" if cfg.model_dir and not self.lab else "float32")
        lora = cfg.lora or (LAB_LORA if self.lab else None)
        sampler = {f.name: getattr(cfg, f.name) for f in fields(SamplerConfig)}
        self.identity_args = dict(sorted({
            **sampler, "components": cfg.components if cfg.model_dir is None else "folder",
            "model_dir": cfg.model_dir, "lora": lora, "lora_scale": float(cfg.lora_scale),
            "tiny_seed": int(cfg.tiny_seed), "dtype": dtype}.items()))
        self.model_dir = str(lab_paths()[0]) if self.lab else cfg.model_dir
        self.lora, self.lora_scale, self.tiny_seed, self.dtype = \
            resolve_lab_path(lora), float(cfg.lora_scale), int(cfg.tiny_seed), dtype
        self.components = None
        self.sampler = None
        self.lora_info: dict | None = None
        self._fingerprints: dict[str, str] | None = None

    # -- identity and weights ---------------------------------------------------------------------------
    def check_ready(self) -> None:
        from bench.models import wan

        if self.lab:
            from bench.lab.shipped import verify_lab_models

            verify_lab_models(["wan_animate_base"], method="everanimate")
        if self.model_dir is not None:
            wan.check_model_dir(self.model_dir, method="everanimate")
        if self.lora is not None and not Path(self.lora).is_file():
            raise WeightsError(f"everanimate: LoRA file {self.lora} does not exist",
                               fix="download everanimate-v1-lora32/stage2_480p.safetensors (or train one: "
                                   "python -m everanimate train --stage 2 ...) and pass lora=FILE")
        if self.lora is not None:
            from bench.lab.shipped import check_lora_base, verify_if_shipped

            verify_if_shipped(self.lora, method="everanimate")
            check_lora_base(self.lora, self.model_dir, method="everanimate", memory="plp")

    def is_trained(self) -> bool:
        return self.model_dir is not None  # tiny-random: untrained components

    def weight_fingerprints(self) -> dict[str, str]:
        if self._fingerprints is None:
            from bench.models import wan
            from bench.sample import sha256_file

            self.check_ready()
            fp = {}
            if self.model_dir is not None:
                fp["base"] = wan.fingerprint(self.model_dir)
            else:
                blob = json.dumps({"tiny": asdict(wan.WanComponentsConfig()), "seed": self.tiny_seed}, sort_keys=True)
                fp["base"] = "tiny-random:" + hashlib.sha256(blob.encode()).hexdigest()
            if self.lora is not None:
                fp["lora"] = sha256_file(self.lora)
            self._fingerprints = fp
        return dict(self._fingerprints)

    def capabilities(self) -> Capabilities:
        return Capabilities(native_fps=25, chunk_frames=self.config.chunk_frames,
                            overlap_frames=self.config.overlap_frames, can_resume=True, end_to_end=False,
                            max_references=self.config.n_memory)

    def load(self, device: str = "cpu") -> None:
        from bench.models import wan

        from bench.models.lora import load_lora
        from everanimate.sampler import ChunkSampler, ChunkProfiler

        self.check_ready()
        self.device = device
        dtype = torch.bfloat16 if self.dtype == "bfloat16" else torch.float32
        if self.model_dir is not None:
            comps = wan.load_components(self.model_dir, dtype=dtype, method="everanimate")
        else:
            comps = wan.tiny_components(seed=self.tiny_seed)
            if dtype != torch.float32:
                comps.transformer.to(dtype)
        if self.lora is not None:
            self.lora_info = load_lora(comps.transformer, self.lora, scale=self.lora_scale, merge=True)
        comps.to(device)
        self.components = comps
        sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
        self.sampler = ChunkSampler(comps, self.config, device, ChunkProfiler(sync=sync), record=self.record)

    def model_info(self) -> dict[str, Any]:
        info = super().model_info()
        if self.components is not None:
            info["components"] = self.components.info()
            info["untrained"] = not self.components.trained
        else:
            info["untrained"] = self.model_dir is None
        if self.model_dir is None:
            info["description"] += " [untrained: tiny random components]"
        info["lora"] = self.lora_info
        # the grid every chunk is sampled on (the release's shift-5 grid; the final step goes to sigma 0)
        info["sigmas"] = sampler_sigmas(self.config)
        return info

    # -- rollout ------------------------------------------------------------------------------------------
    def _references(self, request: AnimationRequest) -> list[np.ndarray]:
        """The views the request gives (the user reference only, unless a multi-view run), checked."""
        refs = request.references()
        if not refs:
            raise DataError(f"sample {request.sample.id} has no reference image (or the request gives none)",
                            fix="add ref_000.png to the sample and request at least one reference view")
        for i, ref in enumerate(refs):
            ref = np.asarray(ref)
            if ref.dtype != np.uint8 or ref.ndim != 3 or ref.shape[2] != 3:
                raise DataError(f"sample {request.sample.id}: reference {i} has shape {ref.shape} dtype {ref.dtype}, "
                                "expected (H, W, 3) uint8 RGB", fix="convert the reference image to 8-bit RGB")
            if ref.shape[:2] != (request.height, request.width):
                raise DataError(f"sample {request.sample.id}: reference {i} is {ref.shape[1]}x{ref.shape[0]}, the "
                                f"rollout is {request.width}x{request.height}",
                                fix="render / crop the reference at the rollout size (or request that size)")
        return [np.ascontiguousarray(r) for r in refs]

    def _check_request(self, request: AnimationRequest) -> None:
        if self.sampler is None:
            raise MethodError("everanimate: load() was not called", fix="call animator.load(device) first")
        from bench.models.wan import pixel_multiple

        multiple = pixel_multiple(self.sampler.c)
        if request.height % multiple or request.width % multiple:
            raise ConfigError(f"everanimate: {request.width}x{request.height} is not a multiple of {multiple}",
                              fix=f"use a size divisible by {multiple} (the VAE's spatial factor x the DiT's patch), "
                                  "e.g. 64x64 or 832x480")
        if request.n_frames > request.sample.n_frames and request.pose_padding == "error":
            raise DataError(f"sample {request.sample.id} has {request.sample.n_frames} pose frames, "
                            f"{request.n_frames} requested", fix="ask for a shorter duration or pass "
                            "--pose-padding reflect|hold (recorded)")

    def start(self, request: AnimationRequest):
        self._check_request(request)
        refs = self._references(request)
        if len(refs) < self.config.n_memory:
            self.record("memory", f"{len(refs)} reference view(s) < K={self.config.n_memory}: identity memory "
                        f"completed from generated chunk 0 ({self.config.n_memory - len(refs)} random frames, "
                        "never frame 0, then the reference last)", views=len(refs))
        return self.sampler.start(refs, request.seed, self.resume_key(request)), refs, request

    def step(self, state, chunk: ChunkInput):
        rollout, refs, request = state
        if rollout.next_chunk != chunk.spec.index:
            raise MethodError(f"everanimate: state is at chunk {rollout.next_chunk}, asked for {chunk.spec.index}",
                              fix="resume from the state stored with the previous chunk")
        pose, face = self._fit_pose(chunk.pose, request), chunk.face
        if len(pose) != self.config.chunk_frames or len(face) != self.config.chunk_frames:
            raise DataError(f"chunk {chunk.spec.index}: {len(pose)} pose / {len(face)} face frames, "
                            f"expected {self.config.chunk_frames}", fix="the sample's pose or face video is short")
        frames, rollout = self.sampler.step(rollout, refs, pose, face, request.seed)
        out = check_frames(self.name, chunk.spec, frames[chunk.spec.drop:], request.height, request.width)
        return out, (rollout, refs, request)

    def _fit_pose(self, pose: np.ndarray, request: AnimationRequest) -> np.ndarray:
        if pose.shape[1:3] == (request.height, request.width):
            return pose
        import cv2

        self.record("resize", f"pose maps resized from {pose.shape[2]}x{pose.shape[1]} to "
                    f"{request.width}x{request.height}", from_hw=list(pose.shape[1:3]))
        return np.stack([cv2.resize(p, (request.width, request.height), interpolation=cv2.INTER_AREA) for p in pose])

    # -- resume ---------------------------------------------------------------------------------------------
    def state_dict(self, state) -> dict:
        r = state[0]
        return {"next_chunk": r.next_chunk, "anchors": r.anchors.detach().cpu(),
                "anchors_final": int(r.anchors_final),
                "motion": r.motion.detach().cpu() if r.motion is not None else torch.zeros(0),
                "last_frame": torch.from_numpy(r.last_frame) if r.last_frame is not None else torch.zeros(0, dtype=torch.uint8),
                "rng_state": r.rng.get_state(), "rollout_key": r.rollout_key,
                "completion_frames": list(r.completion_frames)}

    def load_state_dict(self, request: AnimationRequest, blob: dict):
        from everanimate.sampler import RolloutState

        self._check_request(request)
        self.check_resume(request, blob)
        expected = blob["rollout_key"]
        dev = self.device
        rng = torch.Generator()
        rng.set_state(blob["rng_state"])
        motion = blob["motion"].to(dev) if blob["motion"].numel() else None
        last = blob["last_frame"].numpy().copy() if blob["last_frame"].numel() else None
        rollout = RolloutState(int(blob["next_chunk"]), blob["anchors"].to(dev), bool(blob["anchors_final"]), motion,
                               last, rng, expected, [int(i) for i in blob["completion_frames"]])
        return rollout, self._references(request), request
