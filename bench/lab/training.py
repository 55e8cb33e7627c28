"""Training of the lab base models: a small ``AutoencoderKLWan`` and a small ``WanAnimateTransformer3DModel``
trained the Wan-Animate way. The EverAnimate LoRAs on top are trained by ``python -m everanimate train``.

Commands (each resumable: a checkpoint is written every ``checkpoint_every`` steps)::

    python -m bench lab train vae   # -> models/lab/vae            (AutoencoderKLWan, lab frames)
    python -m bench lab train base  # -> models/lab/wan_animate_base (full WanAnimatePipeline folder)

The base model sees exactly what ``baselines.wan_animate`` feeds it at inference: ``[reference slot | 20
target slots]``; the condition latent is the reference (mask 1) followed by the VAE encoding of
``[carried frame | zeros]`` (mask 1 on the carried frame; zeros and mask 0 for a first segment); the pose
clip's latents are added after patch embedding; the face crops go through the motion encoder and face
adapter. The carried frame is the ground-truth frame at the window start (Wan-Animate trains on clean
carry-over; only inference carries generated pixels). Loss: flow matching (``v = eps - x0``) on the target
slots, timesteps uniform on the shift-5 grid. VAE encodings of the training windows are computed once and
cached (the VAE is frozen), so a step costs one DiT forward and backward.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.errors import ConfigError, DataError, WeightsError
from bench.lab.spec import LAB_VERSION as LAB_MODELS_VERSION  # the renderer the lab models train on

REPO_ROOT = Path(__file__).resolve().parents[2]


def lab_architecture():
    """The lab v2 models' architecture (``WanComponentsConfig``): a VAE with 4x spatial and 4x temporal
    compression (base 16, multipliers 1-2-2, 16 latent channels: 64x64 frames -> 16x16 latents, dense enough
    for the lab's detail; Wan2.2's residual up / down blocks, whose parameter-free shortcuts learned about
    10x faster per step on lab frames than the plain blocks), DiT patches of (1, 4, 4) (16x16 latents -> 4x4 tokens per slice, lab v1's token
    count), 4 layers of 6 x 64 (a 384-wide stream: at 256 wide, the 256 latent values of a patch, the base could
    not carry both the noise and the picture and lost 0.65 dB, benchmarks/results/lab_base_width.md), FFN 1024,
    face crops of 16 x 16 (lab-64's face size)."""
    from bench.models.wan import WanComponentsConfig

    return WanComponentsConfig(num_layers=4, num_heads=6, head_dim=64, ffn_dim=1024, freq_dim=64, text_dim=64,
                               text_tokens=16, inject_face_every=2, motion_encoder_size=16, motion_channels=32,
                               motion_style_dim=64, motion_dim=16, motion_encoder_dim=64, face_hidden_dim=64,
                               face_heads=2, clip_hidden=64, clip_layers=2, clip_heads=2, clip_image_size=32,
                               clip_patch=8, vae_base_dim=16, vae_dim_mult=(1, 2, 2), vae_z_dim=16,
                               vae_temporal_downsample=(True, True), vae_residual=True, patch_size=(1, 4, 4))


def base_architecture(cfg: "BaseTrainConfig"):
    """``lab_architecture()`` with the run's DiT overrides (``cfg.dit``); VAE and CLIP fields cannot change."""
    arch = lab_architecture()
    fixed = sorted(k for k in cfg.dit if k not in _dit_settings(arch))
    if fixed:
        raise ConfigError(f"dit overrides {fixed} are not DiT settings of WanComponentsConfig",
                          fix="override DiT fields only (num_layers, num_heads, head_dim, ffn_dim, patch_size, ...)")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.dit.items()}
    return replace(arch, **values)


