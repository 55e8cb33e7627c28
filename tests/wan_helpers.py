"""Test helpers for the Wan-based methods: an in-memory ``Sample`` and the diffusers pipeline built from the
same components (the reference implementation the segment loop must reproduce)."""
from __future__ import annotations

import contextlib
import hashlib

import numpy as np

from bench.errors import DataError
from bench.sample import Sample


class ArraySample(Sample):
    """A sample held in memory: random textured frames, pose = a darker copy, face = a crop."""

    def __init__(self, n_frames: int = 30, height: int = 32, width: int = 32, face_size: int = 16, seed: int = 0,
                 sample_id: str = "mem"):
        rng = np.random.default_rng(seed)
        base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        frames = np.repeat(base[None], n_frames, axis=0)
        for t in range(n_frames):
            x = (3 * t) % max(1, width - 8)
            frames[t, 4:12, x:x + 8] = (255 - (5 * t) % 256, 90, 30)
        self.id, self.fps, self.n_frames, self.height, self.width = sample_id, 25, n_frames, height, width
        self._gt = frames
        self._pose = (frames // 3).astype(np.uint8)
        self._face = np.ascontiguousarray(frames[:, :face_size, :face_size])
        self._ref = frames[0].copy()

    @property
    def content_hash(self) -> str:
        h = hashlib.sha256()
        for a in (self._gt, self._pose, self._face, self._ref):
            h.update(a.tobytes())
        return h.hexdigest()

    def _range(self, a, b, arr):
        if not 0 <= a <= b <= self.n_frames:
            raise DataError(f"frames [{a}, {b}) outside 0..{self.n_frames}", fix="ask for fewer frames")
        return arr[a:b].copy()

    def gt(self, a, b):
        return self._range(a, b, self._gt)

    def pose(self, a, b):
        return self._range(a, b, self._pose)

    def face(self, a, b):
        return self._range(a, b, self._face)

    def references(self):
        return [self._ref.copy()]

    def keypoints(self):
        n = self.n_frames
        return {"body": np.zeros((n, 18, 3), np.float32), "face": np.zeros((n, 68, 3), np.float32),
                "face_boxes": np.tile(np.array([[0, 0, 16, 16]], np.float32), (n, 1))}


def collect(animator, request, resume=None):
    """Run ``animator.generate`` and return (frames concatenated, list of (spec, state blob))."""
    out = []

    def sink(spec, frames, blob):
        out.append((spec, frames, blob))

    animator.generate(request, sink, resume=resume)
    return np.concatenate([f for _, f, _ in out]), [(s, b) for s, _, b in out]


def pipeline_frames(components, sample: Sample, n_frames: int, height: int, width: int, seed: int, scheduler,
                    segment_frames: int, refert_num: int, steps: int) -> np.ndarray:
    """``diffusers.WanAnimatePipeline`` on the same components and inputs, as uint8 ``(n_frames, H, W, 3)``."""
    import torch
    from diffusers import WanAnimatePipeline
    from PIL import Image

    from bench.models.wan import encode_prompt, unit_to_uint8

    pipe = WanAnimatePipeline(tokenizer=None, text_encoder=None, vae=components.vae, scheduler=scheduler,
                              image_processor=components.image_processor, image_encoder=components.image_encoder,
                              transformer=components.transformer)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(image=Image.fromarray(sample.references()[0]),
               pose_video=[Image.fromarray(f) for f in sample.pose(0, n_frames)],
               face_video=[Image.fromarray(f) for f in sample.face(0, n_frames)],
               prompt_embeds=encode_prompt(components), height=height, width=width,
               segment_frame_length=segment_frames, num_inference_steps=steps,
               prev_segment_conditioning_frames=refert_num, guidance_scale=1.0,
               generator=torch.Generator("cpu").manual_seed(seed), output_type="np").frames[0]
    return unit_to_uint8(out)


@contextlib.contextmanager
def single_thread():
    """Tiny models run fastest on one thread; two threads on a shared 2-core machine can be 10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
