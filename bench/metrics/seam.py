"""Seam: how much more a prediction changes across a chunk join than the ground truth does there.

Chunked generators (77-frame chunks, 4-frame overlap: chunk ``c > 0`` adds 73 new frames) start a new
chunk at output frames ``77, 150, 223, ...`` (``join_k = C + k (C - O)``). A seam is a visible jump at such
a frame: a change from frame ``j - 1`` to frame ``j`` larger than the motion around it. The ground truth
moves too, so the prediction's jump is measured against the ground truth's change at the same frames, each
in units of its own within-chunk change (definition: docs/metrics.md#seam):

    d(t)   = mean |x_t - x_{t-1}| over pixels and RGB channels, on [0, 255]       (per video, per frame)
    w(j)   = mean of d(t) over t in [j - K, j + K], t != j and t not itself a join   (within-chunk change)
    r(j)   = d(j) / max(w(j), FLOOR)
    seam_j = r_pred(j) - r_gt(j)

0 means the join looks like the ground truth's motion there; 1 means the prediction's change across the
join is one within-chunk change larger than the ground truth's. A static prediction scores about -1 (no
change anywhere). ``K`` = 8 frames, ``FLOOR`` = 0.5 grey levels (below it a video is still, and the ratio
would be noise over noise). The series value of join ``j`` depends on frames up to ``j + K`` (its
``last_frame``), so a horizon counts the joins whose whole neighbourhood it holds; joins are flagged when
``seam_j > FLAG_THRESHOLD`` (1.0) and the count is reported.

Streaming: only one previous frame per video and two floats per frame are kept.
"""
from __future__ import annotations

import numpy as np

from bench.errors import ConfigError
from bench.metrics.base import FrameBatch, Metric, Series

DEFAULT_CHUNK_FRAMES = 77
DEFAULT_OVERLAP_FRAMES = 4
HALF_WINDOW = 8
FLOOR = 0.5
FLAG_THRESHOLD = 1.0


def join_frames(n_frames: int, chunk_frames: int, overlap_frames: int) -> np.ndarray:
    """Output frames where a new chunk starts (``C + k (C - O)``) below ``n_frames``."""
    if chunk_frames <= overlap_frames or overlap_frames < 0 or chunk_frames < 1:
        raise ConfigError(f"chunk geometry {chunk_frames} frames / {overlap_frames} overlap is impossible",
                          fix="the chunk must be longer than its overlap, e.g. 77 frames with a 4-frame overlap")
    return np.arange(chunk_frames, max(chunk_frames, n_frames), chunk_frames - overlap_frames, dtype=np.int64)


def frame_changes(frames: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """``d(t)`` for every frame of ``frames`` (``uint8 (T, H, W, 3)``): mean absolute difference from the
    frame before (``previous`` for the first; NaN without one). Exact: integer L1 norm, float64 mean."""
    import cv2

    out = np.empty(len(frames), np.float64)
    size = frames[0].size if len(frames) else 1
    for i, frame in enumerate(frames):
        before = previous if i == 0 else frames[i - 1]
        out[i] = np.nan if before is None else cv2.norm(frame, before, cv2.NORM_L1) / size
    return out


def seam_values(d_gt: np.ndarray, d_pred: np.ndarray, joins: np.ndarray, half_window: int = HALF_WINDOW,
                floor: float = FLOOR) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per join: ``(seam_j, r_pred(j), r_gt(j))`` from whole-video change series (NaN = unknown frame)."""
    n = len(d_gt)
    is_join = np.zeros(n, bool)
    is_join[joins[joins < n]] = True
    seams, r_preds, r_gts = [], [], []
    for j in joins:
        lo, hi = max(1, j - half_window), min(n, j + half_window + 1)
        around = np.arange(lo, hi)
        around = around[~is_join[around]]
        ratios = []
        for d in (d_pred, d_gt):
            within = d[around]
            within = within[np.isfinite(within)]
            w = within.mean() if len(within) else np.nan
            ratios.append(d[j] / max(w, floor) if np.isfinite(w) and np.isfinite(d[j]) else np.nan)
        r_preds.append(ratios[0]), r_gts.append(ratios[1])
        seams.append(ratios[0] - ratios[1])
    return np.asarray(seams, np.float64), np.asarray(r_preds, np.float64), np.asarray(r_gts, np.float64)


class Seam(Metric):
    name = "seam"
    description = ("change across chunk joins relative to within-chunk change, prediction minus ground truth "
                   "(0 = joins move like the GT; > 1 flagged)")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.chunk_frames = DEFAULT_CHUNK_FRAMES
        self.overlap_frames = DEFAULT_OVERLAP_FRAMES
        self.geometry_source = "default (77-frame chunks, 4-frame overlap)"
        self.reset()

    def set_chunk_geometry(self, chunk_frames: int, overlap_frames: int, source: str = "given") -> None:
        join_frames(0, int(chunk_frames), int(overlap_frames))  # validates
        self.chunk_frames, self.overlap_frames = int(chunk_frames), int(overlap_frames)
        self.geometry_source = source

    def reset(self) -> None:
        self._starts: list[int] = []
        self._gt: list[np.ndarray] = []
        self._pred: list[np.ndarray] = []
        self._prev: tuple[int, np.ndarray, np.ndarray] | None = None  # (frame index, gt frame, pred frame)
        self._flagged = 0
        self._joins = 0

    def update(self, batch: FrameBatch) -> None:
        if not len(batch):
            return
        prev_gt = prev_pred = None
        if self._prev is not None and self._prev[0] == batch.start - 1:
            _, prev_gt, prev_pred = self._prev
        self._starts.append(batch.start)
        self._gt.append(frame_changes(batch.gt, prev_gt))
        self._pred.append(frame_changes(batch.pred, prev_pred))
        self._prev = (batch.start + len(batch) - 1, batch.gt[-1].copy(), batch.pred[-1].copy())

    def _changes(self) -> tuple[np.ndarray, np.ndarray]:
        n = max((s + len(v) for s, v in zip(self._starts, self._gt)), default=0)
        d_gt, d_pred = np.full(n, np.nan), np.full(n, np.nan)
        for s, g, p in zip(self._starts, self._gt, self._pred):
            d_gt[s:s + len(g)], d_pred[s:s + len(p)] = g, p
        return d_gt, d_pred

    def series(self) -> Series:
        d_gt, d_pred = self._changes()
        n = len(d_gt)
        joins = join_frames(n, self.chunk_frames, self.overlap_frames)
        joins = joins[joins + HALF_WINDOW < n]  # a join counts once its whole neighbourhood is scored
        values, _, _ = seam_values(d_gt, d_pred, joins)
        self._joins = int(len(joins))
        self._flagged = int(np.sum(values > FLAG_THRESHOLD))
        return Series(joins + HALF_WINDOW, values)

    def info(self) -> dict:
        if not self._gt:
            return {}
        self.series()
        return {"chunk_frames": self.chunk_frames, "overlap_frames": self.overlap_frames,
                "geometry": self.geometry_source, "joins": self._joins, "joins_flagged": self._flagged,
                "flag_threshold": FLAG_THRESHOLD, "half_window": HALF_WINDOW, "floor": FLOOR}
