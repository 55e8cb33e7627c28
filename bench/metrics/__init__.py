"""The metric protocol (docs/metrics.md) and the metric registry. Importing this package imports no
torch: metrics are named by lazy ``"module:Class"`` targets and loaded on demand with ``get_metric_class``.

``METRICS`` holds every fact about a metric in one entry (``MetricInfo``): where its class is, its display
name, which direction is better, the digits a table shows, its one-line summary, whether it is in the
default set and whether it needs weight files. The metric classes, the tables (``bench.tables.COLUMNS``),
``bench ls`` and the default set all read them from here. Adding a metric = one class + one line here
(docs/adding_a_metric.md).
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass

from bench.errors import ConfigError


@dataclass(frozen=True)
class MetricInfo:
    target: str  # "module:Class", imported only when the metric is used
    display: str  # column header in tables and reports
    higher_is_better: bool
    summary: str  # one line for `python -m bench ls`
    digits: int = 3  # decimals shown in tables
    default: bool = True  # in the protocol's default set (what `bench run` computes without --metrics)
    weighted: bool = False  # needs weight files (skipped with a notice from the default set when absent)


#: every metric, in table order (and the order the default set is computed in)
METRICS: dict[str, MetricInfo] = {
    "psnr": MetricInfo("bench.metrics.pixel:PSNR", "PSNR", True,
                       "PSNR, float64 on [0, 255], per frame, 100 dB cap"),
    "ssim": MetricInfo("bench.metrics.pixel:SSIM", "SSIM", True,
                       "SSIM, Gaussian 11x11 sigma 1.5, per RGB channel"),
    "lpips": MetricInfo("bench.metrics.lpips_metric:LPIPS", "LPIPS", False,
                        "LPIPS v0.1 alex, inputs in [-1, 1], full resolution", weighted=True),
    "fid": MetricInfo("bench.metrics.fid:FID", "FID", False,
                      "FID, Inception pool3, pooled per (method, duration), same N frames per duration", weighted=True),
    "vmae_paired": MetricInfo("bench.metrics.vmae:VMAEPaired", "V-MAE", False,
                              "VideoMAE distance, 1 - cosine of aligned 16-frame clips", weighted=True),
    "fpsnr": MetricInfo("bench.metrics.face:FacePSNR", "F-PSNR", True,
                        "face PSNR inside the GT face box, coverage reported"),
    "bgpsnr": MetricInfo("bench.metrics.face:BackgroundPSNR", "BG-PSNR", True,
                         "background PSNR outside the GT person mask: static-background drift"),
    "vmae_fd": MetricInfo("bench.metrics.vmae:VMAEFrechet", "V-MAE FD", False,
                          "VideoMAE Frechet distance between clip-feature sets of a cell", weighted=True),
    "seam": MetricInfo("bench.metrics.seam:Seam", "Seam", False,
                       "change across chunk joins vs within-chunk change, prediction minus GT (0 = like GT)"),
}


def metric_info(name: str) -> MetricInfo:
    """The registry entry of ``name``; unknown names answer with the closest known ones."""
    info = METRICS.get(name)
    if info is None:
        close = difflib.get_close_matches(name, METRICS, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"known metrics: {', '.join(METRICS)}"
        raise ConfigError(f"unknown metric {name!r}", fix=hint)
    return info


def summary_line(name: str) -> str:
    info = metric_info(name)
    extra = "; needs weights" if info.weighted else ""
    return f"{info.summary} ({'higher' if info.higher_is_better else 'lower'} is better{extra})"


def default_metrics() -> tuple[str, ...]:
    return tuple(n for n, i in METRICS.items() if i.default)


def weighted_metrics() -> tuple[str, ...]:
    return tuple(n for n, i in METRICS.items() if i.weighted)


#: derived views (read-only snapshots of METRICS at import; call the functions for a live view)
SUMMARIES: dict[str, str] = {name: summary_line(name) for name in METRICS}
DEFAULT_METRICS: tuple[str, ...] = default_metrics()
WEIGHTED_METRICS: tuple[str, ...] = weighted_metrics()


def get_metric_class(name: str):
    """The metric class for ``name``; unknown names answer with the closest known ones."""
    module, cls = metric_info(name).target.split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["METRICS", "MetricInfo", "metric_info", "SUMMARIES", "DEFAULT_METRICS", "WEIGHTED_METRICS",
           "default_metrics", "weighted_metrics", "get_metric_class"]
