"""FID: Inception-v3 pool3 features (pytorch-fid's network and weights), pooled per (method, horizon) cell.

Per video the metric keeps the 2048-d features of the frames it needs -- for every horizon ``h`` the same
number ``N`` of frames (default ``N = min(horizons)``) taken with a uniform stride over the prefix
``[0, h)``: frame ``floor(i * h / N)``, ``i < N``. The per-video state therefore has a fixed size
(at most ``N x len(horizons)`` features), whatever the video length. ``pooled_compute`` merges the states
of a cell with running float64 sums of ``x`` and ``x x^T`` (constant memory in the number of videos)
and returns the Frechet distance per horizon.

Ground-truth features can be cached (``gt_cache_dir`` + ``set_gt_key``): the cache key hashes the GT key,
the preprocessing, the weight hash, the horizons and N.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from bench.errors import DataError
from bench.metrics import weights as W
from bench.metrics.base import FrameBatch, Metric, WeightRecord
from bench.store import atomic_write_npz

FEATURE_DIM = 2048
PREPROCESSING = ("pytorch_fid.InceptionV3(block 3, resize_input=True, normalize_input=True): full frame, "
                 "bilinear to 299x299 (align_corners=False, no crop), [0, 1] -> [-1, 1], float32")


def select_frames(horizon: int, n: int) -> np.ndarray:
    """The ``n`` frames of horizon ``horizon`` (uniform stride over ``[0, horizon)``)."""
    if n <= 0 or horizon <= 0:
        return np.zeros(0, np.int64)
    if n >= horizon:
        return np.arange(horizon, dtype=np.int64)
    return np.floor(np.arange(n) * (horizon / n)).astype(np.int64)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)) in float64.

    ``tr((S1 S2)^(1/2))`` is computed as the sum of square roots of the eigenvalues of the symmetric PSD
    matrix ``S1^(1/2) S2 S1^(1/2)`` (same eigenvalues as ``S1 S2``); this equals pytorch-fid's
    ``scipy.linalg.sqrtm`` route, is stable for rank-deficient covariances and several times faster."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"shape mismatch: {mu1.shape} {mu2.shape} {sigma1.shape} {sigma2.shape}")
    evals, evecs = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (evecs * np.sqrt(np.clip(evals, 0, None))) @ evecs.T
    middle = root1 @ sigma2 @ root1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def frechet_distance_low_rank(x1: np.ndarray, x2: np.ndarray) -> float:
    """The same distance from the samples themselves when there are fewer samples than dimensions:
    with ``S = A^T A`` (A = centred samples / sqrt(n - 1)), ``tr((S1 S2)^(1/2))`` is the nuclear norm of
    ``A1 A2^T`` (n1 x n2) -- exact, and far cheaper than a d x d eigendecomposition."""
    x1, x2 = np.asarray(x1, np.float64), np.asarray(x2, np.float64)
    mu1, mu2 = x1.mean(0), x2.mean(0)
    a1 = (x1 - mu1) / np.sqrt(len(x1) - 1)
    a2 = (x2 - mu2) / np.sqrt(len(x2) - 1)
    nuclear = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + (a1 * a1).sum() + (a2 * a2).sum() - 2.0 * nuclear)


class RunningMoments:
    """float64 running sums of x and x x^T; ``mean_cov()`` gives the unbiased covariance (like np.cov).
    While there are at most ``dim`` samples it also keeps them, for the exact low-rank distance."""

    def __init__(self, dim: int):
        self.n = 0
        self.dim = dim
        self.sum = np.zeros(dim, np.float64)
        self.outer = np.zeros((dim, dim), np.float64)
        self.rows: list[np.ndarray] | None = []

    def add(self, features: np.ndarray) -> None:
        x = np.asarray(features, np.float64)
        self.n += len(x)
        self.sum += x.sum(axis=0)
        self.outer += x.T @ x
        if self.rows is not None:
            self.rows.append(x)
            if self.n > self.dim:
                self.rows = None

    def samples(self) -> np.ndarray | None:
        return None if self.rows is None else np.concatenate(self.rows)

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 2:
            raise DataError(f"a Frechet distance needs at least 2 samples, got {self.n}",
                            fix="score more frames / clips in this cell")
        mu = self.sum / self.n
        cov = (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return mu, cov


def frechet_from_states(states: Sequence[dict[str, np.ndarray]], *, index_key: str, pred_key: str, gt_key: str,
                        horizon_key: str, count_key: str, dim: int, select) -> dict[int, tuple[float, dict]]:
    """Shared pooling for FID and V-MAE FD: per horizon, select the same count per video, sum, compare."""
    if not states:
        raise DataError("no videos to pool", fix="score at least one video in the cell")
    horizons = [int(h) for h in states[0][horizon_key]]
    count = int(states[0][count_key])
    for s in states[1:]:
        if [int(h) for h in s[horizon_key]] != horizons or int(s[count_key]) != count:
            raise DataError("videos of one cell were scored with different horizons / frame counts",
                            fix="re-score the cell with one horizon setting")
    out: dict[int, tuple[float, dict]] = {}
    for h in horizons:
        pred, gt = RunningMoments(dim), RunningMoments(dim)
        incomplete = 0
        for s in states:
            wanted = select(h, count, s)
            have_pred = np.isin(s[index_key], wanted)
            have_gt = np.isin(s["gt_" + index_key], wanted)
            if have_pred.sum() < len(wanted) or have_gt.sum() < len(wanted):
                incomplete += 1
                continue
            pred.add(s[pred_key][have_pred])
            gt.add(s[gt_key][have_gt])
        extra = {"videos": len(states), "per_video": count, "n": pred.n}
        if incomplete:
            extra["reason"] = f"{incomplete} video(s) shorter than the horizon"
            out[h] = (float("nan"), extra)
            continue
        (mu_p, cov_p), (mu_g, cov_g) = pred.mean_cov(), gt.mean_cov()
        if pred.samples() is not None and gt.samples() is not None:
            out[h] = (frechet_distance_low_rank(pred.samples(), gt.samples()), extra)
        else:
            out[h] = (frechet_distance(mu_p, cov_p, mu_g, cov_g), extra)
    return out


def load_fid_inception(device: str = "cpu"):
    """pytorch-fid's ``InceptionV3([3])`` (pool3), after verifying ``pt_inception-2015-12-05-6726825d.pth``
    is already in the torch.hub checkpoints folder (so pytorch-fid loads it without downloading).
    The weights are kept channels-last, the layout frames arrive in: about 2x faster on a CPU, same values."""
    W.resolve_torch_hub("fid_inception")
    import torch
    from pytorch_fid.inception import InceptionV3

    model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]], resize_input=True, normalize_input=True)
    return model.eval().to(device, memory_format=torch.channels_last)


def inception_features(model, frames: np.ndarray, device: str, batch_size: int = 16) -> np.ndarray:
    """uint8 (T, H, W, 3) -> float32 (T, 2048) pool3 features."""
    import torch

    out = []
    with torch.inference_mode():
        for a in range(0, len(frames), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(frames[a:a + batch_size])).to(device)
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
            out.append(model(x)[0].reshape(len(x), -1).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM), np.float32)


class FID(Metric):
    name = "fid"
    pooled = True
    description = "Inception-v3 pool3 Frechet distance, frames of a (method, horizon) cell pooled, same N per horizon"

    def __init__(self, *, frames_per_horizon: int | None = None, batch_size: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.frames_per_horizon = int(frames_per_horizon or (min(self.horizons) if self.horizons else 0))
        self.batch_size = int(batch_size)
        self._records = type(self).check_weights()
        self._model = load_fid_inception(self.device)
        self._wanted = np.unique(np.concatenate(
            [select_frames(h, self.frames_per_horizon) for h in self.horizons])) if self.horizons else None
        self.reset()

    @classmethod
    def check_weights(cls) -> list[WeightRecord]:
        return [W.resolve_torch_hub("fid_inception")]

    def weights(self) -> list[WeightRecord]:
        return list(self._records)

    def reset(self) -> None:
        self._index: list[np.ndarray] = []
        self._pred: list[np.ndarray] = []
        self._gt_index: list[np.ndarray] = []
        self._gt: list[np.ndarray] = []
        self._gt_cached: tuple[np.ndarray, np.ndarray] | None = None
        self._seen = 0
        self.gt_key = None

    # -- GT statistics cache
    def _cache_path(self) -> Path | None:
        if not self.horizons:
            return None
        return self.gt_cache_file("fid", preprocessing=PREPROCESSING, weights=self._records[0].sha256,
                                  horizons=self.horizons, n=self.frames_per_horizon)

    def set_gt_key(self, key: str | None) -> None:
        super().set_gt_key(key)
        path = self._cache_path()
        if path is not None and path.exists():
            with np.load(path) as z:
                self._gt_cached = (z["frame_index"], z["features"])

    def update(self, batch: FrameBatch) -> None:
        frames = np.arange(batch.start, batch.start + len(batch), dtype=np.int64)
        self._seen = max(self._seen, int(frames[-1]) + 1) if len(frames) else self._seen
        take = np.isin(frames, self._wanted) if self._wanted is not None else np.ones(len(frames), bool)
        if not take.any():
            return
        self._index.append(frames[take])
        self._pred.append(inception_features(self._model, batch.pred[take], self.device, self.batch_size))
        if self._gt_cached is None:
            self._gt_index.append(frames[take])
            self._gt.append(inception_features(self._model, batch.gt[take], self.device, self.batch_size))

    def pooled_state(self) -> dict[str, np.ndarray]:
        empty = np.zeros((0, FEATURE_DIM), np.float32)
        index = np.concatenate(self._index) if self._index else np.zeros(0, np.int64)
        pred = np.concatenate(self._pred) if self._pred else empty
        if self._gt_cached is not None:
            gt_index, gt = self._gt_cached
        else:
            gt_index = np.concatenate(self._gt_index) if self._gt_index else np.zeros(0, np.int64)
            gt = np.concatenate(self._gt) if self._gt else empty
            path = self._cache_path()
            if path is not None and self._seen >= max(self.horizons):
                atomic_write_npz(path, frame_index=gt_index, features=gt)
        horizons = self.horizons or (self._seen,)
        n = self.frames_per_horizon or self._seen
        return {"frame_index": index, "pred": pred, "gt_frame_index": gt_index, "gt": gt,
                "horizons": np.asarray(horizons, np.int64), "frames_per_horizon": np.asarray(n, np.int64),
                "frames_seen": np.asarray(self._seen, np.int64)}

    @classmethod
    def pooled_compute(cls, states: Sequence[dict[str, np.ndarray]]) -> dict[int, tuple[float, dict]]:
        out = frechet_from_states(states, index_key="frame_index", pred_key="pred", gt_key="gt",
                                  horizon_key="horizons", count_key="frames_per_horizon", dim=FEATURE_DIM,
                                  select=lambda h, n, s: select_frames(h, n))
        for _, extra in out.values():
            extra["preprocessing"] = PREPROCESSING
        return out
