"""F-PSNR (face PSNR) and BG-PSNR (background PSNR).

F-PSNR: the face box comes from the **ground truth only** (GT face keypoints -> box scaled x1.3, or a
pinned detector run on GT frames); the same crop window is cut from both videos and scored with float64
PSNR (100 dB cap). Frames without a GT face give NaN and are skipped; the coverage is reported.

Detector: insightface's SCRFD (``buffalo_l/det_10g.onnx``, sha256 verified and recorded) on CPU, one face per
GT frame, its box unscaled; ``detect_face_boxes_cached`` runs it once per GT video and caches the boxes.

BG-PSNR: PSNR over the pixels (all three channels) where the GT person mask is absent.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from bench.errors import DataError, WeightsError
from bench.metrics import weights as W
from bench.metrics.base import FrameBatch, PerFrameMetric
from bench.metrics.pixel import batch_squared_error, psnr_from_mse, squared_error_map
from bench.store import atomic_write_npz

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


def person_room_squared_error(gt: np.ndarray, pred: np.ndarray, person: np.ndarray) -> tuple[int, int, int, int]:
    """Summed squared errors (integer, all three channels) and value counts inside and outside ``person``:
    ``(person_sum, person_values, room_sum, room_values)``; divide a sum by its count for that region's MSE."""
    sq = squared_error_map(gt, pred)
    person_sum = int(sq[person].sum(dtype=np.int64))
    n_person = int(np.count_nonzero(person))
    return person_sum, n_person * 3, int(sq.sum(dtype=np.int64)) - person_sum, (person.size - n_person) * 3


def background_psnr_per_frame(gt: np.ndarray, pred: np.ndarray, person: np.ndarray,
                              sq: np.ndarray | None = None) -> np.ndarray:
    """PSNR of each frame over the pixels (all three channels) outside its ``person`` mask; NaN where the
    mask covers the whole frame. Integer squared errors, exact as ``psnr_per_frame``."""
    sq = squared_error_map(gt, pred) if sq is None else sq
    out = np.full(len(sq), np.nan)
    for i in range(len(sq)):
        count = person[i].size - int(np.count_nonzero(person[i]))
        if count == 0:
            continue
        total = sq[i].sum(dtype=np.int64) - sq[i][person[i]].sum(dtype=np.int64)  # person is usually the smaller part
        out[i] = psnr_from_mse(float(total) / (count * 3))
    return out


class BackgroundPSNR(PerFrameMetric):
    name = "bgpsnr"
    needs = ("masks",)
    description = "PSNR over pixels outside the GT person mask (static-background quality drift)"

    def frame_values(self, batch: FrameBatch) -> np.ndarray:
        if batch.masks is None:
            raise DataError("BG-PSNR needs ground-truth person masks", fix="pass --masks (a mask video, white = person)")
        return background_psnr_per_frame(batch.gt, batch.pred, batch.masks, batch_squared_error(batch))

    def info(self) -> dict:
        values = np.concatenate(self._values) if self._values else np.zeros(0)
        covered = int(np.isfinite(values).sum())
        return {"coverage": covered / len(values) if len(values) else 0.0}


# --------------------------------------------------------------------------- detector fallback (insightface)
DETECTOR_SIZE = 640
DETECTOR_MIN_SCORE = 0.5
DETECTOR_NMS = 0.4
FACE_BOX_CACHE_FORMAT = "bench-faceboxes/1"


