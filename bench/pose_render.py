"""The one pose-map renderer, shared by lab and real data: OpenPose / DWPose-style skeletons on black.

Input keypoints are pixel coordinates with a confidence: body ``(T, 18, 3)`` in OpenPose COCO-18 order, and
optionally face ``(T, F, 3)``. A point is drawn when its confidence is at least ``threshold`` (0.3, DWPose's
body threshold) and it lies inside the frame; a limb when both ends are drawn. Limbs are lines in the
limb colour at 60 % brightness, joints are discs in full colour, face points white dots. Line width and
disc radius scale with the frame (DWPose's 4 px at 512 px) down to a floor of ``MIN_LINE`` / ``MIN_JOINT``
pixels, so that limbs stay wider than one pixel in small frames (a pose map is VAE-encoded before the model
sees it: at 64x64 the lab VAE returned 1-px limbs at 8.9 dB, 3-px limbs at 12.9 dB). Drawing uses
integer fixed-point coordinates without anti-aliasing, so the same keypoints give the same pixels
everywhere.
"""
from __future__ import annotations

import cv2
import numpy as np

# OpenPose COCO-18 limbs (0-based joint indices) and the 18 standard colours (RGB).
LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
         (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
COLORS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
          (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
          (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))
LIMB_COLORS = tuple(tuple(int(c * 0.6) for c in COLORS[i]) for i in range(len(LIMBS)))
THRESHOLD = 0.3
MIN_LINE, MIN_JOINT = 3, 2  # only frames under about 190 px reach the floor (480p draws 8 / 4)
_SHIFT = 4


def stroke_sizes(height: int, width: int) -> tuple[int, int, int]:
    """(limb line thickness, joint radius, face dot radius) in pixels for a frame size."""
    s = min(height, width) / 512
    return max(MIN_LINE, int(round(8 * s))), max(MIN_JOINT, int(round(4 * s))), int(round(2 * s))


def draw_pose(body: np.ndarray, face: np.ndarray | None, height: int, width: int,
              threshold: float = THRESHOLD) -> np.ndarray:
    """Pose maps ``(T, H, W, 3) uint8`` for keypoints ``body (T, 18, 3)`` and optional ``face (T, F, 3)``."""
    body = np.asarray(body, np.float64)
    if body.ndim != 3 or body.shape[1:] != (18, 3):
        raise ValueError(f"body keypoints must be (T, 18, 3), got {body.shape}")
    T = len(body)
    if face is not None:
        face = np.asarray(face, np.float64)
        if face.ndim != 3 or face.shape[0] != T or face.shape[2] != 3:
            raise ValueError(f"face keypoints must be (T, F, 3) with T={T}, got {face.shape}")
    out = np.zeros((T, height, width, 3), np.uint8)
    thickness, radius, dot = stroke_sizes(height, width)

    def ok(points):
        x, y, c = points[..., 0], points[..., 1], points[..., 2]
        finite = np.isfinite(x) & np.isfinite(y) & np.isfinite(c)
        return finite & (c >= threshold) & (x >= 0) & (x < width) & (y >= 0) & (y < height)

    body_ok = ok(body)
    body_fixed = np.round(np.nan_to_num(body[..., :2]) * (1 << _SHIFT)).astype(np.int64).tolist()
    limb_a = np.array([a for a, _ in LIMBS])
    limb_b = np.array([b for _, b in LIMBS])
    limb_ok = (body_ok[:, limb_a] & body_ok[:, limb_b]).tolist()
    body_ok_list = body_ok.tolist()
    radius_fixed = radius << _SHIFT
    for t in range(T):
        canvas = out[t]
        pts = body_fixed[t]
        for k, draw in enumerate(limb_ok[t]):
            if draw:
                cv2.line(canvas, pts[LIMBS[k][0]], pts[LIMBS[k][1]], LIMB_COLORS[k], thickness, cv2.LINE_8, _SHIFT)
        for j, draw in enumerate(body_ok_list[t]):
            if draw:
                cv2.circle(canvas, pts[j], radius_fixed, COLORS[j], -1, cv2.LINE_8, _SHIFT)
    if face is not None and face.shape[1]:
        face_ok = ok(face)
        if dot == 0:
            t_idx, k_idx = np.nonzero(face_ok)
            xs = np.floor(face[t_idx, k_idx, 0]).astype(np.int64)
            ys = np.floor(face[t_idx, k_idx, 1]).astype(np.int64)
            out[t_idx, ys, xs] = 255
        else:
            face_fixed = np.round(np.nan_to_num(face[..., :2]) * (1 << _SHIFT)).astype(np.int64)
            for t in range(T):
                for p in face_fixed[t][face_ok[t]].tolist():
                    cv2.circle(out[t], p, dot << _SHIFT, (255, 255, 255), -1, cv2.LINE_8, _SHIFT)
    return out
