"""Pixel degradations that make RFM's perturbed latent ``x0_aug``: one parameter set per clip.

``sample_params`` draws the set (which degradations fire, and their strengths); ``apply`` applies it to
every frame of a clip ``(T, H, W, 3) uint8`` identically. Each degradation is its own function.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from everanimate.config import DegradeConfig


@dataclass(frozen=True)
class DegradeParams:
    clahe: tuple[float, int] | None = None  # (clip limit, grid size)
    saturation: float | None = None
    brightness: float | None = None
    erase: tuple[tuple[float, float, float, int], ...] = ()  # (x0, y0, side fraction, factor) per patch

    @property
    def is_identity(self) -> bool:
        return self.clahe is None and self.saturation is None and self.brightness is None and not self.erase


def sample_params(rng: np.random.Generator, config: DegradeConfig = DegradeConfig()) -> DegradeParams:
    clahe = saturation = brightness = None
    erase: tuple = ()
    if rng.random() < config.clahe_p:
        clahe = (float(rng.uniform(*config.clahe_clip)), int(rng.integers(config.clahe_grid[0], config.clahe_grid[1] + 1)))
    if rng.random() < config.saturation_p:
        saturation = float(rng.uniform(*config.saturation))
    if rng.random() < config.brightness_p:
        brightness = float(rng.uniform(*config.brightness))
    if rng.random() < config.erase_p:
        n = int(rng.integers(config.erase_patches[0], config.erase_patches[1] + 1))
        patches = []
        for _ in range(n):
            side = float(rng.uniform(*config.erase_size))
            patches.append((float(rng.uniform(0, 1 - side)), float(rng.uniform(0, 1 - side)), side,
                            int(rng.integers(config.erase_factor[0], config.erase_factor[1] + 1))))
        erase = tuple(patches)
    return DegradeParams(clahe, saturation, brightness, erase)


def clahe(frame: np.ndarray, clip_limit: float, grid: int) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation on the L channel (Lab colour space)."""
    lab = cv2.cvtColor(frame, cv2.COLOR_RGB2LAB)
    op = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(grid, grid))
    lab[..., 0] = op.apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def oversaturate(frame: np.ndarray, factor: float) -> np.ndarray:
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * factor, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def brighten(frame: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(frame.astype(np.float32) * factor, 0, 255).round().astype(np.uint8)


def erase_detail(frame: np.ndarray, x0: float, y0: float, side: float, factor: int) -> np.ndarray:
    """Down-sample a square patch by ``factor`` and up-sample it back: the patch loses its fine detail."""
    h, w = frame.shape[:2]
    ph, pw = max(1, round(side * h)), max(1, round(side * w))
    top, left = min(round(y0 * h), h - ph), min(round(x0 * w), w - pw)
    out = frame.copy()
    patch = out[top:top + ph, left:left + pw]
    small = cv2.resize(patch, (max(1, pw // factor), max(1, ph // factor)), interpolation=cv2.INTER_AREA)
    out[top:top + ph, left:left + pw] = cv2.resize(small, (pw, ph), interpolation=cv2.INTER_LINEAR)
    return out


def apply(frames: np.ndarray, params: DegradeParams) -> np.ndarray:
    """Apply one parameter set to every frame of a ``(T, H, W, 3) uint8`` clip."""
    out = []
    for frame in frames:
        f = np.ascontiguousarray(frame)
        if params.clahe is not None:
            f = clahe(f, *params.clahe)
        if params.saturation is not None:
            f = oversaturate(f, params.saturation)
        if params.brightness is not None:
            f = brighten(f, params.brightness)
        for patch in params.erase:
            f = erase_detail(f, *patch)
        out.append(f)
    return np.stack(out)
