"""Compiled (numba) per-pixel loops of the metrics: one pass where NumPy would need several, and no
temporaries. They release the GIL, so callers may run them on several threads. Compiled on first use and
cached next to this file (``cache=True``)."""
from __future__ import annotations

import numba
import numpy as np

_FUSED_MATH = {"reassoc", "nsz", "contract"}
_POOL: list = []


def thread_pool():
    """A small process-wide thread pool (one thread per core, at most 4) for the compiled passes."""
    if not _POOL:
        import os
        from concurrent.futures import ThreadPoolExecutor

        _POOL.append(ThreadPoolExecutor(max_workers=max(1, min(4, len(os.sched_getaffinity(0)))),
                                        thread_name_prefix="metrics"))
    return _POOL[0]  # lets LLVM vectorise the sums; no approximate functions


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FUSED_MATH)
def centred_moments(gt, pred, offset, x, y, squares, product):  # pragma: no cover - compiled
    """One pass over a uint8 pair: ``x = gt - offset``, ``y = pred - offset``, ``x^2 + y^2``, ``x y``."""
    g, p = gt.reshape(-1), pred.reshape(-1)
    xf, yf, sf, pf = x.reshape(-1), y.reshape(-1), squares.reshape(-1), product.reshape(-1)
    for i in range(g.size):
        a = np.float32(g[i]) - offset
        b = np.float32(p[i]) - offset
        xf[i], yf[i], sf[i], pf[i] = a, b, a * a + b * b, a * b


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FUSED_MATH)
def ssim_map_sum(mu_x, mu_y, e_squares, e_product, offset, c1, c2):  # pragma: no cover - compiled
    """Sum of the SSIM map from the four blurred maps (centred means), float32 per row, float64 overall."""
    rows = mu_x.shape[0]
    a, b, s, t = mu_x.reshape(-1), mu_y.reshape(-1), e_squares.reshape(-1), e_product.reshape(-1)
    width = a.size // rows
    two, zero = np.float32(2), np.float32(0)
    total = 0.0
    for r in range(rows):
        row_sum = np.float32(0)
        for i in range(r * width, (r + 1) * width):
            ma, mb = a[i], b[i]
            variances = max(s[i] - ma * ma - mb * mb, zero)  # sigma_x^2 + sigma_y^2, clamped at 0
            ua, ub = ma + offset, mb + offset  # uncentred means for the luminance term
            row_sum += ((two * ua * ub + c1) * (two * (t[i] - ma * mb) + c2)) / (
                (ua * ua + ub * ub + c1) * (variances + c2))
        total += row_sum
    return total


@numba.njit(cache=True, nogil=True, error_model="numpy")
def signed_unit_float32(frames, out):  # pragma: no cover - compiled
    """uint8 -> float32 ``x / 127.5 - 1`` (the same float32 operations as ``x.float() / 127.5 - 1``)."""
    src, dst = frames.reshape(-1), out.reshape(-1)
    scale, one = np.float32(127.5), np.float32(1)
    for i in range(src.size):
        dst[i] = np.float32(src[i]) / scale - one


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FUSED_MATH)
def lpips_layer_distance(feats0, feats1, weights, eps):  # pragma: no cover - compiled
    """One LPIPS layer for channels-last features ``(B, P, C)``: per pixel, both feature vectors divided by
    (their L2 norm + eps), the squared difference weighted by the layer's 1x1 linear weights ``(C,)`` and
    summed over channels; the mean over pixels per image ``(B,)``, as ``lpips.LPIPS`` (v0.1, not spatial)."""
    batch, pixels, channels = feats0.shape
    out = np.zeros(batch, np.float64)
    for b in range(batch):
        total = 0.0
        for p in range(pixels):
            a, c = feats0[b, p], feats1[b, p]
            na, nc = np.float32(0), np.float32(0)
            for k in range(channels):
                na += a[k] * a[k]
                nc += c[k] * c[k]
            ia = np.float32(1) / (np.sqrt(na) + eps)
            ic = np.float32(1) / (np.sqrt(nc) + eps)
            d = np.float32(0)
            for k in range(channels):
                diff = a[k] * ia - c[k] * ic
                d += weights[k] * diff * diff
            total += d
        out[b] = total / pixels
    return out
