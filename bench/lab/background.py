"""Static, detailed backgrounds: a room (wall gradient, wallpaper, floor with perspective tiles), furniture-like
shapes and posters. Shapes are placed in relative coordinates, so every size shows the same scene.

Drawn at ``SUPERSAMPLE`` times the target size with integer OpenCV primitives, then averaged over each
``SUPERSAMPLE x SUPERSAMPLE`` block in float64 (deterministic anti-aliasing). No per-pixel noise; the finest
period is about 6 px at lab-64 (wallpaper, poster stripes), so a small VAE can represent the room and still
loses a little of it on every round trip (lab v1's grain and 2-3 px stripes held a small VAE at 16 dB).
"""
from __future__ import annotations

import cv2
import numpy as np

FLOOR_Y = 0.92
"""Where the feet stand, as a fraction of the frame height."""
HORIZON_Y = 0.62


def _palette(rng: np.random.Generator, n: int) -> np.ndarray:
    hues = (rng.uniform(0, 180) + np.arange(n) * rng.uniform(25, 60)) % 180
    hsv = np.stack([hues, rng.uniform(60, 200, n), rng.uniform(90, 230, n)], 1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0].astype(np.int32)

SUPERSAMPLE = 4
"""Drawn at 4x the target size and box-filtered down."""


def render_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An ``(H, W, 3) uint8`` background drawn from ``rng``."""
    s = SUPERSAMPLE
    H, W = height * s, width * s
    colors = _palette(rng, 8)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    fy, fx = (yy + 0.5) / H, (xx + 0.5) / W
    horizon = HORIZON_Y * H

    wall_top, wall_bottom = colors[0], (colors[0] * 0.55 + colors[1] * 0.45)
    img = wall_top[None, None] * (1 - fy[..., None]) + wall_bottom[None, None] * fy[..., None]
    img = img * (0.85 + 0.3 * fx[..., None])  # light from one side
    # wallpaper: soft diagonal waves with a period of 0.09-0.15 frame heights (about 6-10 px at lab-64)
    period = rng.uniform(0.09, 0.15) * H
    angle = rng.uniform(0.3, 1.2)
    phase = (xx * np.cos(angle) + yy * np.sin(angle)) / period
    img += 16.0 * np.sin(2 * np.pi * phase)[..., None]

    floor = fy >= HORIZON_Y
    depth = np.clip((fy - HORIZON_Y) / (1 - HORIZON_Y), 1e-3, 1.0)
    u = (fx - 0.5) / depth * 3.0
    v = 1.2 / depth
    checker = (np.floor(u).astype(int) + np.floor(v).astype(int)) % 2
    floor_rgb = np.where(checker[..., None] == 1, colors[2][None, None], colors[3][None, None]) * (0.6 + 0.4 * depth[..., None])
    img = np.where(floor[..., None], floor_rgb, img)
    img = np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))
    line_w = max(s, int(round(0.02 * H)))
    cv2.line(img, (0, int(round(horizon))), (W - 1, int(round(horizon))), tuple(int(c) for c in colors[4] // 2),
             line_w, cv2.LINE_8)

    min_step = 3 * s  # poster stripes no finer than a 6 px period at lab-64
    for i in range(int(rng.integers(5, 9))):
        kind = int(rng.integers(0, 3))
        cx, cy = rng.uniform(0.02, 0.98), rng.uniform(0.08, HORIZON_Y + 0.05)
        sw, sh = rng.uniform(0.08, 0.22), rng.uniform(0.08, 0.26)
        color = tuple(int(c) for c in colors[4 + i % 4] * rng.uniform(0.6, 1.1) % 256)
        p0 = (int(round((cx - sw / 2) * W)), int(round((cy - sh / 2) * H)))
        p1 = (int(round((cx + sw / 2) * W)), int(round((cy + sh / 2) * H)))
        if kind == 0:
            cv2.rectangle(img, p0, p1, color, -1, cv2.LINE_8)
            inner = tuple(int(c) ^ 0x60 for c in color)
            step = max(2 * min_step, (p1[1] - p0[1]) // 3)
            for y in range(p0[1] + step // 2, p1[1] - step // 4, step):
                cv2.rectangle(img, (p0[0], y), (p1[0], y + step // 2 - 1), inner, -1, cv2.LINE_8)
        elif kind == 1:
            center = (int(round(cx * W)), int(round(cy * H)))
            axes = (max(s, int(sw * W / 2)), max(s, int(sh * H / 2)))
            cv2.ellipse(img, center, axes, 0, 0, 360, color, -1, cv2.LINE_8)
            cv2.ellipse(img, center, (max(s, axes[0] // 2), max(s, axes[1] // 2)), 0, 0, 360,
                        tuple(255 - c for c in color), -1, cv2.LINE_8)
        else:
            pts = np.array([[cx + rng.uniform(-sw, sw), cy + rng.uniform(-sh, sh)] for _ in range(3)])
            cv2.fillConvexPoly(img, np.round(pts * [W, H]).astype(np.int32), color, cv2.LINE_8)

    blocks = img.reshape(height, s, width, s, 3).astype(np.float64).mean(axis=(1, 3))
    return np.ascontiguousarray(np.clip(np.floor(blocks + 0.5), 0, 255).astype(np.uint8))
