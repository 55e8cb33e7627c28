"""VideoMAE distance, two named variants on the same clip features.

Clips: consecutive non-overlapping windows of ``num_frames`` (16 for ``MCG-NJU/videomae-base``) aligned
frames; each frame resized (full frame, no crop; bilinear with antialias) to the model's image size,
scaled to [0, 1], normalised with the model's image mean/std; feature = mean over tokens of the last
hidden state (float32 network, float64 afterwards).

* ``vmae_paired``: per clip ``1 - cos(f_pred, f_gt)``; a series (drift curves per window), mean per video.
* ``vmae_fd``: Frechet distance between the clip-feature sets of a (method, horizon) cell, with the same
  number of clips per horizon (uniform stride over the horizon's clips), like FID.

Loading fails loudly on any missing / mismatched key and on attention biases that are all zero: some
transformers versions map VideoMAE's ``q_bias`` / ``v_bias`` silently and leave zeros.
Weights: ``$HF_HOME/hub`` (``MCG-NJU/videomae-base``) or an explicit folder (``model_path=`` /
``BENCH_VIDEOMAE_PATH``). The feature computation is shared by both variants within one process.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from bench.errors import DataError, WeightsError
from bench.metrics import weights as W
from bench.metrics.base import FrameBatch, Metric, Series, WeightRecord
from bench.metrics.fid import frechet_from_states, select_frames

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_BIAS_NAME = re.compile(r"attention\.attention\.(q_bias|v_bias|query\.bias|value\.bias)$")


def _model_path(path: str | os.PathLike | None) -> str | None:
    return str(path) if path is not None else os.environ.get("BENCH_VIDEOMAE_PATH") or None


def load_videomae(path: str | os.PathLike | None = None, device: str = "cpu"):
    """Load ``VideoMAEModel`` from local files only; returns ``(model, folder, records)``.

    Raises ``WeightsError`` when files are absent/corrupt, when the load report lists missing or
    mismatched keys, or when any layer's query/value bias is all zero."""
    folder, records = W.resolve_videomae(_model_path(path))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import VideoMAEModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = VideoMAEModel.from_pretrained(str(folder), output_loading_info=True, local_files_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot load VideoMAE from {folder}: {exc}",
                           fix="the folder is incomplete or corrupt; re-download MCG-NJU/videomae-base") from exc
    finally:
        hf_logging.set_verbosity(level)
    missing = sorted(info.get("missing_keys") or [])
    mismatched = sorted(str(k) for k in (info.get("mismatched_keys") or []))
    if missing or mismatched:
        raise WeightsError(
            f"VideoMAE checkpoint {folder} does not fill the model: missing {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}, mismatched {mismatched[:8]} -- those weights would be random/zero",
            fix="use the original MCG-NJU/videomae-base files (or a transformers version that maps q_bias/v_bias)")
    biases = [(n, p) for n, p in model.named_parameters() if _BIAS_NAME.search(n)]
    if getattr(model.config, "qkv_bias", True) and not biases:
        raise WeightsError(f"VideoMAE from {folder}: no query/value biases found in the model",
                           fix="update bench: this transformers version names VideoMAE's biases differently")
    zero = [n for n, p in biases if not bool(p.detach().abs().sum() > 0)]
    if zero:
        raise WeightsError(f"VideoMAE from {folder}: attention biases are all zero ({zero[:4]}...): the checkpoint's "
                           "q_bias / v_bias were not loaded", fix="use the original checkpoint files; do not "
                           "re-save a model whose biases were dropped")
    return model.eval().to(device), folder, records


