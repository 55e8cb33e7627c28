"""Training samples from any ``bench.sample.Sample`` (lab or real): windows, memory, augmentations.

One example from a video of at least ``context + target - overlap`` frames (paper: 81 + 77 - 4 = 154;
the spec asks for >= 162 so the start can vary):

1. a context window of 81 frames at a random start ``s``; the target window is the 77 frames starting 4
   frames before the context ends (``s + 77``), so its first latent slice overlaps the context's last;
2. with p 0.2 a *first chunk*: anchors = the reference x K, no motion memory;
3. otherwise motion memory = last latent slice of the encoded context window (``context`` pixels kept for
   encoding) and anchors = K random context frames (p 0.95) or the reference x K;
4. stage 2: with p 0.5 the context anchors get one random affine shared by all of them (as the release: scale
   0.8-1.2 of the sampling grid, shift +-5 % of the side, mid-grey outside the frame; reference anchors are
   left as they are); the target gets one set of pixel degradations for RFM's ``x0_aug``;
5. pose dropout p 0.05: the whole target pose clip becomes a blank (black) canvas.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from bench.errors import DataError
from bench.sample import Sample

from everanimate import degrade
from everanimate.config import DataConfig, DegradeConfig


@dataclass
class TrainingExample:
    sample_id: str
    target_start: int
    target: np.ndarray  # (T, H, W, 3) uint8
    target_degraded: np.ndarray | None  # same, pixel-degraded (stage 2)
    pose: np.ndarray  # (T, H, W, 3)
    face: np.ndarray  # (T, S, S, 3)
    anchors: list[np.ndarray]  # K images, each encoded alone
    context: np.ndarray | None  # (context_frames, H, W, 3); None for a first-chunk example
    clip_image: np.ndarray  # CLIP input: the reference (first chunk) or the context's last frame
    first_chunk: bool
    pose_dropped: bool
    anchor_source: str  # "context" | "reference"
    reference: np.ndarray | None = None  # the canonical reference image (pixel carry-over layout's reference slot)


GREY = 128  # zero in the VAE's [-1, 1] pixel range: the release's padding outside the frame


def random_affine_params(rng: np.random.Generator, scale: tuple[float, float], translate: float) -> tuple[float, float, float]:
    """One draw ``(s, tx, ty)``: ``s ~ U(scale)``, ``tx, ty ~ U(+-translate)`` as fractions of the side."""
    return float(rng.uniform(*scale)), float(rng.uniform(-translate, translate)), float(rng.uniform(-translate, translate))


def apply_affine(image: np.ndarray, params: tuple[float, float, float]) -> np.ndarray:
    """Resample ``image`` as ``affine_grid``/``grid_sample`` (align_corners False) would with
    ``theta = [[s, 0, 2 tx], [0, s, 2 ty]]``: output pixel ``p`` reads the input at ``s (p - c) + c + t``
    (``c`` the centre; ``s > 1`` zooms out), bilinear, mid-grey outside the frame."""
    h, w = image.shape[:2]
    s, tx, ty = params
    m = np.array([[s, 0, (1 - s) * (w / 2 - 0.5) + tx * w], [0, s, (1 - s) * (h / 2 - 0.5) + ty * h]], np.float32)
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(GREY,) * 3)


def check_sample(sample: Sample, cfg: DataConfig, multiple: int | None = None) -> None:
    """Enough frames for one training example; with ``multiple`` (the VAE's spatial factor times the DiT's
    patch, ``bench.models.wan.pixel_multiple``) also a frame size the model can take."""
    if sample.n_frames < cfg.span:
        raise DataError(f"training sample {sample.id} has {sample.n_frames} frames, a training example needs "
                        f"{cfg.span} (context {cfg.context_frames} + target {cfg.target_frames} - overlap "
                        f"{cfg.overlap_frames})", fix="use longer clips (data.n_frames) or shorter windows")
    if multiple and (sample.height % multiple or sample.width % multiple):
        raise DataError(f"training sample {sample.id} is {sample.width}x{sample.height}, not a multiple of {multiple} "
                        "(the VAE's spatial factor times the DiT's patch)",
                        fix=f"crop or resize the training videos to a multiple of {multiple}")


def build_example(sample: Sample, rng: np.random.Generator, cfg: DataConfig, stage: int,
                  degrade_cfg: DegradeConfig = DegradeConfig()) -> TrainingExample:
    check_sample(sample, cfg)
    start = int(rng.integers(0, sample.n_frames - cfg.span + 1))
    target_start = start + cfg.context_frames - cfg.overlap_frames
    stop = target_start + cfg.target_frames
    target = sample.gt(target_start, stop)
    pose = sample.pose(target_start, stop)
    face = sample.face(target_start, stop)
    reference = sample.references()[0]
    k = cfg.n_memory

    first = bool(rng.random() < cfg.first_chunk_p)
    context = None
    if first:
        anchors, source, clip_image = [reference] * k, "reference", reference
    else:
        context = sample.gt(start, start + cfg.context_frames)
        clip_image = context[-1]
        if rng.random() < cfg.anchors_from_context_p:
            idx = np.sort(rng.choice(cfg.context_frames, size=k, replace=cfg.context_frames < k))
            anchors, source = [context[i] for i in idx], "context"
        else:
            anchors, source = [reference] * k, "reference"
    if stage == 2 and source == "context" and rng.random() < cfg.anchor_augment_p:
        params = random_affine_params(rng, cfg.anchor_scale, cfg.anchor_translate)  # one transform per sample
        anchors = [apply_affine(a, params) for a in anchors]
    degraded = degrade.apply(target, degrade.sample_params(rng, degrade_cfg)) if stage == 2 else None
    dropped = bool(rng.random() < cfg.pose_dropout_p)
    if dropped:
        pose = np.zeros_like(pose)
    return TrainingExample(sample.id, target_start, target, degraded, pose, face, anchors, context, clip_image,
                           first, dropped, source, reference)
