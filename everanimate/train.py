"""Two-stage LoRA training on the frozen Wan-Animate DiT, driven by ``accelerate``.

Stage 1 (memory adaptation): PLP memory layout, plain flow matching. Stage 2 (anti-drift): RFM target on
pixel-degraded targets + anchor augmentation, starting from stage 1's LoRA. One step:

1. build examples from videos (``data.build_example``) and encode them with the frozen VAE / encoders;
2. draw ``sigma`` from the 1000-step shift-5 grid and one ``eps``; stage 2: the RFM gate decides per sample
   whether ``x0_aug`` (VAE latent of the degraded target) replaces ``x0`` in the model input; optionally
   (``data.corrupt_motion_p``, off as released) the motion-memory slot of the conditioning is noised at ``sigma``;
3. target ``u = (eps - x0) + alpha(t)(1 - sigma)(x0_aug - x0)`` (anchor slots: never perturbed, so plain FM);
   loss = bell-weighted MSE on all ``K + T`` slots (the release; ``loss_slots="target"``: the T targets only).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from bench.errors import ConfigError, DataError
from bench.sample import Sample

from everanimate import rfm
from everanimate.config import TrainConfig
from everanimate.data import TrainingExample, build_example, check_sample
from everanimate.memory import condition_latents, model_input, transformer_forward


class EverAnimateDiT(torch.nn.Module):
    """The transformer with EverAnimate's ``K + T`` forward as its ``forward`` (so FSDP/DeepSpeed wrap it)."""

    def __init__(self, transformer, n_memory: int):
        super().__init__()
        self.transformer = transformer
        self.n_memory = n_memory

    def forward(self, hidden_states, timestep, text_embeds, clip_embeds, pose_latents, face_features):
        return transformer_forward(self.transformer, hidden_states, timestep, text_embeds, clip_embeds, pose_latents,
                                   face_features, self.n_memory)


@dataclass
class Batch:
    inputs: torch.Tensor  # (B, 2C + 4, K + T, h, w)
    timestep: torch.Tensor  # (B,)
    text: torch.Tensor
    clip: torch.Tensor
    pose: torch.Tensor
    face: torch.Tensor
    target: torch.Tensor  # u on the supervised slots: (B, C, K + T, h, w), or (B, C, T, h, w) with loss_slots="target"
    sigma: torch.Tensor  # (B,)
    perturbed: torch.Tensor  # (B,) bool
    motion_corrupted: torch.Tensor | None = None  # (B,) bool: the motion slot was noised (stage-1 perturbation)


def corrupt_motion(motion: torch.Tensor, sigma: torch.Tensor | float, noise: torch.Tensor,
                   std: float = 1.0) -> torch.Tensor:
    """The motion-memory perturbation: ``(1 - sigma) motion + sigma * std * noise`` at the training sigma."""
    s = torch.as_tensor(sigma, dtype=motion.dtype, device=motion.device)
    return (1 - s) * motion + s * std * noise.to(motion)


@torch.no_grad()
def prepare_batch(components, examples: Sequence[TrainingExample], generator: torch.Generator, config: TrainConfig,
                  device: str | torch.device = "cpu") -> Batch:
    from bench.models import wan

    vae, tr = components.vae, components.transformer
    k = config.memory_slots
    b = len(examples)
    sigma = rfm.sample_sigmas(b, generator, config.rfm)
    gate = rfm.perturb_gate(sigma, generator, config.rfm) if config.use_rfm else torch.zeros(b, dtype=torch.bool)

    def encode(frames):
        h, w = frames.shape[1:3]
        return wan.vae_encode(vae, wan.video_pixels(frames, h, w).to(device)).float()

    conds, x0s, x0_augs, poses, faces, clips, memories = [], [], [], [], [], [], []
    for i, ex in enumerate(examples):
        x0 = encode(ex.target)
        aug = encode(ex.target_degraded) if (gate[i] and ex.target_degraded is not None) else x0
        if config.memory == "plp":
            anchors = torch.cat([encode(a[None]) for a in ex.anchors], dim=2)
            motion = None if ex.context is None else encode(ex.context)[:, :, -1:]
            memories.append((anchors, motion))  # conditioning built after eps (the motion perturbation may share it)
            conds.append(None)
            front = anchors  # anchor slots are never perturbed
            clip_image = ex.clip_image
        else:  # Wan-Animate layout: reference slot + the decoded carry-over frame re-encoded with zeros after it
            h, w = ex.target.shape[1:3]
            reference = ex.reference
            ref_cond = wan.reference_condition(vae, wan.reference_pixels(components, reference, h, w).to(device))
            carry = None if ex.first_chunk else wan.video_pixels(ex.target[:1], h, w).to(device)
            carry_cond = wan.carry_condition(vae, carry, len(ex.target), h, w, 1, known=not ex.first_chunk)
            conds.append(torch.cat([ref_cond, carry_cond], dim=2).float())
            memories.append(None)
            front = ref_cond[:, 4:].float()
            clip_image = reference
        x0s.append(torch.cat([front, x0], dim=2))
        x0_augs.append(torch.cat([front, aug], dim=2))
        poses.append(encode(ex.pose))
        size = components.motion_encoder_size
        faces.append(wan.face_motion_features(tr, wan.video_pixels(ex.face, size, size).to(device, tr.dtype)).float())
        clips.append(wan.clip_image_features(components, clip_image, device=device).float())
    x0, x0_aug = torch.cat(x0s), torch.cat(x0_augs)
    eps = torch.randn(x0.shape, generator=generator).to(device)
    sigma_d = sigma.to(device)
    corrupted = torch.zeros(b, dtype=torch.bool)
    d = config.data
    for i, memory in enumerate(memories):  # PLP: [anchors | motion (perturbed?) | null pad]
        if memory is None:
            continue
        anchors, motion = memory
        if motion is not None and d.corrupt_motion_p > 0 and float(torch.rand((), generator=generator)) < d.corrupt_motion_p:
            noise = (eps[i:i + 1, :, :1] if d.corrupt_motion_shared_noise
                     else torch.randn(motion.shape, generator=generator).to(device))
            motion = corrupt_motion(motion, sigma_d[i], noise, d.corrupt_motion_std)
            corrupted[i] = True
        conds[i] = condition_latents(anchors, motion, d.n_target)
    noisy = rfm.noised(x0_aug, eps, sigma_d)
    target = rfm.rfm_target(x0, x0_aug, eps, sigma_d, config.rfm)
    if config.loss_slots == "target":
        target = target[:, :, k:]
    text = wan.encode_prompt(components, device=device).float().expand(b, -1, -1)
    return Batch(model_input(noisy, torch.cat(conds)), sigma_d * 1000.0, text, torch.cat(clips), torch.cat(poses),
                 torch.cat(faces), target, sigma_d, gate, corrupted)


