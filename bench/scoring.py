"""Score stored rollouts: stream GT and prediction once, derive every horizon, window and drift slope.

Durations are prefixes of one rollout: the 10 s value of a metric is the mean of its per-frame series
over the first 250 frames of the same rollout as the 90 s value (recorded as ``prefix_of``).
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from bench.animator import pose_indices
from bench.config import duration_frames
from bench.errors import BenchError, WeightsError
from bench.metrics import drift
from bench.metrics.base import PROTOCOL_VERSION, FrameBatch, Metric
from bench.sample import Sample
from bench.store import Rollout, atomic_write_json, atomic_write_npz, canonical_json

from bench.records import ALL_SAMPLES


@dataclass(frozen=True)
class MetricPlan:
    """Which metrics run, and which default metrics were skipped (with the reason shown in tables)."""

    names: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    weights: tuple[tuple[str, tuple], ...] = ()  # metric -> WeightRecords as dicts

    def weight_records(self, name: str) -> list[dict]:
        return [dict(r) for r in dict(self.weights).get(name, ())]


def plan_metrics(requested: Sequence[str], quiet: bool = False) -> MetricPlan:
    """Requested by name: missing weights are an error (before any generation). Default set: metrics
    whose weights are absent are skipped with a loud notice and shown as "n/a (no weights)"."""
    from bench.metrics import default_metrics
    from bench.registry import metric_class

    explicit = bool(requested)
    names = tuple(requested) if explicit else default_metrics()
    kept, skipped, weights = [], [], []
    for name in names:
        cls = metric_class(name)
        try:
            records = cls.check_weights()
        except WeightsError as exc:
            if explicit:
                raise
            if not quiet:
                print(f"NOTICE: metric {name!r} skipped: {exc.message}" + (f"\n  fix: {exc.fix}" if exc.fix else ""),
                      file=sys.stderr)
            skipped.append((name, "n/a (no weights)"))
            continue
        kept.append(name)
        weights.append((name, tuple(tuple(sorted(r.__dict__.items())) for r in records)))
    return MetricPlan(tuple(kept), tuple(skipped), tuple(weights))


def _finite_or_none(x: float) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def scoring_key(rollout_key: str, sample_hash: str, plan: MetricPlan, horizons: Sequence[int], window_frames: int,
                chunk_geometry: tuple | None = None) -> str:
    payload = {"protocol": PROTOCOL_VERSION, "rollout": rollout_key, "sample": sample_hash,
               "metrics": list(plan.names), "weights": plan.weights, "horizons": list(horizons),
               "window": window_frames}
    if chunk_geometry is not None:  # only with `seam`: keys of runs without it stay as they were
        payload["chunk_geometry"] = list(chunk_geometry[:2])
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def chunk_geometry(model_info: dict) -> tuple[int, int, str]:
    """``(chunk_frames, overlap_frames, source)`` of the generator that made a rollout, for the seam metric:
    the method's own ``chunk_geometry`` (e.g. ``precomputed``, whose harness chunks are not the generator's),
    else its chunk plan (``capabilities``), else the paper's 77 / 4."""
    from bench.metrics.seam import DEFAULT_CHUNK_FRAMES, DEFAULT_OVERLAP_FRAMES

    given = model_info.get("chunk_geometry")
    if isinstance(given, dict) and given.get("chunk_frames"):
        return (int(given["chunk_frames"]), int(given.get("overlap_frames", 0)),
                str(given.get("source", "given by the method")))
    caps = model_info.get("capabilities")
    if isinstance(caps, dict) and caps.get("chunk_frames"):
        return int(caps["chunk_frames"]), int(caps.get("overlap_frames", 0)), "the run's chunk plan"
    return DEFAULT_CHUNK_FRAMES, DEFAULT_OVERLAP_FRAMES, "default (77-frame chunks, 4-frame overlap)"


@dataclass
class RolloutScores:
    """Per-rollout scores: one record per (duration, series metric) and pooled states per pooled metric."""

    records: list[dict] = field(default_factory=list)
    pooled: dict[str, Path] = field(default_factory=dict)


def _by_index(read, index: np.ndarray):
    """Read sample frames for arbitrary (padded) indices with one contiguous read."""
    lo, hi = int(index.min()), int(index.max()) + 1
    data = read(lo, hi)
    return None if data is None else data[index - lo]


