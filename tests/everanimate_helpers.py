"""EverAnimate test helpers: an in-memory ``Sample`` with simple moving content, and a chunk collector."""
from __future__ import annotations

import hashlib

import numpy as np

from bench.sample import Sample


class MovingSquareSample(Sample):
    """A textured background with a coloured square moving across it; pose = a white square outline."""

    def __init__(self, n_frames: int = 40, size: int = 64, face: int = 16, n_refs: int = 1, seed: int = 0,
                 sample_id: str = "square"):
        self.id, self.fps, self.n_frames, self.height, self.width = sample_id, 25, n_frames, size, size
        rng = np.random.default_rng(seed)
        self._bg = (rng.random((size, size, 3)) * 120 + 40).astype(np.uint8)
        self._colour = rng.integers(150, 256, 3).astype(np.uint8)
        self._face = face
        self._n_refs = n_refs
        self._seed = seed

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(f"square/{self.id}/{self.n_frames}/{self.height}/{self._seed}".encode()).hexdigest()

    def _pos(self, i: int) -> tuple[int, int]:
        s = self.height // 4
        x = int((self.width - s) * (0.5 + 0.5 * np.sin(i / 7.0)))
        y = int((self.height - s) * (0.5 + 0.5 * np.cos(i / 11.0)))
        return x, y

    def gt(self, start, stop):
        out = np.repeat(self._bg[None], stop - start, axis=0)
        s = self.height // 4
        for j, i in enumerate(range(start, stop)):
            x, y = self._pos(i)
            out[j, y:y + s, x:x + s] = self._colour
        return out

    def pose(self, start, stop):
        out = np.zeros((stop - start, self.height, self.width, 3), np.uint8)
        s = self.height // 4
        for j, i in enumerate(range(start, stop)):
            x, y = self._pos(i)
            out[j, y:y + s, x] = out[j, y:y + s, x + s - 1] = 255
            out[j, y, x:x + s] = out[j, y + s - 1, x:x + s] = 255
        return out

    def face(self, start, stop):
        idx = np.arange(start, stop)
        return np.stack([np.full((self._face, self._face, 3), (i * 5) % 256, np.uint8) for i in idx])

    def references(self):
        return [self.gt(i * 3, i * 3 + 1)[0] for i in range(self._n_refs)]

    def keypoints(self):
        t = self.n_frames
        return {"body": np.zeros((t, 18, 3), np.float32), "face": np.zeros((t, 0, 3), np.float32),
                "face_boxes": np.full((t, 4), np.nan, np.float32)}


class Collector:
    """A ``ChunkSink`` keeping every chunk's frames and resume blob."""

    def __init__(self):
        self.frames, self.blobs = [], []

    def __call__(self, spec, frames, blob):
        self.frames.append(frames)
        self.blobs.append(blob)

    @property
    def video(self) -> np.ndarray:
        return np.concatenate(self.frames)