def detector_settings(det_size: int = DETECTOR_SIZE, min_score: float = DETECTOR_MIN_SCORE) -> dict:
    """Everything besides the weight file that decides the detector's boxes (part of the cache key)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {"detector": "insightface SCRFD buffalo_l/det_10g.onnx", "det_size": int(det_size),
            "min_score": float(min_score), "nms": DETECTOR_NMS, "box_scale": 1.0,
            "pick": "one face per frame (insightface max_num=1: largest, most central)",
            "insightface": installed("insightface"), "onnxruntime": installed("onnxruntime")}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


class FaceDetector:
    """insightface's SCRFD on CPU, its file verified (``weights.resolve_insightface_detector``) before
    onnxruntime reads it. Load failures and inference failures are ``WeightsError``s."""

    def __init__(self, root: str | os.PathLike | None = None, *, det_size: int = DETECTOR_SIZE,
                 min_score: float = DETECTOR_MIN_SCORE):
        self.weight = W.resolve_insightface_detector(root)
        self.settings = detector_settings(det_size, min_score)
        fix = f"delete {self.weight.path} and place the real file (source: {W.KNOWN_WEIGHTS['insightface_det'].source})"
        try:
            from insightface.model_zoo import SCRFD, get_model
        except ImportError as exc:
            raise WeightsError(f"the face detector needs insightface: {_first_line(exc)}",
                               fix="pip install insightface onnxruntime") from exc
        try:
            model = get_model(self.weight.path, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail, ...)
            raise WeightsError(f"{self.weight.path} cannot be loaded as an ONNX model (corrupt or truncated?): "
                               f"{_first_line(exc)}", fix=fix) from exc
        if not isinstance(model, SCRFD) or not hasattr(model, "fmc"):
            raise WeightsError(f"{self.weight.path} is not an SCRFD face detector "
                               f"(insightface routes it to {type(model).__name__})", fix=fix)
        model.prepare(ctx_id=-1, input_size=(int(det_size), int(det_size)), det_thresh=float(min_score),
                      nms_thresh=DETECTOR_NMS)
        self._model, self._fix = model, fix

    def boxes(self, frames_iter) -> np.ndarray:
        """``frames_iter`` yields uint8 RGB chunks ``(t, H, W, 3)``; one ``[x0, y0, x1, y1]`` row per frame in
        frame pixels (the detector's resize and padding undone by insightface), NaN where no face."""
        rows = []
        for chunk in frames_iter:
            chunk = np.asarray(chunk)
            if chunk.dtype != np.uint8 or chunk.ndim != 4 or chunk.shape[-1] != 3:
                raise DataError(f"face detection needs uint8 RGB frames (T, H, W, 3), got {chunk.dtype} {chunk.shape}")
            for frame in chunk:
                try:  # insightface expects OpenCV's BGR order
                    found, _ = self._model.detect(np.ascontiguousarray(frame[..., ::-1]), max_num=1)
                except Exception as exc:
                    raise WeightsError(f"the face detector {self.weight.path} failed on frame {len(rows)}: "
                                       f"{_first_line(exc)}", fix=self._fix) from exc
                rows.append(found[0, :4].astype(np.float64) if len(found) else np.full(4, np.nan))
        return np.asarray(rows, np.float64).reshape(-1, 4)


def detect_face_boxes(frames_iter, *, root: str | os.PathLike | None = None, det_size: int = DETECTOR_SIZE,
                      min_score: float = DETECTOR_MIN_SCORE) -> tuple[np.ndarray, dict]:
    """Run insightface's SCRFD (``buffalo_l/det_10g.onnx``) on GT frames: the best box per frame, NaN where
    none. ``frames_iter`` yields uint8 RGB chunks. Returns ``(boxes (T, 4), record)``."""
    detector = FaceDetector(root, det_size=det_size, min_score=min_score)
    boxes = detector.boxes(frames_iter)
    return boxes, {"source": "detector", "name": detector.weight.name, "path": detector.weight.path,
                   "sha256": detector.weight.sha256, "settings": detector.settings, **_coverage(boxes)}


def _coverage(boxes: np.ndarray) -> dict:
    found = int(np.isfinite(boxes).all(axis=1).sum())
    return {"frames": len(boxes), "frames_with_face": found,
            "coverage": found / len(boxes) if len(boxes) else 0.0}


def _read_cached_boxes(path: Path, key: str, n_frames: int) -> np.ndarray | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            boxes = np.asarray(z["face_boxes"], np.float64)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # absent or unreadable: detect again
    if boxes.shape != (n_frames, 4) or np.isinf(boxes).any():
        return None
    return boxes


def detect_face_boxes_cached(gt_path: str | os.PathLike, cache_dir: str | os.PathLike, *,
                             root: str | os.PathLike | None = None, det_size: int = DETECTOR_SIZE,
                             min_score: float = DETECTOR_MIN_SCORE, gt_sha256: str | None = None
                             ) -> tuple[np.ndarray, dict]:
    """``detect_face_boxes`` over every frame of a GT video, cached in ``cache_dir`` under the key (GT video
    sha256, detector sha256, ``detector_settings``). The cache file is an ``.npz`` with ``face_boxes``, which
    ``--face-boxes`` also reads. Returns ``(boxes (T, 4), record)``; the record says whether the cache hit.
    ``gt_sha256``: the GT video's hash when the caller has it (it is computed otherwise)."""
    from bench.video import VideoReader, probe

    weight = W.resolve_insightface_detector(root)
    settings = detector_settings(det_size, min_score)
    identity = {"format": FACE_BOX_CACHE_FORMAT, "gt_sha256": gt_sha256 or W.sha256_file(gt_path),
                "detector_sha256": weight.sha256, **settings}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    path = Path(cache_dir) / f"faceboxes-{key[:32]}.npz"
    n = probe(gt_path).n_frames
    boxes = _read_cached_boxes(path, key, n)
    hit = boxes is not None
    if not hit:
        with VideoReader(gt_path) as reader:
            boxes, _ = detect_face_boxes(reader.iter_chunks(0, n, 32), root=root, det_size=det_size,
                                         min_score=min_score)
        atomic_write_npz(path, face_boxes=boxes, key=np.array(key))
    return boxes, {"source": "detector", "name": weight.name, "path": weight.path, "sha256": weight.sha256,
                   "settings": settings, "cache": str(path), "cache_hit": hit, **_coverage(boxes)}