def score_rollout(rollout: Rollout, sample: Sample, plan: MetricPlan, durations: Sequence[float], fps: int,
                  window_s: float, device: str = "cpu", batch: int = 50, force: bool = False,
                  progress: bool = False, pose_padding: str = "error", gt_cache_dir: Path | None = None) -> RolloutScores:
    """Score one stored rollout against its sample (cached in the rollout folder by a scoring key)."""
    from bench.registry import metric_class

    horizons = [duration_frames(d, fps) for d in durations]
    n_total = max(horizons)
    window_frames = max(1, int(round(window_s * fps)))
    geometry = chunk_geometry((rollout.status() or {}).get("model_info", {})) if "seam" in plan.names else None
    key = scoring_key(rollout.key, sample.content_hash, plan, horizons, window_frames, geometry)
    if pose_padding == "error":
        pose_padding = "reflect"  # only reached by the tail of a last chunk, never scored
    cache = rollout.scores_path(key)
    pooled_paths = {name: cache.with_name(f"{cache.stem}.{name}.npz") for name in plan.names
                    if metric_class(name).pooled}
    if cache.exists() and not force and all(p.exists() for p in pooled_paths.values()):
        import json

        return RolloutScores(json.loads(cache.read_text())["records"], pooled_paths)

    metrics: list[Metric] = [metric_class(name)(device=device, horizons=horizons, gt_cache_dir=gt_cache_dir)
                             for name in plan.names]
    for metric in metrics:
        metric.set_gt_key(sample.content_hash)
        if geometry is not None:
            metric.set_chunk_geometry(*geometry)
    needs = {n for m in metrics for n in m.needs}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_total, desc=f"  score {sample.id}", unit="frame", leave=False)
    for start, pred in rollout.iter_frames(n_total, batch=batch):
        # past the end of an extended pose sequence the GT is the frame of the same (padded) pose index
        index = pose_indices(start, len(pred), sample.n_frames, pose_padding)
        gt = _by_index(sample.gt, index)
        if gt.shape != pred.shape:
            raise BenchError(f"sample {sample.id}: GT frames {gt.shape} and rollout frames {pred.shape} differ",
                             fix="the rollout was generated at another size; delete it and re-run")
        fb = FrameBatch(start=start, gt=gt, pred=pred,
                        face_boxes=_by_index(sample.face_boxes, index) if "face_boxes" in needs else None,
                        masks=_by_index(sample.masks, index) if "masks" in needs else None)
        for metric in metrics:
            metric.update(fb)
        if bar:
            bar.update(len(pred))
    if bar:
        bar.close()

    records = []
    for metric in metrics:
        if metric.pooled:
            state = metric.pooled_state()
            pooled_paths[metric.name].parent.mkdir(parents=True, exist_ok=True)
            atomic_write_npz(pooled_paths[metric.name], **state)
            continue
        series, info = metric.series(), metric.info()
        for duration, n in zip(durations, horizons):
            part = drift.prefix(series, n)  # durations are prefixes of the one rollout
            value, _, covered = drift.mean_std(part)  # NaN values (no face, no background) are uncovered
            curve = drift.window_means(part, window_frames, n)
            windows = [_finite_or_none(w["value"]) for w in curve]
            records.append({
                "metric": metric.name, "duration_s": float(duration), "n_frames": n, "value": _finite_or_none(value),
                "coverage": covered / len(part.values) if len(part.values) else 0.0,
                "windows": {"window_s": float(window_s), "values": windows},
                "drift_slope_per_min": _finite_or_none(drift.drift_slope(curve, fps)),
                "higher_is_better": metric.higher_is_better,
                "prefix_of": {"rollout_frames": n_total, "note": "durations are prefixes of one rollout"},
                "metric_weights": plan.weight_records(metric.name),
                **({"metric_info": info} if info else {}),
            })
    atomic_write_json(cache, {"scoring_key": key, "records": records})
    return RolloutScores(records, pooled_paths)


def pooled_records(states_by_method: dict[str, dict[str, list[Path]]], durations: Sequence[float],
                   fps: int, weights: dict[str, list] | None = None) -> list[dict]:
    """One record per (method, duration, pooled metric) from the per-rollout states of a whole cell
    (``weights``: the metric's weight records, as ``MetricPlan.weight_records``)."""
    from bench.registry import metric_class

    out = []
    for method, per_metric in sorted(states_by_method.items()):
        for name, paths in sorted(per_metric.items()):
            cls = metric_class(name)
            states = []
            for p in sorted(paths):
                with np.load(p) as data:
                    states.append({k: data[k] for k in data.files})
            try:
                values, problem = cls.pooled_compute(states), None
            except BenchError as exc:  # e.g. too few frames or clips for a covariance: the cell stays missing
                values, problem = {}, exc.message
            for duration in durations:
                n = duration_frames(duration, fps)
                value, extra = values.get(n, (None, {"problem": problem} if problem else {}))
                out.append({"method": method, "sample": ALL_SAMPLES, "metric": name, "duration_s": float(duration),
                            "n_frames": n, "value": None if value is None else float(value),
                            "higher_is_better": cls.higher_is_better, "pooled": {"n_videos": len(states), **extra},
                            **({"missing": f"n/a ({problem})"} if value is None and problem else {}),
                            "metric_weights": list((weights or {}).get(name, []))})
    return out