def _dit_settings(arch) -> dict:
    """The DiT fields of a ``WanComponentsConfig`` (its VAE and CLIP fields are the lab's own), lists as tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in asdict(arch).items()
            if not k.startswith(("vae_", "clip_"))}


def _check_same_dit(found, wanted, init: str) -> None:
    """Refuse ``init=`` from a base whose DiT differs from the one this run builds, naming the fields."""
    have = _dit_settings(found)
    differ = [f"{k} {have[k]!r} (this run: {v!r})" for k, v in _dit_settings(wanted).items() if have[k] != v]
    if differ:
        raise ConfigError(f"init={init} holds a base with another DiT: {', '.join(differ)}",
                          fix="pass the dit= overrides that base was trained with (its train_log.json), or drop init=")


def _warmup_cosine(opt, warmup: int, steps: int):
    """Linear warmup over ``warmup`` steps, then cosine from 1 to 0.1 of the lr at ``steps``."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * (
        0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(s, steps) / max(steps, 1)))))


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class VaeTrainConfig:
    out: str = "models/lab/vae"
    dataset: str = "lab-train"
    cache_root: str = ".cache/bench"
    clips: int = 256
    # phases of (clip frames, batch, steps, lr, crop side), each with a fresh AdamW and a warmup + cosine
    # schedule: short clips on random 32x32 crops first (the VAE is convolutional: 4x the samples per second),
    # then whole 64x64 frames of longer clips so the causal caches and the middle attention are trained; the
    # last phase on whole 77-frame chunks (20 latent slices), because the causal recurrence is only stable over
    # lengths it was trained on (after 13-frame clips a 77-frame chunk fell from 23 dB to 10.6 dB after frame 20)
    phases: tuple[tuple[int, int, int, float, int], ...] = ((5, 16, 1200, 2e-3, 32), (13, 4, 600, 1e-3, 64),
                                                            (77, 1, 200, 4e-4, 64))
    kl_weight: float = 1e-7  # the latents are used as posterior modes (argmax), as the Wan pipeline encodes
    seed: int = 0
    checkpoint_every: int = 100
    eval_every: int = 300  # held-out 77-frame PSNR logged along the way
    stats_frames: int = 512  # frames encoded to standardise the latents (latents_mean / latents_std)
    init: str = ""  # a trained lab VAE folder to continue from (e.g. a further phase on whole 77-frame chunks)
    # train only the decoder (and post_quant_conv) of ``init``: the encoder and the latent standardisation stay
    # bit-identical, so the latents every lab model was trained on do not change
    decoder_only: bool = False
    loss: str = "l1"  # reconstruction loss: "l1", or "mse" (what PSNR measures)


@dataclass(frozen=True)
class BaseTrainConfig:
    out: str = "models/lab/wan_animate_base"
    vae: str = "models/lab/vae"
    dataset: str = "lab-train"
    cache_root: str = ".cache/bench"
    clips: int = 256
    windows_per_clip: int = 4
    chunk_frames: int = 77  # lab segments as Wan-Animate's: 77 frames -> 20 latent slices
    first_segment_p: float = 0.3  # no carried frame (segment 0 of a rollout; 0.2 left its 1-frame first slice as noise)
    # windows with a carried frame see a blurred, colour-shifted reference with this probability, so the exact
    # room and the current look must come from the carried frame (Wan-Animate continues from its carried
    # frames; a base that copies the room from the reference slot cannot show carry-over drift)
    reference_degrade_p: float = 0.5
    pose_dropout_p: float = 0.05
    batch_size: int = 4
    steps: int = 1400
    lr: float = 6e-4
    warmup: int = 50
    shift: float = 5.0
    seed: int = 0
    checkpoint_every: int = 100
    encode_batch: int = 8
    init: str = ""  # a trained lab base folder whose transformer this run continues from (same architecture)
    # loss weight of the latent cells the person covers (the room is ~88 % of lab-64 pixels and is mostly copied
    # from the reference or carried frame, so an unweighted loss spends little of the model on the person)
    person_loss_weight: float = 1.0
    # WanComponentsConfig fields of the DiT to change from lab_architecture(), e.g. {"num_heads": 8}
    dit: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------------------
def _train_samples(dataset: str, clips: int, cache_root: str, progress: bool):
    if dataset != "lab-train":
        raise ConfigError(f"lab models train on the lab train split, got dataset={dataset!r}", fix="use lab-train")
    from bench.datasets import _render_lab
    from bench.lab.splits import TRAIN_FRAMES, train_specs

    specs = train_specs(n_clips=clips, size="lab-64", n_frames=TRAIN_FRAMES, version=LAB_MODELS_VERSION)
    return _render_lab([(sid, spec, None) for sid, spec in specs], Path(cache_root), progress)