class _SharedClipFeatures:
    """Streams aligned frames into clips and computes their features once per batch for both variants."""

    def __init__(self, path: str | None, device: str, batch_clips: int = 4):
        import torch

        self.model, self.folder, self.records = load_videomae(path, device)
        cfg = self.model.config
        self.device = device
        self.clip_len = int(cfg.num_frames)
        self.size = int(cfg.image_size)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        pre = Path(self.folder) / "preprocessor_config.json"
        if pre.is_file():
            spec = json.loads(pre.read_text())
            mean, std = spec.get("image_mean", mean), spec.get("image_std", std)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.batch_clips = batch_clips
        self.preprocessing = (f"full frame -> {self.size}x{self.size} bilinear antialias (no crop), /255, "
                              f"normalise mean {list(mean)} std {list(std)}; {self.clip_len}-frame clips, "
                              "stride = clip length; mean-pooled last hidden state")
        self.reset()

    def reset(self) -> None:
        self.next_frame = 0
        self._buf_gt: list = []
        self._buf_pred: list = []
        self._last_batch = None
        self._last_result = None

    def _prepare(self, frames: np.ndarray):
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return list(((x - self.mean) / self.std).unbind(0))

    def _features(self, clips: list) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for a in range(0, len(clips), self.batch_clips):
                x = torch.stack(clips[a:a + self.batch_clips]).to(self.device)  # (B, T, 3, S, S)
                hidden = self.model(pixel_values=x).last_hidden_state
                out.append(hidden.mean(dim=1).double().cpu().numpy())
        return np.concatenate(out)

    def process(self, batch: FrameBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Clips completed by this batch: ``(last_frame (K,), f_gt (K, D), f_pred (K, D))``."""
        if batch is self._last_batch:
            return self._last_result
        if batch.start == 0:
            self.reset()
        elif batch.start != self.next_frame:
            raise DataError(f"VideoMAE needs consecutive frames: got frame {batch.start}, expected {self.next_frame}",
                            fix="feed a video's frames in order, each range once")
        self._buf_gt += self._prepare(batch.gt)
        self._buf_pred += self._prepare(batch.pred)
        first_buffered = batch.start + len(batch) - len(self._buf_gt)
        self.next_frame = batch.start + len(batch)
        clips_gt, clips_pred, last = [], [], []
        import torch

        while len(self._buf_gt) >= self.clip_len:
            clips_gt.append(torch.stack(self._buf_gt[:self.clip_len]))
            clips_pred.append(torch.stack(self._buf_pred[:self.clip_len]))
            del self._buf_gt[:self.clip_len], self._buf_pred[:self.clip_len]
            last.append(first_buffered + self.clip_len - 1)
            first_buffered += self.clip_len
        if clips_gt:
            result = (np.asarray(last, np.int64), self._features(clips_gt), self._features(clips_pred))
        else:
            result = (np.zeros(0, np.int64), None, None)
        self._last_batch, self._last_result = batch, result
        return result


_SHARED: dict[tuple[str, str], _SharedClipFeatures] = {}


def shared_clip_features(path: str | None, device: str) -> _SharedClipFeatures:
    folder = str(W.find_videomae_dir(_model_path(path)))
    key = (folder, device)
    if key not in _SHARED:
        _SHARED[key] = _SharedClipFeatures(_model_path(path), device)
    return _SHARED[key]


class _VideoMAEMetric(Metric):
    def __init__(self, *, model_path: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self._clips = shared_clip_features(model_path, self.device)
        self.reset()

    @classmethod
    def check_weights(cls) -> list[WeightRecord]:
        return W.resolve_videomae(_model_path(None))[1]

    def weights(self) -> list[WeightRecord]:
        return list(self._clips.records)

    def reset(self) -> None:
        self._last: list[np.ndarray] = []
        self._gt: list[np.ndarray] = []
        self._pred: list[np.ndarray] = []
        self._seen = 0

    def update(self, batch: FrameBatch) -> None:
        last, f_gt, f_pred = self._clips.process(batch)
        self._seen = max(self._seen, batch.start + len(batch))
        if len(last):
            self._last.append(last)
            self._gt.append(f_gt)
            self._pred.append(f_pred)

    def info(self) -> dict:
        return {"clip_len": self._clips.clip_len, "preprocessing": self._clips.preprocessing}


class VMAEPaired(_VideoMAEMetric):
    name = "vmae_paired"
    display = "V-MAE (paired)"
    higher_is_better = False
    description = "mean over aligned 16-frame clips of 1 - cos(VideoMAE(pred), VideoMAE(gt))"

    def series(self) -> Series:
        if not self._last:
            return Series(np.zeros(0, np.int64), np.zeros(0, np.float64))
        gt, pred = np.concatenate(self._gt), np.concatenate(self._pred)
        cos = (gt * pred).sum(1) / np.maximum(np.linalg.norm(gt, axis=1) * np.linalg.norm(pred, axis=1), 1e-12)
        return Series(np.concatenate(self._last), 1.0 - cos)


class VMAEFrechet(_VideoMAEMetric):
    name = "vmae_fd"
    display = "V-MAE (FD)"
    higher_is_better = False
    pooled = True
    description = "Frechet distance of VideoMAE clip features, clips of a (method, horizon) cell pooled"

    def pooled_state(self) -> dict[str, np.ndarray]:
        dim = int(self._clips.model.config.hidden_size)
        L = self._clips.clip_len
        last = np.concatenate(self._last) if self._last else np.zeros(0, np.int64)
        gt = np.concatenate(self._gt).astype(np.float32) if self._gt else np.zeros((0, dim), np.float32)
        pred = np.concatenate(self._pred).astype(np.float32) if self._pred else np.zeros((0, dim), np.float32)
        horizons = self.horizons or (self._seen,)
        per = min(horizons) // L
        return {"clip_last_frame": last, "pred": pred, "gt_clip_last_frame": last.copy(), "gt": gt,
                "horizons": np.asarray(horizons, np.int64), "clips_per_horizon": np.asarray(per, np.int64),
                "clip_len": np.asarray(L, np.int64)}

    @classmethod
    def pooled_compute(cls, states: Sequence[dict[str, np.ndarray]]) -> dict[int, tuple[float, dict]]:
        dim = int(states[0]["pred"].shape[1]) if states else 0

        def select(h, n, s):
            L = int(s["clip_len"])
            return select_frames(h // L, n) * L + (L - 1)

        return frechet_from_states(states, index_key="clip_last_frame", pred_key="pred", gt_key="gt",
                                   horizon_key="horizons", count_key="clips_per_horizon", dim=dim, select=select)