def batch_loss(model: torch.nn.Module, batch: Batch, config: TrainConfig) -> torch.Tensor:
    """Bell-weighted MSE on every slot (``loss_slots="all"``, the release) or on the T targets only."""
    pred = model(batch.inputs, batch.timestep, batch.text, batch.clip, batch.pose, batch.face)
    if config.loss_slots == "target":
        pred = pred[:, :, config.memory_slots:]
    return rfm.weighted_mse(pred, batch.target, batch.sigma, config.rfm)


def build_components(config: TrainConfig):
    from bench.models import wan

    if config.base.startswith("tiny"):
        cfg = wan.WanComponentsConfig()
        if config.base_layers:
            cfg = wan.WanComponentsConfig(num_layers=config.base_layers, inject_face_every=config.base_layers)
        return wan.tiny_components(seed=config.base_seed, config=cfg)
    dtype = torch.bfloat16 if config.mixed_precision == "bf16" else torch.float32
    return wan.load_components(config.base, dtype=dtype, method="everanimate train")


def base_fingerprint(config: TrainConfig) -> str:
    """What the LoRA was trained on: the base folder's fingerprint, or the tiny random build's identity."""
    if config.base.startswith("tiny"):
        return f"{config.base}:seed={config.base_seed}:layers={config.base_layers}"
    from bench.models import wan

    return wan.fingerprint(config.base)


def attach_lora(transformer, config: TrainConfig) -> dict:
    from bench.models.lora import add_lora, load_lora

    if config.init_lora:  # stage 2 from stage 1, or either stage continued from an earlier LoRA
        return {"init": config.init_lora, **load_lora(transformer, config.init_lora, trainable=True)}
    layers = add_lora(transformer, config.lora)
    return {"init": "zeros (B = 0)", "rank": config.lora.rank, "alpha": config.lora.lora_alpha, "layers": len(layers)}


def load_samples(config: TrainConfig) -> list[Sample]:
    d = config.data
    if d.dataset.startswith("folders:"):
        from bench.sample import FileSample

        root = Path(d.dataset.split(":", 1)[1])
        folders = sorted(p for p in root.iterdir() if (p / "sample.json").is_file()) if root.is_dir() else []
        if not folders:
            raise DataError(f"no sample folders (with sample.json) under {root}", fix="point data.dataset at them")
        return [FileSample.from_folder(p) for p in folders]
    from bench.datasets import load_dataset

    return load_dataset(d.dataset, n_frames=d.n_frames, cache_root=d.cache_root)


def resume_identity(config: TrainConfig, samples: Sequence[Sample]) -> dict[str, str]:
    """What a checkpoint must share with this run to be resumed: the config, the base weights, the initial LoRA
    and the training data (every sample's content hash: a re-rendered lab split or new pose maps change it)."""
    import hashlib

    from bench.sample import sha256_file

    data = hashlib.sha256("\n".join(sorted(s.content_hash for s in samples)).encode()).hexdigest()[:16]
    return {"config_digest": config.digest(), "base_fingerprint": base_fingerprint(config),
            "init_lora": sha256_file(config.init_lora)[:16] if config.init_lora else "", "data": data}