def frames_to_pixels(frames: np.ndarray) -> torch.Tensor:
    """``(T, H, W, 3) uint8`` -> ``(3, T, H, W)`` float32 in [-1, 1] (no resize)."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float() / 127.5 - 1.0


# --------------------------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------------------------
def _save_checkpoint(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, digest: str) -> dict | None:
    if not path.is_file():
        return None
    blob = torch.load(path, weights_only=False)
    if blob.get("digest") != digest:
        raise ConfigError(f"{path} was written by a different training config",
                          fix=f"train with the same settings to resume, or delete {path} to start over")
    return blob


# --------------------------------------------------------------------------------------------------------------
# VAE
# --------------------------------------------------------------------------------------------------------------
def build_vae(arch=None, latents_mean=None, latents_std=None):
    from bench.models.wan import build_vae as build

    return build(arch or lab_architecture(), latents_mean, latents_std)


HELD_OUT_CHECK_CLIPS = 4  # the running and the final held-out check use the same clips, so they compare


@torch.no_grad()
def _held_out_psnr(vae, clips: np.ndarray) -> float:
    """PSNR (dB, float64 over [0, 255] after rounding) of ``vae`` reconstructing the first 77 frames of each clip."""
    vae.eval()
    held = torch.stack([frames_to_pixels(c[:77]) for c in clips])
    recon = vae.decode(vae.encode(held).latent_dist.mode()).sample
    a = ((recon.clamp(-1, 1) + 1) * 127.5).round().double()
    b = ((held + 1) * 127.5).round().double()
    return round(float(10 * np.log10(255.0 ** 2 / max((a - b).square().mean().item(), 1e-12))), 3)


@torch.no_grad()
def _latent_stats(vae, frames: np.ndarray, rng: np.random.Generator, n_frames: int) -> tuple[list, list]:
    """Per-channel mean / std of posterior modes over random 21-frame windows of the train clips (the
    standardisation stored as ``latents_mean`` / ``latents_std``)."""
    n_clips, length = frames.shape[:2]
    pick = rng.integers(n_clips, size=max(2, n_frames // 21))
    starts = rng.integers(length - 21 + 1, size=len(pick))
    lat = []
    for chunk in np.array_split(np.arange(len(pick)), max(1, len(pick) // 8)):
        batch = torch.stack([frames_to_pixels(frames[pick[i], starts[i]:starts[i] + 21]) for i in chunk])
        lat.append(vae.encode(batch).latent_dist.mode())
    lat = torch.cat(lat)
    return lat.mean(dim=(0, 2, 3, 4)).tolist(), lat.std(dim=(0, 2, 3, 4)).clamp(min=1e-3).tolist()


def train_vae(cfg: VaeTrainConfig = VaeTrainConfig(), progress: bool = True) -> dict:
    """Train the lab ``AutoencoderKLWan`` (L1 or MSE + tiny KL) and standardise its latents, or (``decoder_only``)
    only the decoder of ``cfg.init`` with its latents kept; writes ``cfg.out``."""
    from tqdm.auto import tqdm

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    def digest_upto(n_phases: int) -> str:
        """The settings a checkpoint depends on: everything but the phases not yet started, so a checkpoint at a
        phase boundary continues under a config that changes or adds only later phases."""
        defaults = {"init": "", "decoder_only": False, "loss": "l1"}  # left out at their defaults: older digests hold
        settings = {k: v for k, v in asdict(cfg).items() if k not in defaults or v != defaults[k]}
        return _digest(settings | {"phases": [list(p) for p in cfg.phases[:n_phases]],
                                   "arch": asdict(lab_architecture())})

    if cfg.loss not in ("l1", "mse"):
        raise ConfigError(f"lab VAE loss {cfg.loss!r} unknown", fix="use loss=l1 or loss=mse")
    if cfg.decoder_only and not cfg.init:
        raise ConfigError("decoder_only=true trains the decoder of an existing lab VAE, but no init= was given",
                          fix="add --set init=models/lab/vae")
    digest = digest_upto(len(cfg.phases))
    samples = _train_samples(cfg.dataset, cfg.clips, cfg.cache_root, progress)
    frames = np.stack([s.gt(0, s.n_frames) for s in samples])  # (N, T, H, W, 3) uint8
    held_out = frames[-8:]
    frames = frames[:-8]
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    vae = build_vae()
    if cfg.init:
        from diffusers import AutoencoderKLWan

        if not (Path(cfg.init) / "config.json").is_file():
            raise WeightsError(f"no lab VAE to continue from at {cfg.init}", fix="train one first, or drop init=")
        start = AutoencoderKLWan.from_pretrained(cfg.init)
        vae.load_state_dict(start.state_dict())
        init_stats = (list(start.config.latents_mean), list(start.config.latents_std))
    trained = (list(vae.post_quant_conv.parameters()) + list(vae.decoder.parameters()) if cfg.decoder_only
               else list(vae.parameters()))
    vae.requires_grad_(False)
    for p in trained:
        p.requires_grad_(True)
    from bench.models.wan import onednn_conv3d

    onednn_conv3d(vae, training=True)
    bounds = np.cumsum([0] + [int(p[2]) for p in cfg.phases])
    total = int(bounds[-1])

    def phase_of(at: int) -> int:
        return int(np.searchsorted(bounds, at, side="right") - 1)

    def optimizer_for(phase: int):
        steps, lr = cfg.phases[phase][2:4]
        warm = 50 if phase == 0 else 20
        opt = torch.optim.AdamW(trained, lr=lr, weight_decay=0.0)
        return opt, _warmup_cosine(opt, warm, steps)

    step, losses, evals = 0, [], []
    ckpt_path = out / "checkpoint.pt"
    blob = None
    if ckpt_path.is_file():
        saved = torch.load(ckpt_path, weights_only=False)
        blob = _load_checkpoint(ckpt_path, digest_upto(int(saved.get("phases_used", len(cfg.phases)))))
    if blob:
        step, losses, evals = blob["step"], blob["losses"], blob.get("evals", [])
        vae.load_state_dict(blob["model"])
    opt, sched = optimizer_for(phase_of(step))
    if blob:
        if blob.get("optimizer") is not None:
            opt.load_state_dict(blob["optimizer"])
            sched.load_state_dict(blob["scheduler"])
        rng.bit_generator.state = blob["numpy_rng"]
        torch.set_rng_state(blob["torch_rng"])
    vae.train()
    bar = tqdm(total=total, initial=step, desc="lab VAE", disable=not progress)
    n_clips, n_frames = frames.shape[:2]
    while step < total:
        phase = phase_of(step)
        if step == bounds[phase] and step > 0:
            opt, sched = optimizer_for(phase)
        frames_per_clip, batch_size, crop = (int(cfg.phases[phase][k]) for k in (0, 1, 4))
        idx = rng.integers(n_clips, size=batch_size)
        starts = rng.integers(n_frames - frames_per_clip + 1, size=batch_size)
        ys = rng.integers(frames.shape[2] - crop + 1, size=batch_size)
        xs = rng.integers(frames.shape[3] - crop + 1, size=batch_size)
        batch = torch.stack([frames_to_pixels(frames[i, s:s + frames_per_clip, y:y + crop, x:x + crop])
                             for i, s, y, x in zip(idx, starts, ys, xs)])
        if rng.random() < 0.5:
            batch = batch.flip(-1)
        with torch.set_grad_enabled(not cfg.decoder_only):
            posterior = vae.encode(batch).latent_dist
        recon = vae.decode(posterior.mode()).sample
        rec = (recon - batch).abs().mean() if cfg.loss == "l1" else (recon - batch).square().mean()
        loss = rec if cfg.decoder_only else rec + cfg.kl_weight * posterior.kl().mean() / batch[0].numel()
        if not torch.isfinite(loss):
            raise DataError(f"lab VAE step {step}: loss is {loss.item()}", fix="lower the lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        sched.step()
        step += 1
        losses.append(float(rec.item()))
        bar.update(1)
        bar.set_postfix({cfg.loss: f"{np.mean(losses[-20:]):.4f}", "phase": phase + 1,
                         "psnr": f"{evals[-1][1]:.2f}" if evals else "-"})
        if step % cfg.eval_every == 0 or step == total:
            evals.append((step, _held_out_psnr(vae, held_out[:HELD_OUT_CHECK_CLIPS])))
            vae.train()
        boundary = step in bounds
        if (step % cfg.checkpoint_every == 0 or boundary) and step < total:
            used = phase_of(step) + (0 if boundary else 1)  # a boundary checkpoint has not started the next phase
            _save_checkpoint(ckpt_path, {"digest": digest_upto(used), "phases_used": used, "model": vae.state_dict(),
                                         "optimizer": None if boundary else opt.state_dict(),
                                         "scheduler": None if boundary else sched.state_dict(),
                                         "step": step, "losses": losses, "evals": evals,
                                         "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()})
    bar.close()
    vae.eval().requires_grad_(False)

    mean, std = init_stats if cfg.decoder_only else _latent_stats(vae, frames, rng, cfg.stats_frames)
    with torch.no_grad():
        final = build_vae(latents_mean=mean, latents_std=std)
        final.load_state_dict(vae.state_dict())
        final.eval().requires_grad_(False)
    psnr = _held_out_psnr(final, held_out[:HELD_OUT_CHECK_CLIPS])
    final.save_pretrained(out)
    log = {"config": asdict(cfg), "digest": digest, "steps": step,
           f"{cfg.loss}_last100": float(np.mean(losses[-100:])),
           "held_out_psnr_db_77_frames": round(float(psnr), 2), "held_out_psnr_by_step": evals,
           "lab_version": LAB_MODELS_VERSION, "latents_mean": mean, "latents_std": std,
           "params": int(sum(p.numel() for p in final.parameters()))}
    (out / "train_log.json").write_text(json.dumps(log | {"losses": losses}, indent=1))
    ckpt_path.unlink(missing_ok=True)
    print(f"lab VAE: held-out reconstruction PSNR {psnr:.2f} dB (77-frame clips) after {step} steps -> {out}")
    return log


# --------------------------------------------------------------------------------------------------------------
# base transformer (Wan-Animate way)
# --------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def encode_windows(cfg: BaseTrainConfig, components, samples, progress: bool = True) -> dict[str, torch.Tensor]:
    """VAE encodings of every training window, computed once: target and pose latents, the carry-over
    condition, the reference slot, CLIP tokens; face crops as uint8."""
    from tqdm.auto import tqdm

    from bench.models import wan

    vae, L = components.vae, cfg.chunk_frames
    rng = np.random.default_rng(cfg.seed + 1)
    jobs = []
    for ci, s in enumerate(samples):
        if s.n_frames < L + 1:
            raise DataError(f"{s.id} has {s.n_frames} frames, a training window needs {L + 1}", fix="render longer clips")
        for _ in range(cfg.windows_per_clip):
            jobs.append((ci, int(rng.integers(0, s.n_frames - L + 1))))
    h, w = samples[0].height, samples[0].width
    refs, degraded, clips = [], [], []
    for i, s in enumerate(samples):
        ref = s.references()[0]
        refs.append(wan.reference_condition(vae, wan.reference_pixels(components, ref, h, w)))
        soft = degrade_reference(ref, np.random.default_rng([cfg.seed, i]))
        degraded.append(wan.reference_condition(vae, wan.reference_pixels(components, soft, h, w)))
        clips.append(wan.clip_image_features(components, ref))
    no_carry = wan.carry_condition(vae, None, L, h, w, 1, known=False)
    x0, pose, carry, face = [], [], [], []
    bar = tqdm(total=len(jobs), desc="encode windows", disable=not progress)
    for k in range(0, len(jobs), cfg.encode_batch):
        part = jobs[k:k + cfg.encode_batch]
        gt = torch.stack([frames_to_pixels(samples[ci].gt(st, st + L)) for ci, st in part])
        x0.append(wan.vae_encode(vae, gt))
        poses = torch.stack([frames_to_pixels(samples[ci].pose(st, st + L)) for ci, st in part])
        pose.append(wan.vae_encode(vae, poses))
        carried = torch.cat([gt[:, :, :1], torch.zeros_like(gt[:, :, 1:])], dim=2)
        latents = wan.vae_encode(vae, carried)
        mask = wan.i2v_mask(len(part), *latents.shape[2:], 1, latents.dtype, latents.device,
                            wan.vae_temporal_factor(vae))
        carry.append(torch.cat([mask, latents], dim=1))
        face.append(torch.from_numpy(np.stack([samples[ci].face(st, st + L) for ci, st in part])))
        bar.update(len(part))
    bar.close()
    return {"clip_index": torch.tensor([ci for ci, _ in jobs]), "start": torch.tensor([st for _, st in jobs]),
            "x0": torch.cat(x0), "pose": torch.cat(pose), "carry": torch.cat(carry), "face": torch.cat(face),
            "no_carry": no_carry, "ref": torch.cat(refs), "ref_degraded": torch.cat(degraded),
            "clip": torch.cat(clips)}


def person_cover(samples, data: dict, chunk_frames: int, temporal: int, spatial: int,
                 progress: bool = True) -> torch.Tensor:
    """Share of each window's latent cells covered by the GT person mask, ``(N, T', h, w)`` float32: latent
    slice 0 is frame 0, slice k frames ``temporal*(k-1)+1 .. temporal*k``; a cell is ``spatial x spatial``
    pixels."""
    from tqdm.auto import tqdm

    out = []
    for ci, st in tqdm(list(zip(data["clip_index"].tolist(), data["start"].tolist())), desc="person masks",
                       disable=not progress):
        masks = samples[ci].masks(st, st + chunk_frames)
        if masks is None:
            raise DataError(f"{samples[ci].id} has no person masks", fix="re-render the lab train split")
        m = torch.from_numpy(np.ascontiguousarray(masks)).float()[None, None]  # (1, 1, T, H, W)
        first = F.avg_pool3d(m[:, :, :1], (1, spatial, spatial))
        rest = F.avg_pool3d(m[:, :, 1:], (temporal, spatial, spatial))
        out.append(torch.cat([first, rest], dim=2)[0, 0])
    return torch.stack(out)


def degrade_reference(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The reference as a blurred (4x down, bilinear up), colour-shifted copy (per-channel gain 0.8-1.2)."""
    import cv2

    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    soft = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    return np.clip(soft * rng.uniform(0.8, 1.2, 3)[None, None], 0, 255).round().astype(np.uint8)


