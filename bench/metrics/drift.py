"""Per-window curves and drift slopes from a per-frame (or per-clip) ``Series``.

A value belongs to the window that holds its ``last_frame`` (window ``k`` = frames
``[k * window, (k + 1) * window)``). A window's value is the mean of its finite values (NaN = uncovered,
e.g. no face). The drift slope is the least-squares slope of the window means against the window centre
time, in metric units **per minute**; windows without values are left out; fewer than two: NaN.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from bench.metrics.base import Series

DEFAULT_WINDOW_SECONDS = 5.0


def merge_series(parts: Sequence[Series]) -> Series:
    """Concatenate series of disjoint frame ranges (e.g. from several processes), ordered by frame."""
    if not parts:
        return Series(np.zeros(0, np.int64), np.zeros(0, np.float64))
    last = np.concatenate([p.last_frame for p in parts])
    values = np.concatenate([p.values for p in parts])
    order = np.argsort(last, kind="stable")
    if len(last) > 1 and (np.diff(last[order]) == 0).any():
        raise ValueError("series overlap: a frame was scored twice")
    return Series(last[order], values[order])


def prefix(series: Series, n_frames: int) -> Series:
    keep = series.last_frame < n_frames
    return Series(series.last_frame[keep], series.values[keep])


def mean_std(series: Series) -> tuple[float, float, int]:
    finite = series.values[np.isfinite(series.values)]
    if not len(finite):
        return float("nan"), float("nan"), 0
    return float(finite.mean()), float(finite.std()), int(len(finite))


def window_means(series: Series, window_frames: int, n_frames: int | None = None) -> list[dict]:
    """``[{start, stop, value, count}]`` per window, in frames; ``stop`` clipped to ``n_frames``."""
    if window_frames <= 0:
        raise ValueError("window_frames must be positive")
    if n_frames is None:
        n_frames = int(series.last_frame.max()) + 1 if len(series.last_frame) else 0
    n_windows = -(-n_frames // window_frames)
    which = series.last_frame // window_frames
    out = []
    for k in range(n_windows):
        vals = series.values[(which == k) & np.isfinite(series.values)]
        out.append({"start": k * window_frames, "stop": min(n_frames, (k + 1) * window_frames),
                    "value": float(vals.mean()) if len(vals) else float("nan"), "count": int(len(vals))})
    return out


def drift_slope(windows: Sequence[dict], fps: float) -> float:
    """Least-squares slope of window value vs window centre time, per minute."""
    t = np.array([(w["start"] + w["stop"]) / 2 / fps / 60.0 for w in windows])
    v = np.array([w["value"] for w in windows], np.float64)
    ok = np.isfinite(v)
    if ok.sum() < 2:
        return float("nan")
    t, v = t[ok], v[ok]
    tc = t - t.mean()
    return float((tc * (v - v.mean())).sum() / (tc * tc).sum())


def summarize_series(series: Series, *, fps: float, n_frames: int | None = None,
                     window_seconds: float = DEFAULT_WINDOW_SECONDS, horizons: Sequence[int] = ()) -> dict:
    """Everything a score needs from one series: value (mean), std, n, coverage, per-window curve, drift
    slope per minute and the prefix mean of every horizon (frames)."""
    if n_frames is not None:
        series = prefix(series, n_frames)
    value, std, n = mean_std(series)
    window = max(1, int(round(window_seconds * fps)))
    windows = window_means(series, window, n_frames)
    out = {"value": value, "std": std, "n": n,
           "coverage": n / len(series.values) if len(series.values) else 0.0,
           "window_frames": window,
           "windows": [{"start_s": w["start"] / fps, "end_s": w["stop"] / fps, "value": w["value"], "n": w["count"]}
                       for w in windows],
           "drift_slope_per_min": drift_slope(windows, fps)}
    if horizons:
        out["horizons"] = {}
        for h in horizons:
            hv, hs, hn = mean_std(prefix(series, int(h)))
            out["horizons"][str(int(h))] = {"value": hv, "std": hs, "n": hn}
    return out
