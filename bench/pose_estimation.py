"""Person detection + whole-body 2D pose estimation with onnxruntime from local model files.

Contracts (the ones Wan-Animate's official preprocessing uses; any ONNX file with the same inputs and
outputs works):

- Detector: input ``(1, 3, S, S)`` float32 RGB in [0, 1], the frame resized (no letterbox) to S x S.
  Output either ``(1, N, 6)`` rows ``[x0, y0, x1, y1, score, class]`` (YOLOv10, end-to-end) or
  ``(1, 4 + C, N)`` / ``(1, N, 4 + C)`` rows ``[cx, cy, w, h, class scores...]`` (YOLOv8-style, NMS here),
  in input pixels. Class 0 = person. The largest confident person box is used.
- Pose: input ``(1, 3, h, w)`` float32, ImageNet mean/std normalised RGB, an affine crop of the person box
  enlarged x1.25 to the input aspect. Output either heatmaps ``(1, K, h', w')`` (ViTPose; argmax, confidence
  = peak value) or two SimCC vectors ``(1, K, w * r)`` and ``(1, K, h * r)`` (DWPose / RTMPose; argmax / r).
  K = 133 COCO-WholeBody points (17 body, 6 feet, 68 face, 42 hands) or 17 COCO body points.

Output: OpenPose-18 body ``(18, 3)`` (neck = shoulder midpoint, confidence = the smaller shoulder
confidence) and 68 iBUG face points ``(68, 3)`` (confidence 0 when the model has no face points), in pixels
of the input frame.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bench.errors import WeightsError
from bench.sample import sha256_file

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
BOX_ENLARGE = 1.25
DETECTION_THRESHOLD = 0.05

# COCO-17 index for each OpenPose-18 point (neck = -1: built from the shoulders).
COCO_TO_OPENPOSE = (0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
WHOLEBODY_FACE = slice(23, 91)


@dataclass(frozen=True)
class KnownModel:
    file: str
    source: str
    role: str
    sha256: str | None  # None: not pinned here; the manifest records the sha256 of the file actually used


KNOWN_MODELS = {
    "yolov10m.onnx": KnownModel(
        "yolov10m.onnx", "https://huggingface.co/Wan-AI/Wan2.2-Animate-14B (process_checkpoint/det/)",
        "person detector of Wan-Animate's preprocessing (output (1, 300, 6))", None),
    "vitpose_h_wholebody.onnx": KnownModel(
        "vitpose_h_wholebody.onnx", "https://huggingface.co/Wan-AI/Wan2.2-Animate-14B (process_checkpoint/pose2d/, "
        "with its external-data file)", "ViTPose-H whole-body, 256x192 input, heatmaps (1, 133, 64, 48)", None),
    "vitpose-l-wholebody.onnx": KnownModel(
        "vitpose-l-wholebody.onnx", "https://huggingface.co/JunkyByte/easy_ViTPose (onnx/wholebody/)",
        "ViTPose-L whole-body, same contract as ViTPose-H", None),
    "yolox_l.onnx": KnownModel(
        "yolox_l.onnx", "https://huggingface.co/yzd-v/DWPose", "DWPose's person detector (raw YOLOX head: "
        "decode it to one of the detector contracts above before use)", None),
    "dw-ll_ucoco_384.onnx": KnownModel(
        "dw-ll_ucoco_384.onnx", "https://huggingface.co/yzd-v/DWPose", "DWPose whole-body, 384x288 input, SimCC", None),
}


def load_session(path: str | os.PathLike, role: str, expected_sha256: str | None = None):
    """An onnxruntime CPU session for a local file, after checking it exists and (when known) its sha256."""
    import onnxruntime as ort

    path = Path(path)
    known = KNOWN_MODELS.get(path.name)
    if not path.is_file():
        where = f" Download it from {known.source}." if known else ""
        raise WeightsError(f"{role} model not found: {path}",
                           fix=f"put the ONNX file at that path (nothing is downloaded automatically).{where}")
    expected = expected_sha256 or (known.sha256 if known else None)
    actual = sha256_file(path)
    if expected and actual != expected:
        raise WeightsError(f"{role} model {path} has sha256 {actual[:16]}..., expected {expected[:16]}...",
                           fix="the file is truncated or a different version; download it again")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise WeightsError(f"onnxruntime cannot load {role} model {path}: {exc}",
                           fix="the file is not a valid ONNX model (or needs its external-data file beside it)") from exc
    return session, actual


def _static_hw(session, role: str, path) -> tuple[int, int]:
    shape = session.get_inputs()[0].shape
    if len(shape) != 4 or not all(isinstance(d, int) for d in shape[2:]):
        raise WeightsError(f"{role} model {path}: input shape {shape} is not (1, 3, H, W) with a fixed size",
                           fix="export the model with a static input size")
    return int(shape[2]), int(shape[3])


class PersonDetector:
    def __init__(self, path: str | os.PathLike, expected_sha256: str | None = None,
                 threshold: float = DETECTION_THRESHOLD):
        self.path = Path(path)
        self.session, self.sha256 = load_session(path, "person detector", expected_sha256)
        self.input_name = self.session.get_inputs()[0].name
        self.size = _static_hw(self.session, "person detector", path)
        self.threshold = threshold
        shape = self.session.get_outputs()[0].shape
        if len(shape) != 3 or (isinstance(shape[-1], int) and isinstance(shape[1], int) and max(shape[1], shape[2]) < 5):
            raise WeightsError(f"{self.path} is not a person detector: its output shape {shape} is not (1, N, 6) or "
                               "(1, 4 + C, N)",
                               fix="pass the person detector as the detector (e.g. yolov10m.onnx) and the pose "
                                   "estimator as the pose model; see bench/pose_estimation.py for the contracts")

    def detect(self, frame: np.ndarray) -> np.ndarray | None:
        """The largest confident person box ``[x0, y0, x1, y1, score]`` in frame pixels, or None."""
        h, w = frame.shape[:2]
        sh, sw = self.size
        x = cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        out = np.asarray(self.session.run(None, {self.input_name: x.transpose(2, 0, 1)[None]})[0], np.float32)
        if out.ndim == 3 and out.shape[-1] != 6 and out.shape[1] < out.shape[2]:
            rows = out[0].T  # (1, 4 + C, N) -> (N, 4 + C)
        else:
            rows = out.reshape(-1, out.shape[-1])
        if rows.shape[-1] == 6:
            boxes, scores, classes = rows[:, :4], rows[:, 4], rows[:, 5]
        elif rows.shape[-1] > 4:
            cx, cy, bw, bh = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
            boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
            classes = np.argmax(rows[:, 4:], 1)
            scores = rows[np.arange(len(rows)), 4 + classes]
        else:
            raise WeightsError(f"person detector {self.path}: unexpected output shape {out.shape}",
                               fix="use a detector with output (1, N, 6) or (1, 4 + C, N); see bench/pose_estimation.py")
        keep = (scores >= self.threshold) & (classes == 0)
        if not keep.any():
            return None
        boxes, scores = boxes[keep], scores[keep]
        if rows.shape[-1] != 6:  # raw head: suppress overlaps before picking
            idx = cv2.dnn.NMSBoxes([[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes],
                                   scores.tolist(), self.threshold, 0.5)
            idx = np.asarray(idx).reshape(-1)
            boxes, scores = boxes[idx], scores[idx]
        boxes = boxes * np.array([w / sw, h / sh, w / sw, h / sh], np.float32)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        best = int(np.argmax(area))
        return np.concatenate([boxes[best], scores[best:best + 1]])


def crop_transform(box: np.ndarray, in_h: int, in_w: int) -> np.ndarray:
    """2x3 affine mapping frame pixels to model-input pixels: the box enlarged x1.25 at the input aspect."""
    x0, y0, x1, y1 = box[:4]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    bw, bh = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    aspect = in_w / in_h
    if bw > aspect * bh:
        bh = bw / aspect
    else:
        bw = bh * aspect
    bw, bh = bw * BOX_ENLARGE, bh * BOX_ENLARGE
    s = in_w / bw
    return np.array([[s, 0, in_w / 2 - s * cx], [0, s, in_h / 2 - s * cy]], np.float64)


class PoseModel:
    def __init__(self, path: str | os.PathLike, expected_sha256: str | None = None):
        self.path = Path(path)
        self.session, self.sha256 = load_session(path, "pose", expected_sha256)
        self.input_name = self.session.get_inputs()[0].name
        self.size = _static_hw(self.session, "pose", path)
        n_out = len(self.session.get_outputs())
        if n_out not in (1, 2):
            raise WeightsError(f"pose model {path} has {n_out} outputs", fix="use a heatmap (1 output) or SimCC "
                               "(2 outputs) whole-body model; see bench/pose_estimation.py")
        self.kind = "heatmap" if n_out == 1 else "simcc"
        self._check_outputs()

    def _check_outputs(self) -> None:
        """A file that is not a pose model (a detector, a classifier, ...) fails here, naming itself, rather
        than deep inside decoding: heatmaps ``(1, K, h, w)`` or SimCC ``(1, K, w r)`` + ``(1, K, h r)``, K >= 17."""
        shapes = [o.shape for o in self.session.get_outputs()]
        rank = 4 if self.kind == "heatmap" else 3
        points = [s[1] for s in shapes if len(s) == rank]
        ok = len(points) == len(shapes) and all(not isinstance(k, int) or k >= 17 for k in points)
        if self.kind == "simcc" and ok and all(isinstance(k, int) for k in points):
            ok = points[0] == points[1]
        if not ok:
            want = "(1, K, h, w) heatmaps" if self.kind == "heatmap" else "(1, K, W) and (1, K, H) SimCC vectors"
            raise WeightsError(f"{self.path} is not a pose model: its output shape(s) {shapes} are not {want} with "
                               f"K >= 17 keypoints (COCO-17 or COCO-WholeBody 133)",
                               fix="pass the whole-body pose estimator as the pose model (e.g. vitpose_h_wholebody.onnx "
                                   "or DWPose's dw-ll_ucoco_384.onnx) and the person detector as the detector "
                                   "(e.g. yolov10m.onnx); see bench/pose_estimation.py for the contracts")

    def estimate(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """``(K, 3)`` keypoints ``[x, y, conf]`` in frame pixels for the person in ``box``."""
        ih, iw = self.size
        M = crop_transform(box, ih, iw)
        crop = cv2.warpAffine(frame, M, (iw, ih), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
        x = (crop.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        outputs = self.session.run(None, {self.input_name: x.transpose(2, 0, 1)[None].astype(np.float32)})
        if self.kind == "heatmap":
            heat = np.asarray(outputs[0])[0]
            k, hh, hw = heat.shape
            flat = heat.reshape(k, -1)
            idx = flat.argmax(1)
            conf = flat.max(1)
            px = (idx % hw + 0.5) * (iw / hw) - 0.5
            py = (idx // hw + 0.5) * (ih / hh) - 0.5
        else:
            sx, sy = np.asarray(outputs[0])[0], np.asarray(outputs[1])[0]
            rx, ry = sx.shape[1] / iw, sy.shape[1] / ih
            px, py = sx.argmax(1) / rx, sy.argmax(1) / ry
            conf = np.minimum(sx.max(1), sy.max(1))
        inv = cv2.invertAffineTransform(M)
        pts = np.stack([px, py, np.ones_like(px)], 1) @ inv.T
        return np.concatenate([pts, conf[:, None]], 1).astype(np.float32)


def to_openpose(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCO-17 / COCO-WholeBody ``(K, 3)`` -> OpenPose-18 body ``(18, 3)`` and face ``(68, 3)``."""
    body = np.zeros((18, 3), np.float32)
    for j, c in enumerate(COCO_TO_OPENPOSE):
        if c >= 0:
            body[j] = points[c]
    body[1, :2] = (points[5, :2] + points[6, :2]) / 2
    body[1, 2] = min(points[5, 2], points[6, 2])
    face = points[WHOLEBODY_FACE].copy() if len(points) >= 91 else np.zeros((68, 3), np.float32)
    return body, face


class WholeBodyEstimator:
    """Detector + pose model: frames -> OpenPose-18 body and 68 face points per frame."""

    def __init__(self, detector_onnx, pose_onnx, detector_sha256: str | None = None, pose_sha256: str | None = None):
        self.detector = PersonDetector(detector_onnx, detector_sha256)
        self.pose = PoseModel(pose_onnx, pose_sha256)

    def describe(self) -> dict:
        return {"detector": {"file": self.detector.path.name, "sha256": self.detector.sha256},
                "pose": {"file": self.pose.path.name, "sha256": self.pose.sha256, "decoder": self.pose.kind},
                "box_enlarge": BOX_ENLARGE, "detection_threshold": self.detector.threshold}

    def estimate_frames(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``body (T, 18, 3)``, ``face (T, 68, 3)``; frames without a person get confidence 0 everywhere."""
        bodies = np.zeros((len(frames), 18, 3), np.float32)
        faces = np.zeros((len(frames), 68, 3), np.float32)
        for t, frame in enumerate(frames):
            box = self.detector.detect(frame)
            if box is None:
                continue
            bodies[t], faces[t] = to_openpose(self.pose.estimate(frame, box))
        return bodies, faces
