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
}

#: every metric, in table order
DEFAULT_METRICS: tuple[str, ...] = ("psnr", "ssim", "lpips", "fid", "vmae_paired", "fpsnr", "bgpsnr", "vmae_fd")

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


__all__ = ["METRICS", "DEFAULT_METRICS", "WEIGHTED_METRICS", "get_metric_class"]
