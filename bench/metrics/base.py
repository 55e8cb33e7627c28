"""The streaming metric contract.

A metric sees a video pair chunk by chunk (``update(FrameBatch)``), never a whole video. Two kinds:

* **series** metrics (PSNR, SSIM, LPIPS, F-PSNR, BG-PSNR, V-MAE paired) produce one value per frame or
  per clip; the scorer derives every horizon (a prefix mean), the per-window drift curve and the drift
  slope from that one series, so one 90 s rollout serves all horizons.
* **pooled** metrics (FID, V-MAE Frechet) produce a state per video (``pooled_state``) that is merged over
  every video of a (method, horizon) cell and turned into one value by ``pooled_compute``.

The protocol version is recorded in every score; changing any definition bumps it.
"""
from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from bench.errors import DataError

PROTOCOL_VERSION = "bench-metrics/1"


@dataclass(frozen=True)
class FrameBatch:
    """Aligned frames ``[start, start + T)`` of ground truth and prediction, ``uint8 (T, H, W, 3)``."""

    start: int
    gt: np.ndarray
    pred: np.ndarray
    face_boxes: np.ndarray | None = None  # float (T, 4) [x0, y0, x1, y1] from the GT, NaN rows: no face
    masks: np.ndarray | None = None  # bool (T, H, W), True on the GT person

    def __post_init__(self):
        _check_frames("ground truth", self.gt)
        _check_frames("prediction", self.pred)
        if self.gt.shape != self.pred.shape:
            raise DataError(f"frames {self.start}..: ground truth {self.gt.shape} and prediction {self.pred.shape} differ",
                            fix="score videos of equal size and length, or pass an explicit --resize / --truncate")
        t, h, w = self.gt.shape[:3]
        if self.face_boxes is not None:
            boxes = np.asarray(self.face_boxes)
            if boxes.shape != (t, 4):
                raise DataError(f"face boxes have shape {boxes.shape}, expected ({t}, 4)",
                                fix="give one [x0, y0, x1, y1] row per frame, NaN where there is no face")
            if np.isinf(boxes).any():
                raise DataError("face boxes contain inf", fix="use NaN rows for frames without a face")
        if self.masks is not None:
            masks = np.asarray(self.masks)
            if masks.shape != (t, h, w) or masks.dtype != np.bool_:
                raise DataError(f"person masks are {masks.dtype} {masks.shape}, expected bool ({t}, {h}, {w})",
                                fix="give one boolean mask per frame at the ground-truth size")

    def __len__(self) -> int:
        return len(self.gt)


def _check_frames(what: str, frames: np.ndarray) -> None:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        if np.issubdtype(frames.dtype, np.floating) and not np.isfinite(frames).all():
            bad = int(np.count_nonzero(~np.isfinite(frames)))
            raise DataError(f"{what} frames contain {bad} NaN/inf values",
                            fix="the generator produced invalid output; fix it or re-generate the rollout")
        raise DataError(f"{what} frames are {frames.dtype}, the protocol scores uint8 RGB",
                        fix="convert with np.clip(np.round(x * 255), 0, 255).astype(np.uint8) (declare the conversion)")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise DataError(f"{what} frames have shape {frames.shape}, expected (T, H, W, 3)", fix="pass RGB frames")


@dataclass(frozen=True)
class WeightRecord:
    """A weight file a metric used, verified by sha256."""

    name: str
    path: str
    sha256: str


@dataclass(frozen=True)
class Series:
    """Per-frame or per-clip values. ``last_frame[i]`` is the last frame index value ``i`` depends on, so a
    horizon of ``n`` frames uses the values with ``last_frame < n``. NaN values are uncovered (no face)."""

    last_frame: np.ndarray  # int64 (N,)
    values: np.ndarray  # float64 (N,)


class _RegistryFact:
    """A class attribute read from the metric's registry entry (``bench.metrics.METRICS``), so the
    direction and display name of a metric are stated once."""

    def __init__(self, field: str):
        self.field = field

    def __get__(self, obj, cls):
        from bench.metrics import metric_info

        return getattr(metric_info(cls.name), self.field)


