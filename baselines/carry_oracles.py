"""Finding-1 oracles: the person from the ground truth, the static room carried from chunk to chunk, no
generator. They isolate what the *carry path* alone does to the room over a long rollout.

* ``oracle_pixel_carry`` — Wan-Animate's path: the room is carried as **decoded pixels**; every chunk encodes
  them again, so the room goes through one more decode -> encode trip per chunk and the loss compounds.
* ``oracle_latent_carry`` — PLP's path: the room is carried as a **latent** (encoded once, never re-encoded
  from its own decode); every chunk starts from the same latent, so the loss stays flat.

Per chunk ``c`` (Wan-Animate geometry: 77 frames, the first ``overlap`` frames of later chunks dropped):

1. ``room``: the carried room in pixels. Chunk 0: the exact room, read from the ground truth (each pixel at
   the first frame of the first chunk where the GT person mask leaves it free; pixels covered in all of them
   take frame 0's value). Pixel carry: afterwards the previous chunk's last decoded frame wherever its GT
   mask is free (covered pixels keep their older value). Latent carry: ``decode(encode(room_0))`` from a
   latent computed once, the same in every chunk.
2. ``composite_t = mask_t * GT_t + (1 - mask_t) * room`` for the chunk's frames (person exact from GT).
3. Output: the composite chunk encoded (posterior mode) and decoded once, as a generated chunk is decoded
   from its latents; the first ``overlap`` frames of later chunks are dropped.

So the person costs one VAE trip in both, and the two differ only in how the room is carried. Neither is a
method: both read the ground truth (person and masks); they bound what carry-over alone costs. Compare
``vae_roundtrip``, where fresh ground truth re-enters every chunk (a lower bound on VAE loss, not drift).
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from baselines.arguments import CarryOracleConfig
from bench.animator import AnimationRequest, Capabilities, ChunkInput
from bench.errors import ConfigError, DataError, MethodError
from bench.models.vae_method import VAEMethod

STATE_FORMAT = "carry_oracle/1"


class _CarryOracle(VAEMethod):
    carry: ClassVar[str]  # "pixels" or "latent"
    version = "1"

    Config = CarryOracleConfig

    def capabilities(self) -> Capabilities:
        return Capabilities(native_fps=25, chunk_frames=self.config.chunk_frames, overlap_frames=self.config.overlap,
                            can_resume=True, max_references=0)

    def model_info(self) -> dict[str, Any]:
        info = super().model_info()
        info["settings"] = {"chunk_frames": self.config.chunk_frames, "overlap": self.config.overlap,
                            "room_carried_as": self.carry}
        info["oracle"] = "person and masks from the ground truth; no generator (Finding 1 isolated)"
        info["adaptations"] = [a.to_dict() for a in self.adaptations]
        return info

    # -- the carried room --------------------------------------------------------------------------------------
    def _pixels(self, frames: np.ndarray) -> torch.Tensor:
        """``(T, H, W, 3) uint8`` -> ``(1, 3, T, H, W)`` in [-1, 1] on the VAE's device."""
        t = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).unsqueeze(0)
        return (t.float() / 127.5 - 1.0).to(device=self.device, dtype=self.vae.dtype)

    def _round_trip(self, pixels: torch.Tensor) -> torch.Tensor:
        from bench.models.wan import vae_decode, vae_encode

        return vae_decode(self.vae, vae_encode(self.vae, pixels)).float()

    def _exact_room(self, gt: np.ndarray, masks: np.ndarray) -> torch.Tensor:
        """The room as the GT shows it: each pixel at the first frame where the person leaves it free."""
        free = ~masks
        first = np.where(free.any(0), free.argmax(0), 0)
        room = np.take_along_axis(gt, first[None, :, :, None], axis=0)[0]
        return self._pixels(room[None])[:, :, 0].float()

    def start(self, request: AnimationRequest) -> dict:
        from bench.models.wan import vae_spatial_factor

        if self.vae is None:
            raise MethodError(f"{self.name}: start() called before load()", fix="call animator.load(device) first")
        f = vae_spatial_factor(self.vae)
        if request.height % f or request.width % f:
            raise ConfigError(f"{self.name}: height and width must be divisible by {f}, got "
                              f"{request.height}x{request.width}", fix=f"ask for a size divisible by {f}")
        if request.sample.masks(0, 1) is None:
            raise DataError(f"{self.name}: sample {request.sample.id} has no person masks",
                            fix="use a dataset with masks (the lab has them)")
        return {"request": request, "rollout_key": self.resume_key(request), "next_chunk": 0, "room": None}

    @torch.no_grad()
    def step(self, state: dict, chunk: ChunkInput) -> tuple[np.ndarray, dict]:
        from bench.models.wan import pixels_to_unit, unit_to_uint8

        # 1. Input checks.
        spec, request = chunk.spec, state["request"]
        if spec.index != state["next_chunk"] or spec.chunk_frames != self.config.chunk_frames \
                or spec.drop != (0 if spec.index == 0 else self.config.overlap):
            raise MethodError(f"{self.name}: unexpected chunk {spec}", fix="plan chunks with this method's capabilities")
        # 2. Ground truth and masks of the chunk (reflect-padded like the pose).
        idx = chunk.pose_index
        lo, hi = int(idx.min()), int(idx.max()) + 1
        gt, masks = request.sample.gt(lo, hi)[idx - lo], request.sample.masks(lo, hi)[idx - lo]
        if gt.shape[1:3] != (request.height, request.width):
            raise DataError(f"{self.name}: sample {request.sample.id} is {gt.shape[2]}x{gt.shape[1]}, the request "
                            f"{request.width}x{request.height}", fix="run the oracles at the sample's own size")
        # 3. The room carried into this chunk.
        room = state["room"]
        if room is None:
            room = self._exact_room(gt, masks)
            if self.carry == "latent":
                room = self._round_trip(room.unsqueeze(2))[:, :, 0]
        # 4. Person from GT over the carried room; one round trip of the whole chunk.
        person = torch.from_numpy(masks).to(self.device)[None, None].float()
        composite = person * self._pixels(gt).float() + (1 - person) * room.unsqueeze(2)
        decoded = self._round_trip(composite.to(self.vae.dtype))
        frames = unit_to_uint8(pixels_to_unit(decoded[:, :, spec.drop:]))
        # 5. What the next chunk carries.
        if self.carry == "pixels":
            free = (1 - person[:, :, -1])
            room = free * decoded[:, :, -1] + (1 - free) * room
        return frames, {**state, "next_chunk": spec.index + 1, "room": room.clone()}

    def state_dict(self, state: dict) -> dict:
        room = state["room"].detach().cpu() if state["room"] is not None else torch.zeros(0)
        return {"format": STATE_FORMAT, "rollout_key": state["rollout_key"], "next_chunk": state["next_chunk"], "room": room}

    def load_state_dict(self, request: AnimationRequest, blob: dict) -> dict:
        state = self.start(request)
        if not isinstance(blob, dict) or blob.get("format") != STATE_FORMAT:
            raise MethodError(f"{self.name}: the stored resume state is not a {STATE_FORMAT} state",
                              fix="delete the stored rollout and run it again")
        self.check_resume(request, blob)
        state["room"] = blob["room"].to(self.device) if blob["room"].numel() else None
        state["next_chunk"] = int(blob["next_chunk"])
        return state


class OraclePixelCarry(_CarryOracle):
    name = "oracle_pixel_carry"
    carry = "pixels"
    description = "oracle: person from GT, room carried as decoded pixels re-encoded every chunk (Wan-Animate's path)"


class OracleLatentCarry(_CarryOracle):
    name = "oracle_latent_carry"
    carry = "latent"
    description = "oracle: person from GT, room carried as a latent encoded once (PLP's path)"
