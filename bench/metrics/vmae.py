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

Backbone option (``backbone=`` or ``BENCH_VIDEOMAE_BACKBONE``): ``videomae-base`` (default, above) or
``videomae-v2-g``, the network of the CD-FVD protocol (Ge et al. 2024, "On the Content Bias in Frechet Video
Distance"): VideoMAEv2's ViT-g/14 fine-tuned on SSv2, file ``vit_g_hybrid_pt_1200e_ssv2_ft.pth`` from
``model_path=`` / ``BENCH_VIDEOMAE_V2_PATH`` / ``$TORCH_HOME/hub/checkpoints``. Facts it follows (sources:
github.com/songweige/content-debiased-fvd ``cdfvd/fvd.py``, ``cdfvd/third_party/VideoMAEv2/utils.py`` and
``videomaev2_finetune.py``; github.com/OpenGVLab/VideoMAEv2 ``docs/MODEL_ZOO.md``, ``run_class_finetuning.py``,
``dataset/build.py``):

* architecture ``vit_giant_patch14_224``: patch 14, embed 1408, depth 40, 16 heads, ``mlp_ratio`` 48/11
  (MLP 6144), tubelet 2, 16 frames, 224 px, LayerNorm eps 1e-6, exact GELU, fixed sinusoid position table
  (not in the checkpoint), no layer scale, ``use_mean_pooling`` (final ``norm`` is Identity; ``fc_norm``
  after the token mean), 174 SSv2 classes in ``head``;
* attention: one ``qkv`` weight (3 x 1408 rows: q, k, v) with bias ``cat(q_bias, 0, v_bias)``, scale
  head_dim ** -0.5;
* checkpoint: a state dict under ``model`` or ``module`` (cd-fvd tries those two; VideoMAEv2 fine-tuning's
  ``--model_key model|module``) with keys ``patch_embed.proj.*``, ``blocks.N.{norm1, attn.qkv.weight,
  attn.q_bias, attn.v_bias, attn.proj, norm2, mlp.fc1, mlp.fc2}``, ``fc_norm.*``, ``head.*``; cd-fvd loads it
  with ``strict=True``, so nothing else is in it;
* feature: cd-fvd calls ``model.forward_features``, i.e. ``fc_norm(mean over tokens)`` -- the 1408-d
  pre-head vector, not the logits;
* input: uint8 / 255 to [0, 1], bilinear resize to 224x224, **no mean/std normalisation** (cd-fvd's
  ``preprocess_videomae``; VideoMAEv2's SSv2 fine-tuning data, ``RawFrameClsDataset``, was normalised with
  ImageNet mean/std, cd-fvd does not),
  16-frame clips, float32. We follow cd-fvd's value range; the resize is this benchmark's declared one (full
  frame, antialias, no crop) where cd-fvd's loader centre-crops after a short-side resize.

The checkpoint is mapped key by key into transformers' ``VideoMAEModel`` (+ ``fc_norm``): every model
parameter must be filled; missing keys, leftovers other than ``head.*``, shape mismatches, all-zero
``q_bias`` / ``v_bias`` and unreadable files are ``WeightsError``s.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from bench.errors import ConfigError, DataError, WeightsError
from bench.metrics import weights as W
from bench.metrics.base import FrameBatch, Metric, Series, WeightRecord
from bench.metrics.fid import frechet_from_states, select_frames
from bench.store import atomic_write_npz

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_BIAS_NAME = re.compile(r"attention\.attention\.(q_bias|v_bias|query\.bias|value\.bias)$")
BACKBONES = ("videomae-base", "videomae-v2-g")
DEFAULT_BACKBONE = "videomae-base"


def _model_path(path: str | os.PathLike | None) -> str | None:
    return str(path) if path is not None else os.environ.get("BENCH_VIDEOMAE_PATH") or None


def backbone_name(backbone: str | None = None) -> str:
    """``backbone``, else ``$BENCH_VIDEOMAE_BACKBONE``, else ``videomae-base``; unknown names are errors."""
    name = backbone or os.environ.get("BENCH_VIDEOMAE_BACKBONE") or DEFAULT_BACKBONE
    if name not in BACKBONES:
        raise ConfigError(f"unknown VideoMAE backbone {name!r}", fix=f"use one of {', '.join(BACKBONES)}")
    return name


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


# ---------------------------------------------------------------------------------------------- VideoMAE-v2
@dataclass(frozen=True)
class VideoMAEv2Geometry:
    """Architecture of a VideoMAEv2 fine-tuned ViT with mean pooling; the default is ViT-g/14 (tests use tiny ones)."""

    image_size: int = 224
    patch_size: int = 14
    num_frames: int = 16
    tubelet_size: int = 2
    hidden_size: int = 1408
    num_hidden_layers: int = 40
    num_attention_heads: int = 16
    intermediate_size: int = 6144  # int(1408 * 48 / 11)
    layer_norm_eps: float = 1e-6


VIT_G_14 = VideoMAEv2Geometry()


class VideoMAEv2Features(nn.Module):
    """VideoMAEv2 ViT as cd-fvd uses it: ``pixel_values (B, T, 3, S, S)`` in [0, 1] -> ``fc_norm(mean over
    tokens)`` ``(B, hidden)``. The blocks are transformers' ``VideoMAEModel`` (mean pooling: no final norm)."""

    def __init__(self, geometry: VideoMAEv2Geometry = VIT_G_14):
        super().__init__()
        from transformers import VideoMAEConfig, VideoMAEModel

        g = geometry
        self.geometry = g
        self.config = VideoMAEConfig(
            image_size=g.image_size, patch_size=g.patch_size, num_frames=g.num_frames, tubelet_size=g.tubelet_size,
            hidden_size=g.hidden_size, num_hidden_layers=g.num_hidden_layers, num_attention_heads=g.num_attention_heads,
            intermediate_size=g.intermediate_size, layer_norm_eps=g.layer_norm_eps, hidden_act="gelu", qv_bias=True,
            use_mean_pooling=True, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        self.videomae = VideoMAEModel(self.config)
        self.fc_norm = nn.LayerNorm(g.hidden_size, eps=g.layer_norm_eps)

    def forward(self, pixel_values):
        hidden = self.videomae(pixel_values=pixel_values).last_hidden_state
        return self.fc_norm(hidden.mean(dim=1))


def _videomae_v2_key_map(depth: int) -> dict[str, str]:
    """Checkpoint name -> model name, except ``blocks.N.attn.qkv.weight`` (split into query / key / value)."""
    names = {"patch_embed.proj.weight": "videomae.embeddings.patch_embeddings.projection.weight",
             "patch_embed.proj.bias": "videomae.embeddings.patch_embeddings.projection.bias",
             "fc_norm.weight": "fc_norm.weight", "fc_norm.bias": "fc_norm.bias"}
    block = {"norm1": "layernorm_before", "attn.proj": "attention.output.dense", "norm2": "layernorm_after",
             "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}
    for i in range(depth):
        layer = f"videomae.encoder.layer.{i}"
        for ours, theirs in block.items():
            for kind in ("weight", "bias"):
                names[f"blocks.{i}.{ours}.{kind}"] = f"{layer}.{theirs}.{kind}"
        names[f"blocks.{i}.attn.q_bias"] = f"{layer}.attention.attention.query.bias"
        names[f"blocks.{i}.attn.v_bias"] = f"{layer}.attention.attention.value.bias"
    return names


def _read_checkpoint(path: Path) -> dict:
    def damaged(exc: Exception) -> WeightsError:
        source = W.KNOWN_WEIGHTS["videomae_v2_g"].source
        return WeightsError(f"{path} is corrupt or truncated: cannot read it as a PyTorch checkpoint "
                            f"({type(exc).__name__}: {exc})",
                            fix=f"delete it and place the real file (source: {source})")

    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:
        if "weights only" not in str(exc).lower():
            raise damaged(exc) from exc
        lines = str(exc).splitlines()
        detail = next((line.strip() for line in lines if "Unsupported global" in line), lines[0] if lines else "")
        raise WeightsError(f"{path} holds Python objects besides tensors; not loaded (weights_only): {detail}",
                           fix="re-save only its state dict: torch.save({'module': sd}, path)") from exc
    except Exception as exc:  # torch raises RuntimeError / EOFError / ... for damaged files
        raise damaged(exc) from exc


def videomae_v2_state_dict(checkpoint: dict, model: VideoMAEv2Features, where: str = "checkpoint") -> dict:
    """Map a VideoMAEv2 fine-tune checkpoint onto ``model``'s parameter names, strictly: raises ``WeightsError``
    on missing keys, leftovers other than ``head.*``, shape mismatches and all-zero ``q_bias`` / ``v_bias``."""
    geometry = model.geometry
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    state = checkpoint
    for wrapper in ("model", "module"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(wrapper), dict):
            state = checkpoint[wrapper]
            break
    fix = (f"use the original vit_g_hybrid_pt_1200e_ssv2_ft.pth (VideoMAEv2 fine-tuned ViT-g, as cd-fvd) and put "
           f"it at {W.videomae_v2_file()} or set BENCH_VIDEOMAE_V2_PATH")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        top = list(checkpoint)[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise WeightsError(f"{where} has no VideoMAEv2 state dict (top level: {top})", fix=fix)
    names = _videomae_v2_key_map(geometry.num_hidden_layers)
    out, source, missing = {}, {}, []
    for theirs, ours in names.items():
        if theirs in state:
            out[ours], source[ours] = state[theirs], theirs
        else:
            missing.append(theirs)
    D = geometry.hidden_size
    for i in range(geometry.num_hidden_layers):
        qkv = state.get(f"blocks.{i}.attn.qkv.weight")
        if qkv is None:
            missing.append(f"blocks.{i}.attn.qkv.weight")
            continue
        if tuple(qkv.shape) != (3 * D, D):
            raise WeightsError(f"{where}: blocks.{i}.attn.qkv.weight is {tuple(qkv.shape)}, the model needs "
                               f"{(3 * D, D)} (geometry {geometry})", fix=fix)
        for part, name in zip(qkv.split(D), ("query", "key", "value")):
            ours = f"videomae.encoder.layer.{i}.attention.attention.{name}.weight"
            out[ours], source[ours] = part, f"blocks.{i}.attn.qkv.weight ({name} rows)"
    if missing:
        raise WeightsError(f"{where} does not fill the model: missing {sorted(missing)[:8]}"
                           f"{' ...' if len(missing) > 8 else ''} ({len(missing)} keys) -- those weights would be "
                           "random/zero", fix=fix)
    used = set(names) | {f"blocks.{i}.attn.qkv.weight" for i in range(geometry.num_hidden_layers)}
    leftover = sorted(k for k in state if k not in used and not k.startswith("head."))
    if leftover:
        raise WeightsError(f"{where} has keys this architecture does not use: {leftover[:8]}"
                           f"{' ...' if len(leftover) > 8 else ''} (another model: layer scale, learnable position "
                           "embedding, cls-token norm, a pre-training checkpoint, or deeper than "
                           f"{geometry.num_hidden_layers} blocks?)", fix=fix)
    if set(out) != set(expected):
        raise WeightsError(f"{where}: model parameters left unfilled {sorted(set(expected) - set(out))[:8]}",
                           fix="update bench: this transformers version names VideoMAE's parameters differently")
    wrong = [f"{source[k]}: {tuple(v.shape)} != {expected[k]}" for k, v in out.items() if tuple(v.shape) != expected[k]]
    if wrong:
        raise WeightsError(f"{where} does not match the architecture {geometry}: {wrong[:4]}", fix=fix)
    zero = [k for k in names if k.endswith(("q_bias", "v_bias")) and not bool(state[k].abs().sum() > 0)]
    if zero:
        raise WeightsError(f"{where}: attention biases are all zero ({zero[:4]}...): q_bias / v_bias were not "
                           "saved or were dropped", fix=fix)
    return {k: v.to(torch.float32).contiguous() for k, v in out.items()}


def load_videomae_v2(path: str | os.PathLike | None = None, device: str = "cpu",
                     geometry: VideoMAEv2Geometry = VIT_G_14):
    """``VideoMAEv2Features`` filled from the fine-tuned ViT checkpoint; returns ``(model, records)``."""
    record = W.resolve_videomae_v2(path)
    with torch.device("meta"):
        model = VideoMAEv2Features(geometry)
    state = videomae_v2_state_dict(_read_checkpoint(Path(record.path)), model, where=record.path)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval().to(device), [record]


class _SharedClipFeatures:
    """Streams aligned frames into clips and computes their features once per batch for both variants."""

    def __init__(self, path: str | None, device: str, batch_clips: int = 4, backbone: str = DEFAULT_BACKBONE,
                 geometry: VideoMAEv2Geometry = VIT_G_14):
        self.backbone = backbone
        self.device = device
        self.batch_clips = batch_clips
        if backbone == "videomae-base":
            self.model, self.folder, self.records = load_videomae(path, device)
            cfg = self.model.config
            mean, std = IMAGENET_MEAN, IMAGENET_STD
            pre = Path(self.folder) / "preprocessor_config.json"
            if pre.is_file():
                spec = json.loads(pre.read_text())
                mean, std = spec.get("image_mean", mean), spec.get("image_std", std)
            self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
            self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
            scaling = f"/255, normalise mean {list(mean)} std {list(std)}"
            feature = "mean-pooled last hidden state of videomae-base (VideoMAEModel)"
        else:
            self.model, self.records = load_videomae_v2(path, device, geometry)
            cfg = self.model.config
            self.folder = None
            self.mean = self.std = None
            scaling = "/255 to [0, 1], no mean/std (as cd-fvd)"
            feature = ("fc_norm(mean over tokens) of videomae-v2-g (VideoMAEv2 ViT-g/14 fine-tuned on SSv2, "
                       "vit_g_hybrid_pt_1200e_ssv2_ft.pth; CD-FVD's feature)")
        self._gt_cached: dict[int, np.ndarray] | None = None
        self.clip_len = int(cfg.num_frames)
        self.size = int(cfg.image_size)
        self.dim = int(cfg.hidden_size)
        self.preprocessing = (f"full frame -> {self.size}x{self.size} bilinear antialias (no crop), {scaling}; "
                              f"{self.clip_len}-frame clips, stride = clip length; {feature}")
        self.reset()

    def _encode(self, x):
        if self.backbone == "videomae-base":
            return self.model(pixel_values=x).last_hidden_state.mean(dim=1)
        return self.model(pixel_values=x)

    def reset(self) -> None:
        self.next_frame = 0
        self._buf_gt: list = []
        self._buf_pred: list = []
        self._last_batch = None
        self._last_result = None

    def use_gt_features(self, cached: dict[int, np.ndarray] | None) -> None:
        """GT clip features by clip-last-frame for the next video (from the cache), or None to compute them."""
        self._gt_cached = cached
        self.reset()

    def _prepare(self, frames: np.ndarray):
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return list(x.unbind(0))

    def _features(self, clips: list) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for a in range(0, len(clips), self.batch_clips):
                x = torch.stack(clips[a:a + self.batch_clips]).to(self.device)  # (B, T, 3, S, S)
                out.append(self._encode(x).double().cpu().numpy())
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
        cached = self._gt_cached
        if cached is None:
            self._buf_gt += self._prepare(batch.gt)
        self._buf_pred += self._prepare(batch.pred)
        first_buffered = batch.start + len(batch) - len(self._buf_pred)
        self.next_frame = batch.start + len(batch)
        clips_gt, clips_pred, last = [], [], []
        while len(self._buf_pred) >= self.clip_len:
            if cached is None:
                clips_gt.append(torch.stack(self._buf_gt[:self.clip_len]))
                del self._buf_gt[:self.clip_len]
            clips_pred.append(torch.stack(self._buf_pred[:self.clip_len]))
            del self._buf_pred[:self.clip_len]
            last.append(first_buffered + self.clip_len - 1)
            first_buffered += self.clip_len
        if clips_pred and cached is not None and not all(i in cached for i in last):
            raise DataError(f"cached GT VideoMAE features lack clips ending at {[i for i in last if i not in cached][:4]}",
                            fix="delete the gt_features cache folder; it does not match this ground truth")
        if clips_pred:
            f_gt = self._features(clips_gt) if cached is None else np.stack([cached[i] for i in last])
            result = (np.asarray(last, np.int64), f_gt, self._features(clips_pred))
        else:
            result = (np.zeros(0, np.int64), None, None)
        self._last_batch, self._last_result = batch, result
        return result


_SHARED: dict[tuple, _SharedClipFeatures] = {}


def shared_clip_features(path: str | None, device: str, backbone: str | None = None,
                         geometry: VideoMAEv2Geometry = VIT_G_14) -> _SharedClipFeatures:
    backbone = backbone_name(backbone)
    if backbone == "videomae-base":
        path = _model_path(path)
        key = (backbone, str(W.find_videomae_dir(path)), device)
    else:
        key = (backbone, str(W.videomae_v2_file(path)), device, geometry)
    if key not in _SHARED:
        _SHARED[key] = _SharedClipFeatures(path, device, backbone=backbone, geometry=geometry)
    return _SHARED[key]


class _VideoMAEMetric(Metric):
    """``backbone``: ``videomae-base`` (default) or ``videomae-v2-g`` (also ``$BENCH_VIDEOMAE_BACKBONE``);
    ``model_path``: that backbone's folder / checkpoint file; ``geometry``: only for ``videomae-v2-g``."""

    def __init__(self, *, model_path: str | None = None, backbone: str | None = None,
                 geometry: VideoMAEv2Geometry | None = None, **kwargs):
        super().__init__(**kwargs)
        backbone = backbone_name(backbone)
        if geometry is not None and backbone != "videomae-v2-g":
            raise ConfigError(f"a VideoMAE-v2 geometry was given for backbone {backbone}",
                              fix="pass geometry only with backbone='videomae-v2-g'")
        self._clips = shared_clip_features(model_path, self.device, backbone, geometry or VIT_G_14)
        self.reset()

    @classmethod
    def check_weights(cls) -> list[WeightRecord]:
        if backbone_name() == "videomae-v2-g":
            return [W.resolve_videomae_v2()]
        return W.resolve_videomae(_model_path(None))[1]

    def weights(self) -> list[WeightRecord]:
        return list(self._clips.records)

    def reset(self) -> None:
        self._last: list[np.ndarray] = []
        self._gt: list[np.ndarray] = []
        self._pred: list[np.ndarray] = []
        self._seen = 0
        self._gt_from_cache = False
        self._clips.use_gt_features(None)

    def _cache_path(self) -> Path | None:
        return self.gt_cache_file("vmae", horizons=self.horizons, preprocessing=self._clips.preprocessing,
                                  weights=[r.sha256 for r in self._clips.records])

    def set_gt_key(self, key: str | None) -> None:
        """With ``gt_cache_dir``: GT clip features of this key are read from the cache when present (no GT
        forward), else computed and written there once the video has been seen to its last horizon."""
        super().set_gt_key(key)
        path = self._cache_path()
        cached = None
        if path is not None and path.exists():
            with np.load(path) as z:
                cached = dict(zip(z["clip_last_frame"].tolist(), z["features"]))
        self._gt_from_cache = cached is not None
        self._clips.use_gt_features(cached)

    def _save_gt_features(self) -> None:
        path = self._cache_path()
        if path is None or self._gt_from_cache or not self._last or path.exists():
            return
        if self.horizons and self._seen < max(self.horizons):
            return
        atomic_write_npz(path, clip_last_frame=np.concatenate(self._last), features=np.concatenate(self._gt))

    def update(self, batch: FrameBatch) -> None:
        last, f_gt, f_pred = self._clips.process(batch)
        self._seen = max(self._seen, batch.start + len(batch))
        if len(last):
            self._last.append(last)
            self._gt.append(f_gt)
            self._pred.append(f_pred)

    def info(self) -> dict:
        return {"backbone": self._clips.backbone, "clip_len": self._clips.clip_len,
                "preprocessing": self._clips.preprocessing, "gt_features_from_cache": self._gt_from_cache}


class VMAEPaired(_VideoMAEMetric):
    name = "vmae_paired"
    description = "mean over aligned 16-frame clips of 1 - cos(VideoMAE(pred), VideoMAE(gt))"

    def series(self) -> Series:
        if not self._last:
            return Series(np.zeros(0, np.int64), np.zeros(0, np.float64))
        self._save_gt_features()
        gt, pred = np.concatenate(self._gt), np.concatenate(self._pred)
        cos = (gt * pred).sum(1) / np.maximum(np.linalg.norm(gt, axis=1) * np.linalg.norm(pred, axis=1), 1e-12)
        return Series(np.concatenate(self._last), 1.0 - cos)


class VMAEFrechet(_VideoMAEMetric):
    name = "vmae_fd"
    pooled = True
    description = "Frechet distance of VideoMAE clip features, clips of a (method, horizon) cell pooled"

    def pooled_state(self) -> dict[str, np.ndarray]:
        self._save_gt_features()
        dim = self._clips.dim
        L = self._clips.clip_len
        last = np.concatenate(self._last) if self._last else np.zeros(0, np.int64)
        gt = np.concatenate(self._gt).astype(np.float32) if self._gt else np.zeros((0, dim), np.float32)
        pred = np.concatenate(self._pred).astype(np.float32) if self._pred else np.zeros((0, dim), np.float32)
        horizons = self.horizons or (self._seen,)
        per = min(horizons) // L
        return {"clip_last_frame": last, "pred": pred, "gt_clip_last_frame": last.copy(), "gt": gt,
                "horizons": np.asarray(horizons, np.int64), "clips_per_horizon": np.asarray(per, np.int64),
                "clip_len": np.asarray(L, np.int64), "backbone": np.asarray(self._clips.backbone)}

    @classmethod
    def pooled_compute(cls, states: Sequence[dict[str, np.ndarray]]) -> dict[int, tuple[float, dict]]:
        dim = int(states[0]["pred"].shape[1]) if states else 0
        backbones = sorted({str(s["backbone"]) if "backbone" in s else DEFAULT_BACKBONE for s in states})
        if len(backbones) > 1:
            raise DataError(f"videos of one cell were scored with different VideoMAE backbones {backbones}",
                            fix="re-score the cell with one BENCH_VIDEOMAE_BACKBONE")

        def select(h, n, s):
            L = int(s["clip_len"])
            return select_frames(h // L, n) * L + (L - 1)

        out = frechet_from_states(states, index_key="clip_last_frame", pred_key="pred", gt_key="gt",
                                  horizon_key="horizons", count_key="clips_per_horizon", dim=dim, select=select)
        return {h: (value, {**extra, "backbone": backbones[0]}) for h, (value, extra) in out.items()}
