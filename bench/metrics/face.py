"""F-PSNR (face PSNR) and BG-PSNR (background PSNR).

F-PSNR: the face box comes from the **ground truth only** (GT face keypoints -> box scaled x1.3, or a
pinned detector run on GT frames); the same crop window is cut from both videos and scored with float64
PSNR (100 dB cap). Frames without a GT face give NaN and are skipped; the coverage is reported.

BG-PSNR: PSNR over the pixels (all three channels) where the GT person mask is absent.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from bench.errors import DataError
from bench.metrics import weights as W
from bench.metrics.base import FrameBatch, PerFrameMetric
from bench.metrics.pixel import batch_squared_error, psnr_from_mse

FACE_BOX_SCALE = 1.3


def face_boxes_from_keypoints(face_points: np.ndarray, scale: float = FACE_BOX_SCALE,
                              min_confidence: float = 0.3, min_points: int = 3) -> np.ndarray:
    """GT face keypoints ``(T, F, 3)`` [x, y, conf] -> boxes ``(T, 4)`` [x0, y0, x1, y1]: the bounding box
    of the confident points, scaled ``scale`` about its centre; NaN rows where fewer than ``min_points``."""
    pts = np.asarray(face_points, np.float64)
    boxes = np.full((len(pts), 4), np.nan)
    for t, frame in enumerate(pts):
        ok = frame[:, 2] >= min_confidence if frame.shape[1] > 2 else np.isfinite(frame[:, 0])
        ok &= np.isfinite(frame[:, 0]) & np.isfinite(frame[:, 1])
        if ok.sum() < min_points:
            continue
        x0, y0 = frame[ok, 0].min(), frame[ok, 1].min()
        x1, y1 = frame[ok, 0].max(), frame[ok, 1].max()
        cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * scale / 2, (y1 - y0) * scale / 2
        boxes[t] = (cx - hw, cy - hh, cx + hw, cy + hh)
    return boxes


def crop_window(box: np.ndarray, height: int, width: int) -> tuple[int, int, int, int] | None:
    """Integer window [y0:y1, x0:x1] covering the box (floor / ceil), clipped to the frame; None if empty."""
    if not np.isfinite(box).all():
        return None
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
    if x1 <= x0 or y1 <= y0:
        return None
    return y0, y1, x0, x1


class FacePSNR(PerFrameMetric):
    name = "fpsnr"
    display = "F-PSNR"
    higher_is_better = True
    needs = ("face_boxes",)
    description = "PSNR inside the GT face box (same window in both videos); frames without a GT face skipped"

    def frame_values(self, batch: FrameBatch) -> np.ndarray:
        if batch.face_boxes is None:
            raise DataError("F-PSNR needs ground-truth face boxes", fix="pass --face-boxes (or the sample's keypoints)")
        h, w = batch.gt.shape[1:3]
        sq = batch_squared_error(batch)
        out = np.full(len(batch), np.nan)
        for i, box in enumerate(np.asarray(batch.face_boxes, np.float64)):
            window = crop_window(box, h, w)
            if window is None:
                continue
            y0, y1, x0, x1 = window
            total = sq[i, y0:y1, x0:x1].sum(dtype=np.int64)
            out[i] = psnr_from_mse(float(total) / ((y1 - y0) * (x1 - x0) * 3))
        return out

    def info(self) -> dict:
        values = np.concatenate(self._values) if self._values else np.zeros(0)
        covered = int(np.isfinite(values).sum())
        return {"coverage": covered / len(values) if len(values) else 0.0, "frames_with_face": covered,
                "frames": int(len(values))}


class BackgroundPSNR(PerFrameMetric):
    name = "bgpsnr"
    display = "BG-PSNR"
    higher_is_better = True
    needs = ("masks",)
    description = "PSNR over pixels outside the GT person mask (static-background quality drift)"

    def frame_values(self, batch: FrameBatch) -> np.ndarray:
        if batch.masks is None:
            raise DataError("BG-PSNR needs ground-truth person masks", fix="pass --masks (a mask video, white = person)")
        sq = batch_squared_error(batch)
        out = np.full(len(batch), np.nan)
        for i in range(len(batch)):
            person = batch.masks[i]
            count = person.size - int(np.count_nonzero(person))
            if count == 0:
                continue
            total = sq[i].sum(dtype=np.int64) - sq[i][person].sum(dtype=np.int64)  # person is usually the smaller part
            out[i] = psnr_from_mse(float(total) / (count * 3))
        return out

    def info(self) -> dict:
        values = np.concatenate(self._values) if self._values else np.zeros(0)
        covered = int(np.isfinite(values).sum())
        return {"coverage": covered / len(values) if len(values) else 0.0}


# --------------------------------------------------------------------------- detector fallback (insightface)
def detect_face_boxes(frames_iter, *, root: str | None = None, det_size: int = 640,
                      min_score: float = 0.5) -> tuple[np.ndarray, dict]:
    """Run insightface's SCRFD (``buffalo_l/det_10g.onnx``) on GT frames; the best box per frame (NaN where
    none). ``frames_iter`` yields uint8 RGB chunks. Returns ``(boxes (T, 4), record)``."""
    record = W.resolve_insightface_detector(root)
    from insightface.model_zoo import model_zoo

    detector = model_zoo.get_model(record.path, providers=["CPUExecutionProvider"])
    detector.prepare(ctx_id=-1, input_size=(det_size, det_size), det_thresh=min_score)
    boxes = []
    for chunk in frames_iter:
        for frame in chunk:
            found, _ = detector.detect(np.ascontiguousarray(frame[..., ::-1]), max_num=1)
            boxes.append(found[0, :4].astype(np.float64) if len(found) else np.full(4, np.nan))
    return np.asarray(boxes).reshape(-1, 4), {"detector": "insightface SCRFD det_10g", "sha256": record.sha256,
                                              "det_size": det_size, "min_score": min_score}


def detect_face_boxes_cached(gt_path: str | os.PathLike, cache_dir: str | os.PathLike, **kwargs) -> np.ndarray:
    """``detect_face_boxes`` over a GT video, cached by (video sha256, detector sha256, settings)."""
    from bench.metrics.weights import sha256_file
    from bench.video import VideoReader, probe

    record = W.resolve_insightface_detector(kwargs.get("root"))
    key = hashlib.sha256(json.dumps({"gt": sha256_file(gt_path), "det": record.sha256,
                                     **{k: v for k, v in kwargs.items() if k != "root"}}, sort_keys=True).encode())
    path = Path(cache_dir) / f"faceboxes-{key.hexdigest()[:32]}.npy"
    if path.exists():
        return np.load(path)
    n = probe(gt_path).n_frames
    with VideoReader(gt_path) as reader:
        boxes, _ = detect_face_boxes(reader.iter_chunks(0, n, 32), **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, boxes)
    return boxes
