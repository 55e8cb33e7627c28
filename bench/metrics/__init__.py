"""The metric protocol (docs/metrics.md). Importing this package imports no torch: metrics are named by
lazy ``"module:Class"`` targets and loaded on demand with ``get_metric_class``."""
from __future__ import annotations

import difflib
import importlib

from bench.errors import ConfigError

METRICS: dict[str, str] = {
    "psnr": "bench.metrics.pixel:PSNR",
    "ssim": "bench.metrics.pixel:SSIM",
    "lpips": "bench.metrics.lpips_metric:LPIPS",
    "fid": "bench.metrics.fid:FID",
    "vmae_paired": "bench.metrics.vmae:VMAEPaired",
    "fpsnr": "bench.metrics.face:FacePSNR",
    "bgpsnr": "bench.metrics.face:BackgroundPSNR",
    "vmae_fd": "bench.metrics.vmae:VMAEFrechet",
    "seam": "bench.metrics.seam:Seam",
}

#: one line per metric for `python -m bench ls` (definitions: docs/metrics.md)
SUMMARIES: dict[str, str] = {
    "psnr": "PSNR, float64 on [0, 255], per frame, 100 dB cap (higher is better)",
    "ssim": "SSIM, Gaussian 11x11 sigma 1.5, per RGB channel (higher is better)",
    "lpips": "LPIPS v0.1 alex, inputs in [-1, 1], full resolution (lower is better; needs weights)",
    "fid": "FID, Inception pool3, pooled per (method, duration), same N frames per duration (lower; weights)",
    "vmae_paired": "VideoMAE distance, 1 - cosine of aligned 16-frame clips (lower; needs weights)",
    "fpsnr": "face PSNR inside the GT face box, coverage reported (higher is better)",
    "bgpsnr": "background PSNR outside the GT person mask: static-background drift (higher is better)",
    "vmae_fd": "VideoMAE Frechet distance between clip-feature sets of a cell (lower; needs weights)",
    "seam": "change across chunk joins vs within-chunk change, prediction minus GT (lower is better; 0 = like GT)",
}

#: every metric, in table order
DEFAULT_METRICS: tuple[str, ...] = ("psnr", "ssim", "lpips", "fid", "vmae_paired", "fpsnr", "bgpsnr", "vmae_fd",
                                     "seam")

#: metrics that need weight files (skipped with a loud notice from the default set when absent)
WEIGHTED_METRICS: tuple[str, ...] = ("lpips", "fid", "vmae_paired", "vmae_fd")


def get_metric_class(name: str):
    """The metric class for ``name``; unknown names answer with the closest known ones."""
    target = METRICS.get(name)
    if target is None:
        close = difflib.get_close_matches(name, METRICS, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"known metrics: {', '.join(METRICS)}"
        raise ConfigError(f"unknown metric {name!r}", fix=hint)
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["METRICS", "SUMMARIES", "DEFAULT_METRICS", "WEIGHTED_METRICS", "get_metric_class"]
