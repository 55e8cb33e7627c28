"""Face crops: the face-keypoint box scaled x1.3, made square, cut out (zero padding outside the frame) and
resized to S x S — 512 at paper scale (Wan-Animate's face adapter input), H/4 in the small lab sizes
(16 px at lab-64, 32 px at lab-128) so lab models stay within the CPU budget.

Boxes are ``[x0, y0, x1, y1]`` in pixels. ``face_boxes`` gives the box from face points alone (NaN where
fewer than ``MIN_POINTS`` face points are confident: the box metrics like F-PSNR use); ``crop_boxes`` fills
those frames for the crop video from the head's body points (nose, eyes, ears), else holds the nearest
valid box, so every frame has a crop. ``CropReport`` records the padding and the resampling.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SCALE = 1.3
MIN_POINTS = 3
THRESHOLD = 0.3
HEAD_POINTS = (0, 14, 15, 16, 17)


def _square(x0, y0, x1, y1, scale=SCALE):
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = scale * np.maximum(x1 - x0, y1 - y0)
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], -1)


def face_boxes(face: np.ndarray, threshold: float = THRESHOLD, min_points: int = MIN_POINTS) -> np.ndarray:
    """``(T, 4)`` square x1.3 boxes of the confident face points of ``face (T, F, 3)``; NaN rows where none."""
    face = np.asarray(face, np.float64)
    ok = (face[..., 2] >= threshold) & np.isfinite(face[..., 0]) & np.isfinite(face[..., 1])
    x = np.where(ok, face[..., 0], np.nan)
    y = np.where(ok, face[..., 1], np.nan)
    enough = ok.sum(1) >= min_points
    out = np.full((len(face), 4), np.nan)
    if enough.any():
        xs, ys = x[enough], y[enough]
        box = _square(np.nanmin(xs, 1), np.nanmin(ys, 1), np.nanmax(xs, 1), np.nanmax(ys, 1))
        valid = box[:, 2] > box[:, 0]
        rows = np.flatnonzero(enough)
        out[rows[valid]] = box[valid]
    return out


def head_boxes(body: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Fallback boxes from the head's body points (nose, eyes, ears; side from the neck distance)."""
    body = np.asarray(body, np.float64)
    head = body[:, HEAD_POINTS]
    ok = head[..., 2] >= threshold
    out = np.full((len(body), 4), np.nan)
    rows = ok.any(1)
    if not rows.any():
        return out
    head, ok = head[rows], ok[rows]
    x = np.where(ok, head[..., 0], np.nan)
    y = np.where(ok, head[..., 1], np.nan)
    cx, cy = np.nanmean(x, 1), np.nanmean(y, 1)
    span = np.maximum(np.nanmax(x, 1) - np.nanmin(x, 1), np.nanmax(y, 1) - np.nanmin(y, 1))
    neck = body[rows, 1]
    neck_span = np.where(neck[:, 2] >= threshold, 0.9 * np.hypot(cx - neck[:, 0], cy - neck[:, 1]), 0.0)
    side = SCALE * np.maximum(span, np.nan_to_num(neck_span))
    box = np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], 1)
    box[side <= 0] = np.nan
    out[rows] = box
    return out


def fill_boxes(boxes: np.ndarray, fallback: np.ndarray | None = None, height: int = 0, width: int = 0) -> np.ndarray:
    """Every row finite: face box, else ``fallback`` box, else the previous (or first later) valid box, else
    the top-centre quarter of the frame."""
    out = np.array(boxes, np.float64, copy=True)
    if fallback is not None:
        missing = ~np.isfinite(out).all(1)
        out[missing] = fallback[missing]
    valid = np.isfinite(out).all(1)
    if not valid.any():
        side = max(1.0, min(height, width) / 4)
        out[:] = [width / 2 - side / 2, 0, width / 2 + side / 2, side]
        return out
    idx = np.where(valid, np.arange(len(out)), -1)
    idx = np.maximum.accumulate(idx)
    first = int(np.argmax(valid))
    idx[idx < 0] = first
    return out[idx]


