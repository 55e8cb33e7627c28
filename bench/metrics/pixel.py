"""Pixel metrics: PSNR and SSIM (definitions: docs/metrics.md).

SSIM follows Wang et al. with the settings of ``torchmetrics``' Gaussian SSIM, which it reproduces to
< 1e-6 (tested against torchmetrics in float64): Gaussian 11x11 window, sigma 1.5, K1 0.01, K2 0.03,
``data_range`` 255, reflect-101 padding (torch ``mode="reflect"``), the SSIM map averaged over every
pixel and RGB channel, variances clamped at 0.

Speed: one compiled (numba) pass makes the four maps to blur (x, y, x^2 + y^2, x y) from the uint8 pair;
OpenCV's separable SIMD filter blurs them in float32; a second compiled pass turns the four blurred maps
into the summed SSIM map without writing it. Precision is kept by working on values centred on the
pair's mean (variances and covariance do not change under a shift, and the shift is folded back into the
luminance terms), so the float32 rounding of ``E[x^2] - E[x]^2`` acts on small numbers. Frames are spread
over a small thread pool (the compiled passes release the GIL). See benchmarks/metrics_speed.py for the
speed against torchmetrics; equal to its float64 result within 1e-6.
"""
from __future__ import annotations

import threading

import numpy as np

from bench.metrics.base import FrameBatch, PerFrameMetric

PSNR_CAP_DB = 100.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def psnr_from_mse(mse: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    mse = np.asarray(mse, dtype=np.float64)
    with np.errstate(divide="ignore"):
        value = 10.0 * np.log10(data_range**2 / mse)
    return np.minimum(value, PSNR_CAP_DB)


def squared_error_map(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-pixel squared error summed over RGB, exact in integers: int32 ``(T, H, W)`` (max 3 * 255^2)."""
    out = np.empty(gt.shape[:3], np.int32)
    for i in range(len(gt)):  # one frame at a time keeps temporaries small
        diff = np.subtract(gt[i], pred[i], dtype=np.int32)
        np.multiply(diff, diff, out=diff)
        np.add(diff[..., 0], diff[..., 1], out=out[i])
        out[i] += diff[..., 2]
    return out


_SQ_CACHE: list = [None, None]


def batch_squared_error(batch: FrameBatch) -> np.ndarray:
    """``squared_error_map`` of a batch, computed once and shared by PSNR, F-PSNR and BG-PSNR."""
    if _SQ_CACHE[0] is not batch:
        _SQ_CACHE[0], _SQ_CACHE[1] = batch, squared_error_map(batch.gt, batch.pred)
    return _SQ_CACHE[1]


def psnr_per_frame(gt: np.ndarray, pred: np.ndarray, sq: np.ndarray | None = None) -> np.ndarray:
    """PSNR on [0, 255] over all pixels and channels of each frame (integer sum of squared errors, float64
    division: exact); identical frames -> 100 dB."""
    sq = squared_error_map(gt, pred) if sq is None else sq
    total = sq.reshape(len(sq), -1).sum(axis=1, dtype=np.int64)
    return psnr_from_mse(total.astype(np.float64) / (gt[0].size if len(gt) else 1))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


_SSIM_KERNEL = gaussian_window().astype(np.float32)
_WORKSPACE = threading.local()


def _workspace(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Eight float32 frame-sized buffers per thread, reused across frames: fresh large arrays would cost
    a page fault per 4 KiB on every frame, more than the arithmetic."""
    cached = getattr(_WORKSPACE, "buffers", None)
    if cached is None or cached[0] != shape:
        cached = (shape, [np.empty(shape, np.float32) for _ in range(8)])
        _WORKSPACE.buffers = cached
    return cached[1]


def _ssim_frame(gt: np.ndarray, pred: np.ndarray, data_range: float) -> float:
    """Mean of the SSIM map over every pixel and channel of one ``(H, W, 3)`` uint8 pair."""
    import cv2

    from bench.metrics.kernels import centred_moments, ssim_map_sum

    c1, c2 = np.float32((SSIM_K1 * data_range) ** 2), np.float32((SSIM_K2 * data_range) ** 2)
    x, y, squares, product, mu_x, mu_y, e_squares, e_product = _workspace(gt.shape)
    channels = gt.shape[2] if gt.ndim == 3 else 1
    # centre on the pair's mean: (co)variances are shift-invariant, and float32 rounding of E[x^2] - E[x]^2
    # then acts on small numbers; the shift comes back in the luminance terms
    offset = np.float32((sum(cv2.mean(gt)[:channels]) + sum(cv2.mean(pred)[:channels])) / (2 * channels))
    centred_moments(gt, pred, offset, x, y, squares, product)
    for source, blurred in ((x, mu_x), (y, mu_y), (squares, e_squares), (product, e_product)):
        cv2.sepFilter2D(source, -1, _SSIM_KERNEL, _SSIM_KERNEL, dst=blurred, borderType=cv2.BORDER_REFLECT_101)
    return ssim_map_sum(mu_x, mu_y, e_squares, e_product, offset, c1, c2) / gt.size


def ssim_per_frame(gt: np.ndarray, pred: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """Gaussian SSIM per frame (see module docstring); ``gt``/``pred`` uint8 ``(T, H, W, 3)``. Frames are
    spread over a small thread pool: OpenCV and the compiled passes release the GIL, so large frames use
    every core."""
    pixels = gt[0].size if len(gt) else 0
    if len(gt) < 2 or pixels < 64 * 64 * 3:
        return np.array([_ssim_frame(g, p, data_range) for g, p in zip(gt, pred)], dtype=np.float64)
    from bench.metrics.kernels import thread_pool

    return np.array(list(thread_pool().map(lambda pair: _ssim_frame(pair[0], pair[1], data_range), zip(gt, pred))),
                    dtype=np.float64)


class PSNR(PerFrameMetric):
    name = "psnr"
    description = "float64 PSNR on [0, 255] per frame, 100 dB cap; mean over frames"

    def frame_values(self, batch: FrameBatch) -> np.ndarray:
        return psnr_per_frame(batch.gt, batch.pred, batch_squared_error(batch))


class SSIM(PerFrameMetric):
    name = "ssim"
    description = "Gaussian 11x11 (sigma 1.5) SSIM per RGB channel, averaged; torchmetrics-identical"

    def frame_values(self, batch: FrameBatch) -> np.ndarray:
        return ssim_per_frame(batch.gt, batch.pred)
