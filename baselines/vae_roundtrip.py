"""``vae_roundtrip``: the ground truth through the Wan VAE with Wan-Animate's pixel carry-over, no generator.

A lower bound on what VAE round trips cost a rollout, **not** the paper's Finding 1: fresh ground truth
re-enters every chunk (only the ``refert_num`` carried frames have been through the VAE before), so errors
cannot compound the way they do when a generator's own decoded output is re-encoded chunk after chunk. Chunks follow Wan-Animate's geometry (``chunk_frames`` 77, carry ``refert_num`` frames; chunk
``c`` covers ground-truth frames ``[c (77 - r), + 77)``; later chunks drop their first ``r`` frames).

What is round-tripped, exactly, per chunk ``c``:

1. the chunk's 77 ground-truth frames (past the sample end: the same reflect padding the pose gets);
2. for ``c > 0`` its first ``r`` frames are **replaced** by the last ``r`` decoded frames of chunk ``c - 1``
   (float, unclipped, as Wan-Animate carries them) - these overlap frames are the same time steps, so the
   replacement changes only their history, never their content;
3. the 77-frame clip is VAE-encoded (posterior mode) and decoded once, as one causal clip;
4. output = decoded frames ``[drop:]``; the last ``r`` decoded frames become the next chunk's carry-over.

Every output frame is one round trip of its ground-truth frame; what compounds from chunk to chunk is the
carried frames' history: each chunk starts (causal temporal context, first latent slice) from frames that
have already been through the VAE once more than the rest, and the following chunk starts from the decode
of that. The ground-truth frames entering later in a chunk are fresh, so this is a lower bound on
carry-over drift (a generator additionally copies the carried appearance into new frames).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from baselines.arguments import VAERoundTripConfig
from bench.animator import AnimationRequest, Capabilities, ChunkInput
from bench.errors import ConfigError, MethodError
from bench.models.vae_method import VAEMethod

STATE_FORMAT = "vae_roundtrip/1"


class VAERoundTrip(VAEMethod):
    name = "vae_roundtrip"
    version = "1"
    description = "ground truth through the Wan VAE per chunk, carry-over frames decoded and re-encoded (ground " \
                  "truth re-enters every chunk: a lower bound on VAE loss, not the paper's Finding 1)"

    Config = VAERoundTripConfig

    def capabilities(self) -> Capabilities:
        return Capabilities(native_fps=25, chunk_frames=self.config.chunk_frames, overlap_frames=self.config.refert_num,
                            can_resume=True, max_references=0)

    def model_info(self) -> dict[str, Any]:
        info = super().model_info()
        info["settings"] = {"chunk_frames": self.config.chunk_frames, "refert_num": self.config.refert_num,
                            "geometry": "Wan-Animate segments (77 frames, carry 1 or 5 decoded frames)"}
        info["round_trip"] = ("per chunk: GT frames, first refert_num replaced by the previous chunk's last decoded "
                              "frames, encoded (posterior mode) and decoded once as one clip")
        if self.vae is not None:
            info["vae"] = {"trained": self.trained, "dtype": str(self.vae.dtype),
                           "params": int(sum(p.numel() for p in self.vae.parameters()))}
            if not self.trained:
                info["description"] += " [untrained random VAE: smoke tests only]"
        info["adaptations"] = [a.to_dict() for a in self.adaptations]
        return info

    def start(self, request: AnimationRequest) -> dict:
        if self.vae is None:
            raise MethodError("vae_roundtrip: start() called before load()", fix="call animator.load(device) first")
        if request.height % 8 or request.width % 8:
            raise ConfigError(f"vae_roundtrip: height and width must be divisible by 8, got "
                              f"{request.height}x{request.width}", fix="ask for a size divisible by 8")
        return {"request": request, "rollout_key": self.resume_key(request), "next_chunk": 0, "carry": None}

    @torch.no_grad()
    def step(self, state: dict, chunk: ChunkInput) -> tuple[np.ndarray, dict]:
        from bench.models.wan import pixels_to_unit, unit_to_uint8, vae_decode, vae_encode, video_pixels

        # 1. Input checks.
        spec, request, r = chunk.spec, state["request"], self.config.refert_num
        if spec.index != state["next_chunk"] or spec.chunk_frames != self.config.chunk_frames \
                or spec.drop != (0 if spec.index == 0 else r):
            raise MethodError(f"vae_roundtrip: unexpected chunk {spec}", fix="plan chunks with this method's capabilities")
        # 2. Ground truth of the chunk (reflect-padded like the pose), at the request size.
        idx = chunk.pose_index
        lo, hi = int(idx.min()), int(idx.max()) + 1
        gt = request.sample.gt(lo, hi)[idx - lo]
        if gt.shape[1:3] != (request.height, request.width):
            self.record("resize", "ground truth resized (Lanczos) to the request size",
                        src=f"{gt.shape[2]}x{gt.shape[1]}", dst=f"{request.width}x{request.height}")
        pixels = video_pixels(gt, request.height, request.width).to(device=self.device, dtype=self.vae.dtype)
        # 3. Carry-over: the previous chunk's last decoded frames replace this chunk's first r frames.
        if state["carry"] is not None:
            pixels[:, :, :r] = state["carry"].to(pixels)
        # 4. One round trip of the whole chunk.
        decoded = vae_decode(self.vae, vae_encode(self.vae, pixels))
        frames = unit_to_uint8(pixels_to_unit(decoded[:, :, spec.drop:]))
        return frames, {**state, "next_chunk": spec.index + 1, "carry": decoded[:, :, -r:].clone()}

    def state_dict(self, state: dict) -> dict:
        carry = state["carry"].detach().cpu() if state["carry"] is not None else torch.zeros(0)
        return {"format": STATE_FORMAT, "rollout_key": state["rollout_key"], "next_chunk": state["next_chunk"], "carry": carry}

    def load_state_dict(self, request: AnimationRequest, blob: dict) -> dict:
        state = self.start(request)
        if not isinstance(blob, dict) or blob.get("format") != STATE_FORMAT:
            raise MethodError("vae_roundtrip: the stored resume state is not a vae_roundtrip/1 state",
                              fix="delete the stored rollout and run it again")
        self.check_resume(request, blob)
        carry = blob["carry"]
        state["carry"] = carry.to(self.device) if carry.numel() else None
        state["next_chunk"] = int(blob["next_chunk"])
        return state