@dataclass
class CropReport:
    """What cropping did: frames that needed zero padding (box outside the frame), the largest padding in
    pixels, and the resampling (source box side -> output side)."""

    size: int
    padded_frames: int = 0
    max_pad_px: int = 0
    min_box_px: int = 0
    max_box_px: int = 0
    interpolation: str = "area when shrinking, linear when enlarging"

    def update(self, other: "CropReport") -> None:
        self.padded_frames += other.padded_frames
        self.max_pad_px = max(self.max_pad_px, other.max_pad_px)
        self.min_box_px = other.min_box_px if not self.min_box_px else min(self.min_box_px, other.min_box_px)
        self.max_box_px = max(self.max_box_px, other.max_box_px)

    def to_dict(self) -> dict:
        return {"size": self.size, "scale": SCALE, "padded_frames": self.padded_frames,
                "max_pad_px": self.max_pad_px, "box_px_range": [self.min_box_px, self.max_box_px],
                "interpolation": self.interpolation}


def crop_faces(frames: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, CropReport]:
    """Crops ``(T, size, size, 3)`` of ``frames (T, H, W, 3)`` at finite ``boxes (T, 4)``."""
    frames = np.asarray(frames)
    T, H, W = frames.shape[:3]
    if len(boxes) != T:
        raise ValueError(f"{T} frames but {len(boxes)} boxes")
    if not np.isfinite(boxes).all():
        raise ValueError("crop_faces needs finite boxes; use fill_boxes first")
    out = np.empty((T, size, size) + frames.shape[3:], frames.dtype)
    report = CropReport(size)
    x0s = np.floor(boxes[:, 0]).astype(np.int64)
    y0s = np.floor(boxes[:, 1]).astype(np.int64)
    sides = np.maximum(1, np.round(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]))).astype(np.int64)
    report.min_box_px, report.max_box_px = int(sides.min()), int(sides.max())
    for t in range(T):
        x0, y0, side = int(x0s[t]), int(y0s[t]), int(sides[t])
        x1, y1 = x0 + side, y0 + side
        if x0 >= 0 and y0 >= 0 and x1 <= W and y1 <= H:
            patch = frames[t, y0:y1, x0:x1]
        else:
            patch = np.zeros((side, side) + frames.shape[3:], frames.dtype)
            sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
            if sx1 > sx0 and sy1 > sy0:
                patch[sy0 - y0: sy1 - y0, sx0 - x0: sx1 - x0] = frames[t, sy0:sy1, sx0:sx1]
            report.padded_frames += 1
            report.max_pad_px = max(report.max_pad_px, -x0, -y0, x1 - W, y1 - H)
        if side == size:
            out[t] = patch
        else:
            interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
            out[t] = cv2.resize(patch, (size, size), interpolation=interp)
    return out, report


class StreamingCropper:
    """Face crops for consecutive chunks of one video: frames without a face box reuse the head box or the
    last valid box from earlier chunks, so chunked and whole-video cropping give identical results."""

    def __init__(self, size: int, height: int, width: int):
        self.size, self.height, self.width = size, height, width
        self.report = CropReport(size)
        self._last: np.ndarray | None = None

    def __call__(self, frames: np.ndarray, body: np.ndarray, face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Returns ``(crops (T, S, S, 3), face boxes (T, 4) with NaN where no face)``."""
        boxes = face_boxes(face) if face is not None and face.shape[1] else np.full((len(frames), 4), np.nan)
        fallback = head_boxes(body)
        if self._last is not None:
            filled = fill_boxes(np.concatenate([self._last[None], boxes]),
                                np.concatenate([self._last[None], fallback]), self.height, self.width)[1:]
        else:
            filled = fill_boxes(boxes, fallback, self.height, self.width)
        self._last = filled[-1]
        crops, report = crop_faces(frames, filled, self.size)
        self.report.update(report)
        return crops, boxes