def base_batch(data: dict, idx: np.ndarray, rng: np.random.Generator, gen: torch.Generator, cfg: BaseTrainConfig):
    """One training batch: model inputs, target velocity and the conditioning of ``idx`` windows."""
    from bench.models.flow_matching import noised, sample_sigmas

    b = len(idx)
    ci = data["clip_index"][idx]
    first = torch.from_numpy(rng.random(b) < cfg.first_segment_p)
    soft = torch.from_numpy(rng.random(b) < cfg.reference_degrade_p) & ~first
    ref = torch.where(soft[:, None, None, None, None], data["ref_degraded"][ci], data["ref"][ci])  # (B, 4 + z, 1, h, w)
    carry = data["carry"][idx].clone()
    carry[first] = data["no_carry"].expand(int(first.sum()), -1, -1, -1, -1)
    condition = torch.cat([ref, carry], dim=2)
    x0 = torch.cat([ref[:, -data["x0"].shape[1]:], data["x0"][idx]], dim=2)
    eps = torch.randn(x0.shape, generator=gen)
    sigma = sample_sigmas(b, gen, shift=cfg.shift)
    noisy = noised(x0, eps, sigma)
    pose = data["pose"][idx].clone()
    dropped = torch.from_numpy(rng.random(b) < cfg.pose_dropout_p)
    pose[dropped] = data["blank_pose"]
    face = data["face"][idx].permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0
    inputs = torch.cat([noisy, condition], dim=1)
    return inputs, sigma * 1000.0, data["clip"][ci], pose, face, (eps - x0)[:, :, 1:]


