"""Persistent Latent Propagation: the memory slots and the transformer input layout of ``K + T`` slots.

Along time the DiT sees ``[anchor_1 .. anchor_K | target_1 .. target_T]``. Channels (as Wan-Animate):
``[noisy latent (C) | mask (4) | condition latent (C)]`` with the condition latent
``[anchor_1..anchor_K | motion | zeros x (T - 1)]`` (the zeros are the null pad) and the mask 1 on the
anchor slots only (the release does not flag the motion slot). Pose latents are added to the T target
slots only; the face-motion features get K zero tokens in front for the anchor slots.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MASK_CHANNELS = 4


@dataclass(frozen=True)
class MemoryLayout:
    n_memory: int  # K identity-memory slots
    n_target: int  # T target slots

    @property
    def n_slots(self) -> int:
        return self.n_memory + self.n_target

    @property
    def target(self) -> slice:
        return slice(self.n_memory, self.n_slots)


def condition_latents(anchors: torch.Tensor, motion: torch.Tensor | None, n_target: int,
                      flag_motion: bool = False) -> torch.Tensor:
    """``[mask (4) | anchors, motion, null pad]``: ``(B, 4 + C, K + T, h, w)``.

    ``anchors`` ``(B, C, K, h, w)``; ``motion`` ``(B, C, 1, h, w)`` or None (chunk 0: zeros).
    ``flag_motion`` also marks the motion slot as known (off: the release's behaviour).
    """
    b, c, k, h, w = anchors.shape
    if motion is None:
        motion = anchors.new_zeros(b, c, 1, h, w)
    pad = anchors.new_zeros(b, c, n_target - 1, h, w)
    latents = torch.cat([anchors, motion.to(anchors.dtype), pad], dim=2)
    mask = anchors.new_zeros(b, MASK_CHANNELS, k + n_target, h, w)
    mask[:, :, :k] = 1
    if flag_motion:
        mask[:, :, k] = 1
    return torch.cat([mask, latents], dim=1)


def model_input(noisy: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    """Noisy latent ``(B, C, K + T, h, w)`` and condition -> the DiT input ``(B, 2C + 4, K + T, h, w)``."""
    return torch.cat([noisy, condition.to(noisy.dtype)], dim=1)


def pad_face_features(face_features: torch.Tensor, n_memory: int) -> torch.Tensor:
    """``(B, T, N, D)`` motion features of the target slots -> ``(B, K + T, N, D)`` with zeros for the anchors."""
    b, _, n, d = face_features.shape
    return torch.cat([face_features.new_zeros(b, n_memory, n, d), face_features], dim=1)


def transformer_forward(transformer, hidden_states: torch.Tensor, timestep: torch.Tensor, text_embeds: torch.Tensor,
                        clip_embeds: torch.Tensor | None, pose_latents: torch.Tensor, face_features: torch.Tensor,
                        n_memory: int) -> torch.Tensor:
    """``WanAnimateTransformer3DModel.forward`` with ``n_memory`` memory slots instead of its one reference
    slot, and with the face-motion features ``(B, T, N, D)`` precomputed once per chunk
    (see ``wan_io.face_motion_features``). With ``n_memory = 1`` it equals the diffusers forward."""
    tr = transformer
    b, _, n_slots, height, width = hidden_states.shape
    if pose_latents.shape[2] != n_slots - n_memory:
        raise ValueError(f"pose latents have {pose_latents.shape[2]} slices for {n_slots - n_memory} target slots")
    p_t, p_h, p_w = tr.config.patch_size
    dtype = tr.patch_embedding.weight.dtype
    hidden_states = hidden_states.to(dtype)

    rotary_emb = tr.rope(hidden_states)
    x = tr.patch_embedding(hidden_states)
    pose = tr.pose_patch_embedding(pose_latents.to(dtype))
    x = torch.cat([x[:, :, :n_memory], x[:, :, n_memory:] + pose], dim=2)
    x = x.flatten(2).transpose(1, 2).contiguous()

    temb, timestep_proj, context, context_img = tr.condition_embedder(
        timestep, text_embeds.to(dtype), None if clip_embeds is None else clip_embeds.to(dtype), timestep_seq_len=None)
    timestep_proj = timestep_proj.unflatten(1, (6, -1))
    if context_img is not None:
        context = torch.cat([context_img, context], dim=1)

    motion_vec = pad_face_features(face_features.to(dtype), n_memory)
    every = tr.config.inject_face_latents_blocks
    for i, block in enumerate(tr.blocks):
        if torch.is_grad_enabled() and tr.gradient_checkpointing:
            x = tr._gradient_checkpointing_func(block, x, context, timestep_proj, rotary_emb)
        else:
            x = block(x, context, timestep_proj, rotary_emb)
        if i % every == 0:
            x = x + tr.face_adapter[i // every](x, motion_vec)

    shift, scale = (tr.scale_shift_table + temb.unsqueeze(1)).chunk(2, dim=1)
    out = tr.norm_out(x.float())
    out = (out * (1 + scale) + shift).to(x.dtype)
    out = tr.proj_out(out)
    out = out.reshape(b, n_slots // p_t, height // p_h, width // p_w, p_t, p_h, p_w, -1)
    out = out.permute(0, 7, 1, 4, 2, 5, 3, 6)
    return out.flatten(6, 7).flatten(4, 5).flatten(2, 3).float()


def completion_frame_indices(n_frames: int, n_pick: int, generator: torch.Generator) -> list[int]:
    """``n_pick`` distinct frames of the generated chunk 0, drawn with ``generator`` among frames ``1..n-1``
    (never frame 0, as the release), in ascending order."""
    if n_pick > n_frames - 1:
        raise ValueError(f"cannot pick {n_pick} distinct frames from frames 1..{n_frames - 1} of chunk 0")
    perm = torch.randperm(n_frames - 1, generator=generator)[:n_pick]
    return sorted(int(i) + 1 for i in perm)


def completion_images(references: list[np.ndarray], chunk0_frames: np.ndarray, n_memory: int,
                      generator: torch.Generator) -> tuple[list[np.ndarray], list[int]]:
    """From chunk 1 on: ``K - len(references)`` random generated frames of chunk 0 (never its frame 0), then
    the user's views (the canonical reference last). Returns the images and the chosen frame indices."""
    n_pick = n_memory - len(references)
    idx = completion_frame_indices(len(chunk0_frames), n_pick, generator)
    return [chunk0_frames[i] for i in idx] + list(references[1:]) + [references[0]], idx