class Metric(ABC):
    name: ClassVar[str]
    display = _RegistryFact("display")
    higher_is_better = _RegistryFact("higher_is_better")
    description: ClassVar[str] = ""
    pooled: ClassVar[bool] = False
    needs: ClassVar[tuple[str, ...]] = ()  # subset of ("face_boxes", "masks")

    def __init__(self, *, device: str = "cpu", horizons: Sequence[int] = (), gt_cache_dir: str | None = None):
        self.device = device
        self.horizons = tuple(sorted({int(h) for h in horizons}))
        self.gt_cache_dir = gt_cache_dir
        self.gt_key: str | None = None

    def set_gt_key(self, key: str | None) -> None:
        """Name the ground truth of the video about to be scored (e.g. the sample's content hash). Metrics
        that cache ground-truth statistics (FID) use it with ``gt_cache_dir``; others ignore it. Call after
        ``reset()`` and before the first ``update``."""
        self.gt_key = key

    def set_chunk_geometry(self, chunk_frames: int, overlap_frames: int, source: str = "given") -> None:
        """The generator's chunking (output chunk ``c > 0`` adds ``chunk_frames - overlap_frames`` frames), for
        metrics that look at chunk joins (``seam``); others ignore it. Call before the first ``update``."""

    def gt_cache_file(self, kind: str, **identity) -> Path | None:
        """The cache file of this ground truth's ``kind`` features, named by a hash of the GT key and
        ``identity`` (preprocessing, weights, horizons, ...); None without ``gt_cache_dir`` or a GT key."""
        if not (self.gt_cache_dir and self.gt_key):
            return None
        blob = json.dumps({"gt": self.gt_key, **identity}, sort_keys=True)
        return Path(self.gt_cache_dir) / f"{kind}-gt-{hashlib.sha256(blob.encode()).hexdigest()[:32]}.npz"

    def info(self) -> dict:
        """Extra facts about the last video (e.g. F-PSNR face coverage); JSON-serialisable."""
        return {}

    @classmethod
    def check_weights(cls) -> list[WeightRecord]:
        """Verify the metric's weights are present and intact; raise ``WeightsError`` naming the file, the
        expected hash and where to put it. Metrics without weights return ``[]``."""
        return []

    def weights(self) -> list[WeightRecord]:
        return type(self).check_weights()

    @abstractmethod
    def update(self, batch: FrameBatch) -> None: ...

    @abstractmethod
    def reset(self) -> None: ...

    def series(self) -> Series:
        raise NotImplementedError(f"{self.name} is pooled; use pooled_state()")

    def pooled_state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError(f"{self.name} is a series metric; use series()")

    @classmethod
    def pooled_compute(cls, states: Sequence[dict[str, np.ndarray]]) -> dict[int, tuple[float, dict]]:
        """Merge per-video states of one cell; returns ``{horizon_frames: (value, extra)}``."""
        raise NotImplementedError


class PerFrameMetric(Metric):
    """A series metric with one float64 value per frame; subclasses implement ``frame_values(batch)``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.reset()

    def reset(self) -> None:
        self._index: list[np.ndarray] = []
        self._values: list[np.ndarray] = []

    @abstractmethod
    def frame_values(self, batch: FrameBatch) -> np.ndarray: ...

    def update(self, batch: FrameBatch) -> None:
        values = np.asarray(self.frame_values(batch), dtype=np.float64)
        self._index.append(np.arange(batch.start, batch.start + len(batch), dtype=np.int64))
        self._values.append(values)

    def merge(self, other: "PerFrameMetric") -> None:
        """Add another instance's values (e.g. frames scored by another process)."""
        self._index.extend(other._index)
        self._values.extend(other._values)

    def series(self) -> Series:
        if not self._values:
            return Series(np.zeros(0, np.int64), np.zeros(0, np.float64))
        index, values = np.concatenate(self._index), np.concatenate(self._values)
        order = np.argsort(index, kind="stable")
        index, values = index[order], values[order]
        if len(index) > 1 and (np.diff(index) == 0).any():
            raise DataError(f"{self.name}: some frames were scored twice", fix="feed each frame range once")
        return Series(index, values)
