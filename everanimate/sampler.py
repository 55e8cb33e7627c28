"""The EverAnimate chunk sampler: one chunk = build memory, denoise ``K + T`` slots, decode the T targets.

Per chunk ``c`` (spec defaults):

1. conditioning computed once for the chunk: pose latents (VAE), face-motion features (motion encoder +
   face encoder, reused by all 20 steps), CLIP features (the reference for chunk 0, else the previous
   chunk's last decoded frame);
2. condition latents ``[anchors | motion | null pad]`` with the mask on the anchors;
3. noise from seed ``request_seed + 42 c``; 20 Euler flow-matching steps on the release's grid
   (``rfm.sampling_sigmas``: shift 5 on ``s = 1, 0.95, ..., 0.05``, then 0), no CFG;
4. decode the target slots ``[K:]`` only; the last target slice becomes the next motion memory, *undecoded*;
5. after chunk 0 only: complete the identity memory (3 random generated frames + the reference, each
   encoded alone) unless the user gave >= K views. No other generated pixels are ever encoded.

The state after a chunk is small and constant in the rollout length: anchors, one latent slice, the last
decoded frame (for CLIP), an RNG state and the config hash.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from bench.errors import MethodError
from bench.models import wan

from everanimate.config import SamplerConfig
from everanimate.memory import MemoryLayout, completion_images, condition_latents, model_input, transformer_forward
from everanimate.rfm import sampling_sigmas

PROFILE_PARTS = ("dit", "vae_decode", "vae_encode", "conditioning", "other")


@dataclass
class ChunkProfiler:
    """Wall time per part of each chunk. ``vae_encode`` counts encodes of *generated or reference pixels*
    (memory); pose-video encoding and face/CLIP features are ``conditioning``; ``other`` is the rest."""

    sync: Callable[[], None] = lambda: None
    chunks: list[dict] = field(default_factory=list)
    _current: dict | None = None

    @contextmanager
    def chunk(self):
        self.sync()
        self._current = {p: 0.0 for p in PROFILE_PARTS}
        start = time.perf_counter()
        yield
        self.sync()
        total = time.perf_counter() - start
        parts = self._current
        parts["other"] = max(0.0, total - sum(v for k, v in parts.items() if k != "other"))
        parts["total"] = total
        self.chunks.append(parts)
        self._current = None

    @contextmanager
    def part(self, name: str):
        if self._current is None:
            yield
            return
        self.sync()
        start = time.perf_counter()
        yield
        self.sync()
        self._current[name] += time.perf_counter() - start


@dataclass
class RolloutState:
    next_chunk: int
    anchors: torch.Tensor  # (1, C, K, h, w) identity memory
    anchors_final: bool  # completed (or given >= K views): frozen for the rest of the rollout
    motion: torch.Tensor | None  # (1, C, 1, h, w): last denoised latent slice of the previous chunk
    last_frame: np.ndarray | None  # (H, W, 3) uint8: previous chunk's last decoded frame (CLIP input)
    rng: torch.Generator  # draws the anchor-completion frames
    rollout_key: str  # the rollout this state belongs to (checked on resume)
    completion_frames: list[int] = field(default_factory=list)


class ChunkSampler:
    """Runs chunks for one set of components. ``encode_counter`` (tests, benchmarks) sees every memory
    encode: ``encode_counter(purpose, n_images)``."""

    def __init__(self, components: "wan.WanComponents", config: SamplerConfig, device: str = "cpu",
                 profiler: ChunkProfiler | None = None, record: Callable[..., None] | None = None):
        self.c = components
        self.config = config
        self.device = torch.device(device)
        self.layout = MemoryLayout(config.n_memory, config.n_target)
        self.profiler = profiler or ChunkProfiler()
        self.record = record or (lambda kind, detail, **data: None)
        self.encode_counter: Callable[[str, int], None] = lambda purpose, n: None
        self._text = None
        # the sigma grid every chunk is sampled on (steps + 1 values, the last 0): the release's, not diffusers'
        self.sigmas = sampling_sigmas(config.steps, config.shift).float()

    # -- pieces ----------------------------------------------------------------------------------------
    @property
    def text_embeds(self) -> torch.Tensor:
        if self._text is None:  # once per run
            self._text = wan.encode_prompt(self.c, self.config.prompt, device=self.device)
        return self._text

    @torch.no_grad()
    def encode_alone(self, images: list[np.ndarray], purpose: str) -> torch.Tensor:
        """Each image encoded alone (a 1-frame video) -> ``(1, C, n, h, w)``."""
        self.encode_counter(purpose, len(images))
        with self.profiler.part("vae_encode"):
            h, w = images[0].shape[:2]
            pixels = [wan.video_pixels(img[None], h, w).to(self.device) for img in images]
            return torch.cat([wan.vae_encode(self.c.vae, p).float() for p in pixels], dim=2)

    @torch.no_grad()
    def chunk_conditioning(self, pose: np.ndarray, face: np.ndarray, clip_image: np.ndarray):
        cfg, tr = self.config, self.c.transformer
        with self.profiler.part("conditioning"):
            h, w = pose.shape[1:3]
            pose_lat = wan.pose_latents(self.c.vae, wan.video_pixels(pose, h, w).to(self.device)).float()
            size = self.c.motion_encoder_size
            if face.shape[1:3] != (size, size):
                self.record("resize", f"face crops resized from {face.shape[1]}x{face.shape[2]} to the motion "
                            f"encoder's {size}x{size}", from_size=int(face.shape[1]), to_size=size)
            face_px = wan.video_pixels(face, size, size).to(self.device, tr.dtype)
            face_feat = wan.face_motion_features(tr, face_px)
            clip = wan.clip_image_features(self.c, clip_image, device=self.device)
        if pose_lat.shape[2] != cfg.n_target:
            raise MethodError(f"pose clip of {len(pose)} frames gave {pose_lat.shape[2]} latent slices, "
                              f"expected {cfg.n_target}", fix=f"pass chunks of {cfg.chunk_frames} frames")
        return pose_lat, face_feat, clip

    # -- rollout ---------------------------------------------------------------------------------------
    def start(self, references: list[np.ndarray], seed: int, rollout_key: str) -> RolloutState:
        """Chunk 0's identity memory: the user's views (at most K) encoded alone, cycled to K slots."""
        k = self.config.n_memory
        views = list(references[:k])
        latents = self.encode_alone(views, "reference")
        anchors = latents[:, :, [i % len(views) for i in range(k)]]
        rng = torch.Generator().manual_seed(int(seed))
        return RolloutState(0, anchors, len(views) >= k, None, None, rng, rollout_key)

    @torch.no_grad()
    def step(self, state: RolloutState, references: list[np.ndarray], pose: np.ndarray, face: np.ndarray,
             seed: int) -> tuple[np.ndarray, RolloutState]:
        """Generate chunk ``state.next_chunk``: all ``chunk_frames`` frames (overlap not yet dropped)."""
        cfg, lay = self.config, self.layout
        c = state.next_chunk
        with self.profiler.chunk():
            clip_image = references[0] if (c == 0 or cfg.clip_source == "reference") else state.last_frame
            pose_lat, face_feat, clip = self.chunk_conditioning(pose, face, clip_image)
            cond = condition_latents(state.anchors, state.motion, lay.n_target, cfg.flag_motion_mask)
            _, ch, _, h, w = state.anchors.shape
            noise_gen = torch.Generator().manual_seed(int(seed) + cfg.seed_stride * c)
            x = torch.randn((1, ch, lay.n_slots, h, w), generator=noise_gen).to(self.device)
            text = self.text_embeds
            sigmas = self.sigmas.to(self.device)
            for i in range(cfg.steps):  # Euler: x_{sigma'} = x_sigma + v (sigma' - sigma), t = 1000 sigma
                t = (sigmas[i] * 1000.0).expand(1)
                with self.profiler.part("dit"):
                    v = transformer_forward(self.c.transformer, model_input(x, cond), t, text, clip, pose_lat,
                                            face_feat, cfg.n_memory)
                x = x + v.float() * (sigmas[i + 1] - sigmas[i])
            target = x[:, :, lay.target]
            if not torch.isfinite(target).all():
                raise MethodError(f"chunk {c}: the denoised latents contain NaN/inf",
                                  fix="the model diverged: check the weights, the LoRA and the dtype (bf16 overflow?)")
            with self.profiler.part("vae_decode"):
                frames = wan.unit_to_uint8(wan.pixels_to_unit(wan.vae_decode(self.c.vae, target)))
            state = RolloutState(c + 1, state.anchors, state.anchors_final, target[:, :, -1:].clone(),
                                 frames[-1].copy(), state.rng, state.rollout_key, state.completion_frames)
            if c == 0 and not state.anchors_final:
                state = self.complete_memory(state, references, frames)
        return frames, state

    def complete_memory(self, state: RolloutState, references: list[np.ndarray], chunk0: np.ndarray) -> RolloutState:
        """The one-time identity-memory completion from the generated chunk 0."""
        k = self.config.n_memory
        images, idx = completion_images(references, chunk0, k, state.rng)
        n_new = k - len(references)
        new = self.encode_alone(images[:n_new], "completion")
        # the user's views were encoded at start (slot j holds view j): reuse them, views 1.. then view 0 last
        n_views = len(references)
        user = [state.anchors[:, :, j:j + 1] for j in [*range(1, n_views), 0]]
        anchors = torch.cat([new, *user], dim=2)
        state.anchors, state.anchors_final, state.completion_frames = anchors, True, idx
        return state