def train_base(cfg: BaseTrainConfig = BaseTrainConfig(), progress: bool = True) -> dict:
    """Train the lab ``WanAnimateTransformer3DModel`` on cached encodings; writes a full components folder."""
    from tqdm.auto import tqdm

    from bench.models import wan

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    arch = base_architecture(cfg)
    vae_dir = Path(cfg.vae)
    if not (vae_dir / "config.json").is_file():
        raise WeightsError(f"no trained lab VAE at {vae_dir}", fix="train it first: python -m bench lab train vae")
    from diffusers import AutoencoderKLWan

    vae = AutoencoderKLWan.from_pretrained(vae_dir).eval().requires_grad_(False)
    vae_digest = wan.fingerprint(vae_dir)
    defaults = {"init": "", "dit": {}, "person_loss_weight": 1.0}  # left out at their defaults: older digests hold
    settings = {k: v for k, v in asdict(cfg).items() if k not in defaults or v != defaults[k]}
    if cfg.person_loss_weight < 1.0:
        raise ConfigError(f"person_loss_weight must be >= 1, got {cfg.person_loss_weight}",
                          fix="use 1 (unweighted) or more")
    init_digest, prior_steps = None, None
    comps = wan.tiny_components(seed=cfg.seed, config=arch)
    comps.vae = vae
    if cfg.init:
        if not (Path(cfg.init) / "model_index.json").is_file():
            raise WeightsError(f"no lab base to continue from at {cfg.init}", fix="train one first, or drop init=")
        init_digest = wan.fingerprint(cfg.init)
        start = wan.load_components(cfg.init, dtype=torch.float32, method="lab base")
        _check_same_dit(start.config, arch, cfg.init)
        comps.transformer.load_state_dict(start.transformer.state_dict())
        init_log = Path(cfg.init) / "train_log.json"
        init_log = json.loads(init_log.read_text()) if init_log.is_file() else {}
        prior_steps = init_log.get("steps_total", init_log.get("steps"))
    # the renderer version keys the training data (lab/3 redrew the pose maps of lab/2's frames)
    digest = _digest(settings | {"arch": asdict(arch), "vae": vae_digest, "init": init_digest,
                                 "lab_version": LAB_MODELS_VERSION})
    samples = _train_samples(cfg.dataset, cfg.clips, cfg.cache_root, progress)

    window_settings = {k: getattr(cfg, k) for k in ("dataset", "clips", "windows_per_clip", "chunk_frames", "seed")}
    window_settings["lab_version"] = LAB_MODELS_VERSION  # the pose maps differ between versions
    clip_settings = {k: v for k, v in asdict(arch).items() if k.startswith("clip_")}  # the window encodings' CLIP
    # keyed by the encoder alone: a decoder-only fine-tune of the VAE leaves every encoding bit-identical
    encoder_digest = wan.vae_encoder_fingerprint(vae)
    cache_path = Path(cfg.cache_root) / "lab_base_windows" / f"{_digest([window_settings, encoder_digest, clip_settings])}.pt"
    if cache_path.is_file():
        data = torch.load(cache_path, weights_only=True)
    else:
        data = encode_windows(cfg, comps, samples, progress)
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        _save_checkpoint(cache_path, data)
    with torch.no_grad():
        blank = torch.zeros((1, 3, cfg.chunk_frames, samples[0].height, samples[0].width)) - 1.0
        data["blank_pose"] = wan.vae_encode(vae, blank)[0]
    if cfg.person_loss_weight != 1.0:
        data["person"] = person_cover(samples, data, cfg.chunk_frames, wan.vae_temporal_factor(vae),
                                      wan.vae_spatial_factor(vae), progress)
    prompt = wan.encode_prompt(comps)

    tr = comps.transformer
    tr.train().requires_grad_(True)
    params = [p for p in tr.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.99))
    sched = _warmup_cosine(opt, cfg.warmup, cfg.steps)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, losses = 0, []
    ckpt_path = out.parent / f".{out.name}.checkpoint.pt"
    blob = _load_checkpoint(ckpt_path, digest)
    if blob:
        tr.load_state_dict(blob["model"])
        opt.load_state_dict(blob["optimizer"])
        sched.load_state_dict(blob["scheduler"])
        step, losses = blob["step"], blob["losses"]
        rng.bit_generator.state = blob["numpy_rng"]
        gen.set_state(blob["torch_rng"])
    n = len(data["x0"])
    bar = tqdm(total=cfg.steps, initial=step, desc="lab base DiT", disable=not progress)
    t0 = time.time()
    while step < cfg.steps:
        idx = rng.integers(n, size=cfg.batch_size)
        inputs, timestep, clip, pose, face, target = base_batch(data, idx, rng, gen, cfg)
        pred = tr(hidden_states=inputs, timestep=timestep, encoder_hidden_states=prompt.expand(len(idx), -1, -1),
                  encoder_hidden_states_image=clip, pose_hidden_states=pose, face_pixel_values=face,
                  return_dict=False)[0]
        loss = (pred[:, :, 1:].float() - target).square()
        if "person" in data:
            weight = 1.0 + (cfg.person_loss_weight - 1.0) * data["person"][idx][:, None]
            loss = (loss * weight).mean() / weight.mean()
        else:
            loss = loss.mean()
        if not torch.isfinite(loss):
            raise DataError(f"lab base step {step}: loss is {loss.item()}", fix="lower the lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        step += 1
        losses.append(float(loss.item()))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        if step % cfg.checkpoint_every == 0 and step < cfg.steps:
            _save_checkpoint(ckpt_path, {"digest": digest, "model": tr.state_dict(), "optimizer": opt.state_dict(),
                                         "scheduler": sched.state_dict(), "step": step, "losses": losses,
                                         "numpy_rng": rng.bit_generator.state, "torch_rng": gen.get_state()})
    bar.close()
    tr.eval().requires_grad_(False)
    to_bf16_storage(tr)
    comps.trained = True
    steps_note = f"{prior_steps} + {step} steps from {cfg.init}" if cfg.init else f"{step} steps"
    comps.source = f"lab base (python -m bench lab train base; {steps_note}, digest {digest})"
    wan.save_components(comps, out)
    log = {"config": asdict(cfg), "digest": digest, "vae_digest": vae_digest, "steps": step,
           "loss_first100": float(np.mean(losses[:100])), "loss_last100": float(np.mean(losses[-100:])),
           "seconds_this_run": round(time.time() - t0, 1), "windows": n,
           "transformer_params": int(sum(p.numel() for p in tr.parameters()))}
    if cfg.init:
        log |= {"init": cfg.init, "init_digest": init_digest,
                "steps_total": (prior_steps or 0) + step if prior_steps is not None else None,
                "init_log": {k: v for k, v in init_log.items() if k != "losses"}}  # the chain so far
    (out / "train_log.json").write_text(json.dumps(log | {"losses": losses}, indent=1))
    ckpt_path.unlink(missing_ok=True)
    print(f"lab base: loss {log['loss_first100']:.4f} -> {log['loss_last100']:.4f} after {step} steps -> {out}")
    return log


def to_bf16_storage(model: torch.nn.Module) -> None:
    """Cast ``model`` to bf16 in place except its ``_keep_in_fp32_modules`` (what diffusers' ``torch_dtype``
    loading does), so the shipped file is half the size. The lab loads it back in float32 (exactly, from
    bf16); rounding the trained float32 weights to bf16 did not move the lab's 10 s PSNR (21.5 dB either way
    on two test subjects)."""
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or ())
    for name, param in model.named_parameters():
        if param.is_floating_point() and not keep & set(name.split(".")):
            param.data = param.data.to(torch.bfloat16)


def config_with(cls, overrides: list[str]):
    """``cls()`` with ``key=value`` overrides (JSON values, strings as is)."""
    kwargs = {}
    names = set(cls.__dataclass_fields__)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value", fix="write e.g. --set steps=200")
        key, value = item.split("=", 1)
        if key not in names:
            raise ConfigError(f"unknown setting {key!r}", fix=f"known: {', '.join(sorted(names))}")
        try:
            kwargs[key] = json.loads(value)
        except ValueError:
            kwargs[key] = value
    return replace(cls(), **kwargs)
