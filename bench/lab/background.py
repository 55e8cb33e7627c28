"""Static, detailed backgrounds: a room (wall gradient, floor with perspective tiles), furniture-like shapes,
posters, and per-pixel high-frequency texture, so VAE round trips visibly degrade it.

Shapes are placed in relative coordinates, so every size shows the same scene; the fine texture is drawn
per pixel at the target size. No anti-aliasing (identical pixels across OpenCV builds).
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


def render_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An ``(H, W, 3) uint8`` background drawn from ``rng``."""
    colors = _palette(rng, 8)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    fy, fx = yy / height, xx / width
    horizon = int(round(HORIZON_Y * height))

    wall_top, wall_bottom = colors[0], (colors[0] * 0.55 + colors[1] * 0.45)
    img = wall_top[None, None] * (1 - fy[..., None]) + wall_bottom[None, None] * fy[..., None]
    # wallpaper: a diagonal lattice of fine stripes with a random period (in frame heights)
    period = rng.uniform(0.04, 0.08) * height
    angle = rng.uniform(0.3, 1.2)
    phase = (xx * np.cos(angle) + yy * np.sin(angle)) / max(period, 2.0)
    img += 18.0 * np.sign(np.sin(2 * np.pi * phase))[..., None]

    floor = fy >= HORIZON_Y
    depth = np.clip((fy - HORIZON_Y) / (1 - HORIZON_Y), 1e-3, 1.0)
    u = (fx - 0.5) / depth * 4.0
    v = 1.5 / depth
    checker = (np.floor(u).astype(int) + np.floor(v).astype(int)) % 2
    floor_rgb = np.where(checker[..., None] == 1, colors[2][None, None], colors[3][None, None]) * (0.6 + 0.4 * depth[..., None])
    img = np.where(floor[..., None], floor_rgb, img)
    img = np.clip(img, 0, 255).astype(np.uint8)
    img = np.ascontiguousarray(img)
    cv2.line(img, (0, horizon), (width - 1, horizon), tuple(int(c) for c in colors[4] // 2), max(1, height // 128))

    # furniture and posters on the wall (relative positions keep the scene identical across sizes)
    for i in range(int(rng.integers(5, 9))):
        kind = int(rng.integers(0, 3))
        cx, cy = rng.uniform(0.02, 0.98), rng.uniform(0.08, HORIZON_Y + 0.05)
        sw, sh = rng.uniform(0.06, 0.2), rng.uniform(0.06, 0.25)
        color = tuple(int(c) for c in colors[4 + i % 4] * rng.uniform(0.6, 1.1) % 256)
        p0 = (int(round((cx - sw / 2) * width)), int(round((cy - sh / 2) * height)))
        p1 = (int(round((cx + sw / 2) * width)), int(round((cy + sh / 2) * height)))
        if kind == 0:
            cv2.rectangle(img, p0, p1, color, -1, cv2.LINE_8)
            inner = tuple(int(c) ^ 0x60 for c in color)
            step = max(2, (p1[1] - p0[1]) // 4)
            for y in range(p0[1] + step // 2, p1[1], step):
                cv2.line(img, (p0[0], y), (p1[0], y), inner, 1, cv2.LINE_8)
        elif kind == 1:
            center = (int(round(cx * width)), int(round(cy * height)))
            axes = (max(1, int(sw * width / 2)), max(1, int(sh * height / 2)))
            cv2.ellipse(img, center, axes, 0, 0, 360, color, -1, cv2.LINE_8)
            cv2.ellipse(img, center, (max(1, axes[0] // 2), max(1, axes[1] // 2)), 0, 0, 360,
                        tuple(255 - c for c in color), -1, cv2.LINE_8)
        else:
            pts = np.array([[cx + rng.uniform(-sw, sw), cy + rng.uniform(-sh, sh)] for _ in range(3)])
            cv2.fillConvexPoly(img, np.round(pts * [width, height]).astype(np.int32), color, cv2.LINE_8)

    # per-pixel grain (the high-frequency detail a VAE smooths away)
    grain = rng.integers(-14, 15, size=(height, width, 1), dtype=np.int16)
    return np.clip(img.astype(np.int16) + grain, 0, 255).astype(np.uint8)