def _latest_checkpoint(out: Path) -> Path | None:
    ckpts = sorted((out / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    return ckpts[-1] if ckpts else None


def train(config: TrainConfig, samples: Sequence[Sample] | None = None, resume: bool = True,
          progress: bool = True, max_steps: int | None = None) -> dict[str, Any]:
    """Run (or resume) one stage; writes ``output_dir/lora.safetensors`` and returns losses and paths.
    ``max_steps`` stops early (tests simulate an interruption with it)."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from bench.models import wan
    from bench.models.lora import lora_parameters, save_lora

    # 1. inputs checked before any model is built
    samples = list(samples) if samples is not None else load_samples(config)
    if not samples:
        raise DataError("no training samples", fix="check data.dataset")
    for s in samples:
        check_sample(s, config.data)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    # 2. models: frozen base + LoRA, wrapped for accelerate
    accelerator = Accelerator(mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.grad_accum)
    torch.manual_seed(config.seed)
    components = build_components(config)
    for s in samples:
        check_sample(s, config.data, wan.pixel_multiple(components))
    lora_info = attach_lora(components.transformer, config)
    if config.gradient_checkpointing:
        components.transformer.enable_gradient_checkpointing()
    components.to(accelerator.device)
    model = EverAnimateDiT(components.transformer, config.memory_slots)
    model.train()
    params = lora_parameters(components.transformer)
    if not params or not all(p.requires_grad for p in params):
        raise ConfigError("no trainable LoRA parameters", fix="check lora.rank and the init LoRA")
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)

    # 3. resume
    step, losses = 0, []
    rng = np.random.default_rng(config.seed + accelerator.process_index)
    gen = torch.Generator().manual_seed(config.seed + accelerator.process_index)
    ckpt = _latest_checkpoint(out) if resume else None
    identity = resume_identity(config, samples)
    if ckpt is not None:
        meta = json.loads((ckpt / "trainer.json").read_text())
        changed = [k for k, v in identity.items() if meta.get(k) != v]
        if changed:
            raise ConfigError(f"checkpoint {ckpt} was written for a different {' and '.join(changed)} than this run "
                              f"({', '.join(f'{k}: {meta.get(k)} -> {identity[k]}' for k in changed)}); resuming it "
                              "would continue a LoRA of another run",
                              fix=f"delete {out / 'checkpoints'} to start this run from step 0, or use a new "
                                  "output_dir")
        accelerator.load_state(str(ckpt))
        step, losses = meta["step"], meta["losses"]
        rng.bit_generator.state = meta["numpy_rng"]
        gen.set_state(torch.load(ckpt / "torch_rng.pt", weights_only=True))

    def checkpoint(at: int):
        path = out / "checkpoints" / f"step-{at}"
        accelerator.save_state(str(path))
        if accelerator.is_main_process:
            torch.save(gen.get_state(), path / "torch_rng.pt")
            (path / "trainer.json").write_text(json.dumps({"step": at, "losses": losses, **identity,
                                                           "numpy_rng": rng.bit_generator.state}))
            save_lora(accelerator.unwrap_model(model).transformer, path / "lora.safetensors",
                      {"stage": config.stage, "step": at})

    # 4. the loop
    last = config.steps if max_steps is None else min(config.steps, max_steps)
    bar = tqdm(total=config.steps, initial=step, disable=not (progress and accelerator.is_local_main_process),
               desc=f"everanimate stage {config.stage}")
    while step < last:
        with accelerator.accumulate(model):
            examples = [build_example(samples[int(rng.integers(len(samples)))], rng, config.data, config.stage,
                                      config.degrade) for _ in range(config.batch_size)]
            batch = prepare_batch(components, examples, gen, config, accelerator.device)
            loss = batch_loss(model, batch, config)
            if not math.isfinite(loss.item()):
                raise DataError(f"step {step}: loss is {loss.item()}", fix="lower the lr or check the data")
            accelerator.backward(loss)
            if accelerator.sync_gradients and config.max_grad_norm:
                accelerator.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad()
        step += 1
        losses.append(float(loss.item()))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-config.log_every:]):.4f}")
        if config.checkpoint_every and step % config.checkpoint_every == 0 and step < config.steps:
            checkpoint(step)
    bar.close()
    result = {"step": step, "losses": losses, "lora_info": lora_info, "output_dir": str(out)}
    if step >= config.steps:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            path = save_lora(accelerator.unwrap_model(model).transformer, out / "lora.safetensors",
                             {"stage": config.stage, "step": step, "config_digest": config.digest(),
                              "memory": config.memory, "base_fingerprint": base_fingerprint(config)})
            (out / "train_log.json").write_text(json.dumps({"config": config.to_dict(), "losses": losses,
                                                            "lora": lora_info}, indent=1, default=str))
            result["lora"] = str(path)
    return result
