"""Wan2.2-Animate components on ``diffusers``: build, load, save, fingerprint, and per-chunk conditioning.

Shared by ``baselines.wan_animate`` / ``baselines.vae_roundtrip`` and the EverAnimate method. The math of
every helper is the math of ``diffusers.WanAnimatePipeline`` (same ops, same order, same dtypes), so a
loop built from them reproduces the pipeline's frames exactly. Stable public API::

    DEFAULT_PROMPT, WAN_ANIMATE_REPO
    WanComponentsConfig(...)                                  # frozen; the tiny / lab architecture
    WanComponents                                             # transformer, vae, image_encoder, image_processor,
                                                              # scheduler, text_encoder, tokenizer, prompt_embeds,
                                                              # source, trained, config; .to(device); .info()
    tiny_components(seed=0, config=WanComponentsConfig()) -> WanComponents   # random, untrained, no download
    load_components(model_dir, dtype=torch.bfloat16, vae_dtype=torch.float32) -> WanComponents
    check_model_dir(model_dir, method="wan") -> None          # WeightsError listing every missing file
    check_vae_dir(model_dir, method="wan") -> None
    load_vae(model_dir, dtype=torch.float32) -> AutoencoderKLWan   # only model_dir/vae
    save_components(components, out_dir) -> Path              # a real diffusers folder load_components reads
    lab_model_dir(name="wan_animate_base") -> Path           # where components="lab" is looked for
    fingerprint(model_dir) -> str                             # sha256 over weight/config files, cached by size+mtime
    make_scheduler(components, shift=5.0, solver=None)        # fresh flow-matching scheduler (UniPC or Euler)
    encode_prompt(components, prompt=DEFAULT_PROMPT, device=None) -> Tensor (1, L, text_dim)   # once per run
    clip_image_features(components, image_uint8, device=None) -> Tensor (1, N, image_dim)
    reference_pixels(components, image_uint8, height, width) -> Tensor (1, 3, H, W) in [-1, 1]
    video_pixels(frames_uint8, height, width) -> Tensor (1, 3, T, H, W) float32 in [-1, 1]
    vae_encode(vae, pixels) -> standardised latents (argmax of the posterior)
    vae_decode(vae, latents) -> pixels (B, 3, T, H, W) in about [-1, 1]
    i2v_mask(batch, latent_frames, latent_h, latent_w, known_frames, dtype, device) -> (B, 4, T_lat, h, w)
    reference_condition(vae, ref_pixels) -> (1, 4 + z, 1, h, w)             # mask 1 + latent
    carry_condition(vae, carry_pixels | None, segment_frames, height, width, n_carry, known)
                                                              -> (1, 4 + z, T_lat, h, w)
    pose_latents(vae, pose_pixels) -> (1, z, T_lat, h, w)
    face_motion_features(transformer, face_pixels, batch_size=None) -> motion tokens (B, T_lat, heads+1, dim)
    reuse_face_motion(transformer, face_pixels, batch_size=None)  # context manager: motion encoder runs once
    pixels_to_unit(pixels) -> numpy float32 (T, H, W, 3) in [0, 1]     # the pipeline's "np" output
    unit_to_uint8(frames) -> numpy uint8                              # (x * 255).round(), as diffusers does

Shapes follow diffusers: video tensors are ``(B, C, T, H, W)``; the Wan VAE maps ``1 + 4k`` frames to
``1 + k`` latent slices of ``H/8 x W/8`` with 16 channels.
"""
from __future__ import annotations

import contextlib
import hashlib
import html
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from bench.errors import ConfigError, WeightsError
from bench.models import DEFAULT_PROMPT, WAN_ANIMATE_REPO

FINGERPRINT_CACHE = ".bench_fingerprint.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".json", ".model", ".txt")
DOWNLOAD_FIX = (f"download it on a machine with internet (huggingface-cli download {WAN_ANIMATE_REPO} --local-dir DIR), "
                "copy DIR here and pass model_dir=DIR")


# --------------------------------------------------------------------------------------------------------------
# 1. Components: config, container, tiny random build
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WanComponentsConfig:
    """Architecture of randomly initialised (tiny / lab) components. The 14B model's values are in the
    comments. The VAE's spatial factor is ``2 ** len(vae_temporal_downsample)`` (one 2x spatial step per
    stage), its temporal factor ``2 ** sum(vae_temporal_downsample)``; every code path reads these, and the
    latent channels, from the VAE's config, so a lab VAE of 4x spatial compression runs the 14B model's code."""

    num_layers: int = 2  # 40
    num_heads: int = 2  # 40
    head_dim: int = 16  # 128
    ffn_dim: int = 64  # 13824
    freq_dim: int = 32  # 256
    text_dim: int = 32  # 4096 (umT5-XXL)
    text_tokens: int = 16  # 512
    inject_face_every: int = 2  # 5: a face-adapter block after every n-th DiT block
    motion_encoder_size: int = 16  # 512: face crops are resized to this square
    motion_channels: int = 16  # 512 at every resolution
    motion_style_dim: int = 32  # 512
    motion_dim: int = 8  # 20
    motion_encoder_dim: int = 32  # 512
    face_hidden_dim: int = 32  # 1024
    face_heads: int = 2  # 4
    motion_batch: int = 8  # 8
    clip_hidden: int = 32  # 1280 (open-clip ViT-H/14)
    clip_layers: int = 2  # 32
    clip_heads: int = 2  # 16
    clip_image_size: int = 32  # 224
    clip_patch: int = 8  # 14
    vae_base_dim: int = 8  # 96
    vae_dim_mult: tuple[int, ...] = (1, 1, 1, 1)  # (1, 2, 4, 4)
    vae_z_dim: int = 16  # 16
    vae_temporal_downsample: tuple[bool, ...] = (False, True, True)  # (False, True, True): 8x spatial, 4x temporal
    vae_residual: bool = False  # False; Wan2.2's TI2V VAE: True (parameter-free average / duplicate shortcuts)
    patch_size: tuple[int, int, int] = (1, 2, 2)  # (1, 2, 2)
    shift: float = 5.0
    solver: str = "unipc"

    def __post_init__(self):
        object.__setattr__(self, "vae_dim_mult", tuple(int(m) for m in self.vae_dim_mult))
        object.__setattr__(self, "vae_temporal_downsample", tuple(bool(d) for d in self.vae_temporal_downsample))
        object.__setattr__(self, "patch_size", tuple(int(p) for p in self.patch_size))
        if len(self.vae_dim_mult) != len(self.vae_temporal_downsample) + 1:
            raise ConfigError(f"vae_dim_mult has {len(self.vae_dim_mult)} stages, vae_temporal_downsample "
                              f"{len(self.vae_temporal_downsample)} steps", fix="give one more multiplier than steps")
        size = self.motion_encoder_size
        if size < 8 or size & (size - 1):
            raise ConfigError(f"motion_encoder_size must be a power of two >= 8, got {size}", fix="use 16, 32, 64 ... 512")
        if self.num_layers % self.inject_face_every:
            raise ConfigError(f"num_layers ({self.num_layers}) must be a multiple of inject_face_every "
                              f"({self.inject_face_every})", fix="diffusers indexes one face adapter per group of blocks")
        if self.solver not in ("unipc", "euler"):
            raise ConfigError(f"unknown solver {self.solver!r}", fix="use 'unipc' (diffusers Wan default) or 'euler'")


@dataclass
class WanComponents:
    """Everything a Wan-Animate segment loop needs. ``prompt_embeds`` replaces the text encoder when the
    folder (or the tiny build) has none; ``trained`` is False for random weights."""

    transformer: Any
    vae: Any
    image_encoder: Any
    image_processor: Any
    scheduler: Any
    text_encoder: Any = None
    tokenizer: Any = None
    prompt_embeds: torch.Tensor | None = None
    source: str = ""
    trained: bool = True
    config: WanComponentsConfig | None = None
    _prompt_cache: dict = field(default_factory=dict, repr=False)

    def to(self, device: str | torch.device) -> "WanComponents":
        for module in (self.transformer, self.vae, self.image_encoder, self.text_encoder):
            if module is not None:
                module.to(device)
        self._prompt_cache.clear()
        return self

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def motion_encoder_size(self) -> int:
        return int(self.transformer.config.motion_encoder_size)

    def info(self) -> dict[str, Any]:
        def params(m):
            return None if m is None else int(sum(p.numel() for p in m.parameters()))

        return {"source": self.source, "trained": self.trained,
                "weights": "trained" if self.trained else "untrained (random init)",
                "transformer_params": params(self.transformer), "vae_params": params(self.vae),
                "image_encoder_params": params(self.image_encoder), "text_encoder_params": params(self.text_encoder),
                "text": "umT5 encoder" if self.text_encoder is not None else "precomputed prompt embeddings",
                "transformer_dtype": str(self.transformer.dtype), "vae_dtype": str(self.vae.dtype),
                "motion_encoder_size": self.motion_encoder_size,
                "scheduler": type(self.scheduler).__name__,
                "config": asdict(self.config) if self.config else None}


def tiny_components(seed: int = 0, config: WanComponentsConfig = WanComponentsConfig()) -> WanComponents:
    """Randomly initialised real diffusers / transformers models, deterministic in ``seed`` (the global RNG
    is left untouched). The text encoder is replaced by fixed random prompt embeddings."""
    from diffusers import AutoencoderKLWan, WanAnimateTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    c = config
    inner = c.num_heads * c.head_dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = WanAnimateTransformer3DModel(
            patch_size=c.patch_size, num_attention_heads=c.num_heads, attention_head_dim=c.head_dim,
            in_channels=2 * c.vae_z_dim + 4, latent_channels=c.vae_z_dim, out_channels=c.vae_z_dim,
            text_dim=c.text_dim, freq_dim=c.freq_dim,
            ffn_dim=c.ffn_dim, num_layers=c.num_layers, image_dim=c.clip_hidden, added_kv_proj_dim=inner,
            rope_max_seq_len=1024,
            motion_encoder_channel_sizes={str(2 ** i): c.motion_channels for i in range(2, 11)},
            motion_encoder_size=c.motion_encoder_size, motion_style_dim=c.motion_style_dim, motion_dim=c.motion_dim,
            motion_encoder_dim=c.motion_encoder_dim, face_encoder_hidden_dim=c.face_hidden_dim,
            face_encoder_num_heads=c.face_heads, inject_face_latents_blocks=c.inject_face_every,
            motion_encoder_batch_size=c.motion_batch)
        torch.manual_seed(seed + 1)
        vae = build_vae(c)
        torch.manual_seed(seed + 2)
        image_encoder = CLIPVisionModel(CLIPVisionConfig(
            hidden_size=c.clip_hidden, intermediate_size=2 * c.clip_hidden, num_hidden_layers=c.clip_layers,
            num_attention_heads=c.clip_heads, image_size=c.clip_image_size, patch_size=c.clip_patch,
            projection_dim=c.clip_hidden))
        gen = torch.Generator().manual_seed(seed + 3)
        prompt_embeds = torch.randn((1, c.text_tokens, c.text_dim), generator=gen)
    image_processor = CLIPImageProcessor(size={"shortest_edge": c.clip_image_size},
                                         crop_size={"height": c.clip_image_size, "width": c.clip_image_size})
    for m in (transformer, vae, image_encoder):
        m.eval().requires_grad_(False)
    cpu_fast_paths(vae)
    comps = WanComponents(transformer=transformer, vae=vae, image_encoder=image_encoder,
                          image_processor=image_processor, scheduler=None, prompt_embeds=prompt_embeds,
                          source=f"tiny-random(seed={seed})", trained=False, config=c)
    comps.scheduler = make_scheduler(comps, shift=c.shift, solver=c.solver)
    return comps


# --------------------------------------------------------------------------------------------------------------
# 2. Folders: check, load, save, fingerprint
# --------------------------------------------------------------------------------------------------------------
def _weights_present(folder: Path, stem: str) -> list[str]:
    """Missing weight files of one sub-model (single file or sharded with an index)."""
    single = [folder / f"{stem}.safetensors", folder / f"{stem}.bin"]
    if any(p.is_file() for p in single):
        return []
    for index in (folder / f"{stem}.safetensors.index.json", folder / f"{stem}.bin.index.json"):
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except Exception:
                return [f"{index} (unreadable index)"]
            return [str(folder / s) for s in shards if not (folder / s).is_file()]
    return [str(single[0]) + " (or a sharded .index.json)"]


def check_model_dir(model_dir: str | os.PathLike, method: str = "wan") -> None:
    """Raise ``WeightsError`` listing every missing file of a ``Wan2.2-Animate-14B-Diffusers``-layout folder."""
    root = Path(model_dir)
    if not root.is_dir():
        raise WeightsError(f"{method}: model folder {root} does not exist", fix=DOWNLOAD_FIX)
    missing: list[str] = []
    for rel in ("model_index.json", "transformer/config.json", "vae/config.json", "image_encoder/config.json",
                "image_processor/preprocessor_config.json", "scheduler/scheduler_config.json"):
        if not (root / rel).is_file():
            missing.append(str(root / rel))
    missing += _weights_present(root / "transformer", "diffusion_pytorch_model")
    missing += _weights_present(root / "vae", "diffusion_pytorch_model")
    missing += _weights_present(root / "image_encoder", "model")
    if not (root / "prompt_embeds.safetensors").is_file():
        if not (root / "text_encoder/config.json").is_file():
            missing.append(str(root / "text_encoder/config.json") + " (or prompt_embeds.safetensors)")
        missing += _weights_present(root / "text_encoder", "model")
        if not (root / "tokenizer").is_dir() or not any((root / "tokenizer").iterdir()):
            missing.append(str(root / "tokenizer/"))
    if missing:
        listing = "\n    ".join(missing)
        raise WeightsError(f"{method}: {len(missing)} file(s) missing from {root}:\n    {listing}", fix=DOWNLOAD_FIX)


def load_components(model_dir: str | os.PathLike, dtype: torch.dtype = torch.bfloat16,
                    vae_dtype: torch.dtype = torch.float32, method: str = "wan") -> WanComponents:
    """Load a local diffusers folder (the 14B release, or one written by ``save_components``) on the CPU.
    The transformer, CLIP and text encoder get ``dtype``; the VAE ``vae_dtype`` (fp32, as recommended)."""
    import diffusers
    from diffusers import AutoencoderKLWan, WanAnimateTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPVisionModel

    check_model_dir(model_dir, method)
    root = Path(model_dir)
    index = json.loads((root / "model_index.json").read_text())
    bench_info = index.get("bench", {})
    try:
        transformer = WanAnimateTransformer3DModel.from_pretrained(root, subfolder="transformer", torch_dtype=dtype)
        vae = AutoencoderKLWan.from_pretrained(root, subfolder="vae", torch_dtype=vae_dtype)
        image_encoder = CLIPVisionModel.from_pretrained(root / "image_encoder", dtype=dtype)
        image_processor = CLIPImageProcessor.from_pretrained(root / "image_processor")
        sched_cfg = json.loads((root / "scheduler/scheduler_config.json").read_text())
        scheduler = getattr(diffusers, sched_cfg["_class_name"]).from_pretrained(root, subfolder="scheduler")
        text_encoder = tokenizer = prompt_embeds = None
        if (root / "prompt_embeds.safetensors").is_file():
            from safetensors.torch import load_file

            prompt_embeds = load_file(root / "prompt_embeds.safetensors")["prompt_embeds"]
        else:
            from transformers import AutoTokenizer, UMT5EncoderModel

            text_encoder = UMT5EncoderModel.from_pretrained(root / "text_encoder", dtype=dtype)
            tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer")
    except WeightsError:
        raise
    except Exception as exc:
        raise WeightsError(f"{method}: cannot load the Wan-Animate components from {root}: {exc}",
                           fix="the folder is incomplete or corrupt; download it again (" + DOWNLOAD_FIX + ")") from exc
    for m in (transformer, vae, image_encoder, text_encoder):
        if m is not None:
            m.eval().requires_grad_(False)
    cpu_fast_paths(vae)
    config = WanComponentsConfig(**bench_info["config"]) if bench_info.get("config") else None
    return WanComponents(transformer=transformer, vae=vae, image_encoder=image_encoder,
                         image_processor=image_processor, scheduler=scheduler, text_encoder=text_encoder,
                         tokenizer=tokenizer, prompt_embeds=prompt_embeds,
                         source=bench_info.get("source", str(root)), trained=bool(bench_info.get("trained", True)),
                         config=config)


def cpu_fast_paths(vae: torch.nn.Module) -> torch.nn.Module:
    """The Wan VAE's gradient-free float32 CPU fast paths (``onednn_conv3d``, ``rsqrt_rms_norm``); returns ``vae``."""
    return rsqrt_rms_norm(onednn_conv3d(vae))


def rsqrt_rms_norm(module: torch.nn.Module) -> torch.nn.Module:
    """Compute the channel-first ``WanRMS_norm`` layers of ``module`` as ``x * rsqrt(sum(x^2))`` for
    gradient-free float32 CPU calls.

    diffusers normalises with ``F.normalize(x, dim=1)``, whose strided reduction over the channels of an
    ``NCTHW`` tensor took 22 % of a lab chunk's decode (5.4 ms for 32 x 6 x 64 x 64, 0.76 ms this way; equal
    within 2e-7, the same 1e-12 floor on the norm). Other calls keep diffusers' forward. Idempotent."""
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanRMS_norm

    def forward(self, x):
        if (x.device.type == "cpu" and x.dtype == torch.float32 and self.channel_first
                and not torch.is_grad_enabled()):
            return x * torch.rsqrt(x.square().sum(1, keepdim=True).clamp_min(1e-24)) * self.scale * self.gamma + self.bias
        return WanRMS_norm.forward(self, x)

    return _bind_to_instances(module, WanRMS_norm, "forward", forward)


def _bind_to_instances(module: torch.nn.Module, cls: type, name: str, method) -> torch.nn.Module:
    """Bind ``method`` as ``name`` on every ``cls`` instance inside ``module`` that does not have its own yet
    (idempotent); returns ``module``."""
    import types

    for m in module.modules():
        if isinstance(m, cls) and name not in m.__dict__:
            setattr(m, name, types.MethodType(method, m))
    return module


def onednn_conv3d(module: torch.nn.Module, training: bool = False) -> torch.nn.Module:
    """Route ``module``'s ``Conv3d`` forwards through oneDNN (``aten::mkldnn_convolution``) for gradient-free
    float32 CPU calls (``training=True``: for calls with gradients too, e.g. the lab VAE's batch-1 77-frame
    steps, 10 -> 7.5 s a decoder step; gradients equal to about 3e-7 of their norm).

    PyTorch picks its naive ``slow_conv3d`` kernel for a batch of one whose ``N * C * D * H`` is at most 20,480,
    which is every causal convolution of a Wan VAE chunk at lab sizes (a 32-channel conv over 6 x 64 x 64 takes
    109 ms there, 10 ms in oneDNN; values equal to about 1e-4 of their range, float32 rounding), with the weight
    and input in channels-last layout (a lab chunk's decode 1.23 -> 1.08 s, its encode 0.50 -> 0.42 s; the
    channels-last weights are a cached copy: one more copy of the conv weights in memory). Other calls (GPU,
    bf16, and with gradients unless ``training``) keep PyTorch's own choice. Idempotent (the last call's
    ``training`` holds); returns ``module``."""
    for m in module.modules():
        if isinstance(m, torch.nn.Conv3d):
            m._onednn_with_grad = training  # read by _onednn_conv_forward; the last call decides
    return _bind_to_instances(module, torch.nn.Conv3d, "_conv_forward", _onednn_conv_forward)


def _onednn_conv_forward(self, x, weight, bias):
    if (x.device.type == "cpu" and x.dtype == torch.float32 and self.padding_mode == "zeros"
            and torch.backends.mkldnn.is_available()):
        if not torch.is_grad_enabled():
            x = x.contiguous(memory_format=torch.channels_last_3d)
            return torch.ops.aten.mkldnn_convolution(x, _channels_last_copy(self, weight), bias, list(self.padding),
                                                     list(self.stride), list(self.dilation), self.groups)
        if self.__dict__.get("_onednn_with_grad"):
            return torch.ops.aten.mkldnn_convolution(x.contiguous(), weight.contiguous(), bias, list(self.padding),
                                                     list(self.stride), list(self.dilation), self.groups)
    return torch.nn.Conv3d._conv_forward(self, x, weight, bias)


def _channels_last_copy(conv: torch.nn.Module, weight: torch.Tensor) -> torch.Tensor:
    """``weight`` in channels-last-3d layout, cached on ``conv`` until the weight tensor or its data changes."""
    cached = conv.__dict__.get("_weight_channels_last")
    if cached is None or cached[0] is not weight or cached[1] != weight._version:
        cached = (weight, weight._version, weight.detach().contiguous(memory_format=torch.channels_last_3d))
        conv.__dict__["_weight_channels_last"] = cached
    return cached[2]


def check_vae_dir(model_dir: str | os.PathLike, method: str = "wan") -> None:
    """Raise ``WeightsError`` when ``model_dir/vae`` lacks its config or weights."""
    root = Path(model_dir)
    missing = [] if (root / "vae/config.json").is_file() else [str(root / "vae/config.json")]
    missing += _weights_present(root / "vae", "diffusion_pytorch_model")
    if missing:
        raise WeightsError(f"{method}: VAE file(s) missing from {root}: {', '.join(missing)}", fix=DOWNLOAD_FIX)


def load_vae(model_dir: str | os.PathLike, dtype: torch.dtype = torch.float32, method: str = "wan"):
    """Only the ``AutoencoderKLWan`` of a components folder (``model_dir/vae``), for VAE-only probes."""
    from diffusers import AutoencoderKLWan

    root = Path(model_dir)
    check_vae_dir(root, method)
    try:
        vae = AutoencoderKLWan.from_pretrained(root, subfolder="vae", torch_dtype=dtype)
    except Exception as exc:
        raise WeightsError(f"{method}: cannot load the Wan VAE from {root / 'vae'}: {exc}",
                           fix="the folder is incomplete or corrupt; download it again (" + DOWNLOAD_FIX + ")") from exc
    return cpu_fast_paths(vae.eval().requires_grad_(False))


SAVE_SHARD_SIZE = "10MB"  # shards stay well under a git host's per-file limit (the lab base ships in the repository)


def save_components(components: WanComponents, out_dir: str | os.PathLike) -> Path:
    """Write ``components`` as a diffusers ``WanAnimatePipeline`` folder (plus ``prompt_embeds.safetensors``
    when there is no text encoder); ``model_index.json["bench"]`` keeps source / trained / config."""
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    components.transformer.save_pretrained(root / "transformer", max_shard_size=SAVE_SHARD_SIZE)
    components.vae.save_pretrained(root / "vae")
    components.image_encoder.save_pretrained(root / "image_encoder")
    components.image_processor.save_pretrained(root / "image_processor")
    components.scheduler.save_pretrained(root / "scheduler")
    if components.text_encoder is not None:
        components.text_encoder.save_pretrained(root / "text_encoder")
        components.tokenizer.save_pretrained(root / "tokenizer")
    else:
        from safetensors.torch import save_file

        save_file({"prompt_embeds": components.prompt_embeds.contiguous()}, root / "prompt_embeds.safetensors",
                  metadata={"prompt": DEFAULT_PROMPT})
    has_text = components.text_encoder is not None
    index = {"_class_name": "WanAnimatePipeline",
             "transformer": ["diffusers", "WanAnimateTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLWan"],
             "image_encoder": ["transformers", "CLIPVisionModel"], "image_processor": ["transformers", "CLIPImageProcessor"],
             "scheduler": ["diffusers", type(components.scheduler).__name__],
             "text_encoder": ["transformers", "UMT5EncoderModel"] if has_text else [None, None],
             "tokenizer": ["transformers", type(components.tokenizer).__name__] if has_text else [None, None],
             "bench": {"source": components.source, "trained": components.trained,
                       "config": asdict(components.config) if components.config else None}}
    (root / "model_index.json").write_text(json.dumps(index, indent=2, ensure_ascii=False))
    return root


def lab_model_dir(name: str = "wan_animate_base") -> Path:
    """Folder of a shipped lab model (``components="lab"``): ``$BENCH_LAB_MODELS/<name>``, default
    ``<repo>/models/lab/<name>``; a ``save_components`` folder."""
    base = os.environ.get("BENCH_LAB_MODELS") or Path(__file__).resolve().parents[2] / "models" / "lab"
    return Path(base) / name


def components_folder(model_dir: str | os.PathLike | None, components: str | None) -> Path | str | None:
    """The folder a method loads: ``model_dir`` if given, the shipped lab model for ``components="lab"``,
    None for tiny random components."""
    if model_dir is not None:
        return model_dir
    return lab_model_dir("wan_animate_base") if components == "lab" else None



def fingerprint(model_dir: str | os.PathLike) -> str:
    """sha256 over (relative path, sha256) of every weight and config file under ``model_dir``. Per-file
    digests are cached in ``model_dir/.bench_fingerprint.json`` keyed by size and mtime, so a 30 GB folder is
    hashed once; a read-only folder is re-hashed each time."""
    from bench.sample import sha256_file

    root = Path(model_dir)
    if not root.is_dir():
        raise WeightsError(f"cannot fingerprint {root}: no such folder", fix=DOWNLOAD_FIX)
    cache_path = root / FINGERPRINT_CACHE
    try:
        cache = json.loads(cache_path.read_text()).get("files", {})
    except (OSError, ValueError):
        cache = {}
    entries, changed = {}, False
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name == FINGERPRINT_CACHE or not path.name.endswith(WEIGHT_SUFFIXES):
            continue
        rel = path.relative_to(root).as_posix()
        st = path.stat()
        hit = cache.get(rel)
        if hit and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
            entries[rel] = hit
        else:
            entries[rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256_file(path)}
            changed = True
    if not entries:
        raise WeightsError(f"cannot fingerprint {root}: it holds no weight or config files", fix=DOWNLOAD_FIX)
    if changed or set(cache) != set(entries):
        try:
            tmp = cache_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"version": 1, "files": entries}, indent=1))
            os.replace(tmp, cache_path)
        except OSError:
            pass
    blob = "\n".join(f"{rel}\t{e['sha256']}" for rel, e in sorted(entries.items()))
    return hashlib.sha256(blob.encode()).hexdigest()


VAE_ENCODER_PREFIXES = ("encoder.", "quant_conv.")  # with the config: everything a VAE encoding depends on


def vae_encoder_fingerprint(vae) -> str:
    """sha256 over a VAE's config and its encoder / ``quant_conv`` tensors: equal for two VAEs whose
    (standardised) encodings are bit-identical, e.g. before and after a decoder-only fine-tune."""
    config = {k: v for k, v in dict(vae.config).items() if not k.startswith("_")}  # not _name_or_path
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(vae.state_dict().items()):
        if name.startswith(VAE_ENCODER_PREFIXES):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------------------
# 3. Scheduler, text, CLIP, pixels
# --------------------------------------------------------------------------------------------------------------
def make_scheduler(components: WanComponents | None = None, shift: float = 5.0, solver: str | None = None):
    """A fresh flow-matching scheduler with ``shift``: the folder's own class and settings (diffusers' Wan
    folders ship UniPC, ``prediction_type="flow_prediction"``, ``use_flow_sigmas``) with ``flow_shift`` set,
    or ``solver="unipc" | "euler"`` explicitly (Euler = ``FlowMatchEulerDiscreteScheduler``)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    base = getattr(components, "scheduler", None)
    if solver is None and base is not None:
        if "flow_shift" in base.config:
            return type(base).from_config(base.config, flow_shift=float(shift))
        if "shift" in base.config:
            return type(base).from_config(base.config, shift=float(shift))
        return type(base).from_config(base.config)
    solver = solver or "unipc"
    if solver == "unipc":
        return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=float(shift),
                                       num_train_timesteps=1000, solver_order=2)
    if solver == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=float(shift))
    raise ConfigError(f"unknown solver {solver!r}", fix="use 'unipc' or 'euler'")


def _clean_prompt(text: str) -> str:
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:
        pass
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


@torch.no_grad()
def encode_prompt(components: WanComponents, prompt: str = DEFAULT_PROMPT, device: str | torch.device | None = None,
                  max_sequence_length: int = 512) -> torch.Tensor:
    """umT5 embeddings of ``prompt`` as ``WanAnimatePipeline`` computes them (padded with zeros to
    ``max_sequence_length``), in the transformer's dtype; cached per prompt. Without a text encoder the
    stored ``prompt_embeds`` are returned (they encode ``DEFAULT_PROMPT``)."""
    device = torch.device(device) if device is not None else components.device
    key = (prompt, str(device), max_sequence_length)
    if key in components._prompt_cache:
        return components._prompt_cache[key]
    dtype = components.transformer.dtype
    if components.text_encoder is None:
        if components.prompt_embeds is None:
            raise ConfigError("these components have neither a text encoder nor precomputed prompt embeddings",
                              fix="load a folder with text_encoder/ + tokenizer/ or prompt_embeds.safetensors")
        if prompt != DEFAULT_PROMPT:
            raise ConfigError("these components only hold precomputed embeddings of the default prompt",
                              fix="use the default prompt or a folder with a text encoder")
        embeds = components.prompt_embeds.to(device=device, dtype=dtype)
    else:
        tokens = components.tokenizer([_clean_prompt(prompt)], padding="max_length", max_length=max_sequence_length,
                                      truncation=True, add_special_tokens=True, return_attention_mask=True,
                                      return_tensors="pt")
        ids, mask = tokens.input_ids, tokens.attention_mask
        seq_len = int(mask.gt(0).sum(dim=1)[0])
        enc_device = next(components.text_encoder.parameters()).device
        hidden = components.text_encoder(ids.to(enc_device), mask.to(enc_device)).last_hidden_state
        hidden = hidden.to(dtype=components.text_encoder.dtype, device=device)[0, :seq_len]
        embeds = torch.cat([hidden, hidden.new_zeros(max_sequence_length - seq_len, hidden.size(1))])[None]
        embeds = embeds.to(dtype)
    components._prompt_cache[key] = embeds
    return embeds


def _to_pil(frame: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))


@torch.no_grad()
def clip_image_features(components: WanComponents, image: np.ndarray, device: str | torch.device | None = None) -> torch.Tensor:
    """Penultimate-layer CLIP tokens of one ``(H, W, 3) uint8`` image (``WanAnimatePipeline.encode_image``),
    in the transformer's dtype."""
    device = torch.device(device) if device is not None else components.device
    enc_device = next(components.image_encoder.parameters()).device
    inputs = components.image_processor(images=_to_pil(image), return_tensors="pt").to(enc_device)
    inputs["pixel_values"] = inputs["pixel_values"].to(components.image_encoder.dtype)
    out = components.image_encoder(**inputs, output_hidden_states=True)
    return out.hidden_states[-2].to(device=device, dtype=components.transformer.dtype)


def reference_pixels(components: WanComponents, image: np.ndarray, height: int, width: int) -> torch.Tensor:
    """The reference image as the pipeline feeds the VAE: resized to fit and centred on black ("fill"),
    ``(1, 3, H, W)`` float32 in [-1, 1]."""
    from diffusers.pipelines.wan.image_processor import WanAnimateImageProcessor

    patch = tuple(components.transformer.config.patch_size[-2:])
    proc = WanAnimateImageProcessor(vae_scale_factor=vae_spatial_factor(components.vae), spatial_patch_size=patch,
                                    resample="bilinear", fill_color=0)
    return proc.preprocess(_to_pil(image), height=height, width=width, resize_mode="fill").to(torch.float32)


def video_pixels(frames: np.ndarray, height: int, width: int) -> torch.Tensor:
    """``(T, H', W', 3) uint8`` frames -> ``(1, 3, T, height, width)`` float32 in [-1, 1], resized (Lanczos)
    exactly like ``WanAnimatePipeline`` resizes pose and face videos when their size differs."""
    from diffusers.video_processor import VideoProcessor

    proc = VideoProcessor(vae_scale_factor=8)
    return proc.preprocess_video([_to_pil(f) for f in frames], height=height, width=width).to(torch.float32)


def pixels_to_unit(pixels: torch.Tensor) -> np.ndarray:
    """``(1, 3, T, H, W)`` decoded pixels -> ``(T, H, W, 3)`` float32 in [0, 1] (the pipeline's "np" output)."""
    video = (pixels[0].permute(1, 0, 2, 3) / 2 + 0.5).clamp(0, 1)
    return video.permute(0, 2, 3, 1).float().cpu().numpy()


def unit_to_uint8(frames: np.ndarray) -> np.ndarray:
    return (frames * 255).round().astype(np.uint8)


# --------------------------------------------------------------------------------------------------------------
# 4. VAE and conditioning latents (pipeline math)
# --------------------------------------------------------------------------------------------------------------
def build_vae(c: WanComponentsConfig, latents_mean=None, latents_std=None):
    """A randomly initialised ``AutoencoderKLWan`` of architecture ``c`` (its compression recorded in the
    config as ``scale_factor_spatial`` / ``scale_factor_temporal``, which diffusers' pipelines read)."""
    from diffusers import AutoencoderKLWan

    stats = {}
    if latents_mean is not None:
        stats = {"latents_mean": [float(v) for v in latents_mean], "latents_std": [float(v) for v in latents_std]}
    else:
        stats = {"latents_mean": [0.0] * c.vae_z_dim, "latents_std": [1.0] * c.vae_z_dim} if c.vae_z_dim != 16 else {}
    return AutoencoderKLWan(base_dim=c.vae_base_dim, z_dim=c.vae_z_dim, dim_mult=list(c.vae_dim_mult),
                            num_res_blocks=1, temperal_downsample=list(c.vae_temporal_downsample),
                            is_residual=c.vae_residual,
                            scale_factor_spatial=2 ** len(c.vae_temporal_downsample),
                            scale_factor_temporal=2 ** sum(c.vae_temporal_downsample), **stats)


def vae_spatial_factor(vae) -> int:
    """Pixels per latent cell along H and W, from the VAE's architecture (8 for Wan2.1/2.2-Animate's VAE)."""
    return 2 ** len(vae.config.temperal_downsample)


def vae_temporal_factor(vae) -> int:
    """Frames per latent slice after the first (4 for Wan's VAE): ``1 + f*k`` frames -> ``1 + k`` slices."""
    return 2 ** sum(bool(d) for d in vae.config.temperal_downsample)


def pixel_multiple(components: "WanComponents") -> int:
    """Height and width must be multiples of this: the VAE's spatial factor times the DiT's spatial patch
    (16 for Wan-Animate-14B, 8x and 2x)."""
    return vae_spatial_factor(components.vae) * int(components.transformer.config.patch_size[-1])


def latent_channels(vae) -> int:
    return int(vae.config.z_dim)


def latent_frames(vae, frames: int) -> int:
    return (frames - 1) // vae_temporal_factor(vae) + 1


def _latent_stats(vae, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    z = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean).view(1, z, 1, 1, 1).to(like.device, like.dtype)
    recip_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, z, 1, 1, 1).to(like.device, like.dtype)
    return mean, recip_std


def vae_encode(vae, pixels: torch.Tensor) -> torch.Tensor:
    """Standardised latents of ``(B, 3, T, H, W)`` pixels (posterior mode, as the pipeline's ``argmax``)."""
    device = next(vae.parameters()).device
    latents = vae.encode(pixels.to(device=device, dtype=vae.dtype)).latent_dist.mode()
    mean, recip_std = _latent_stats(vae, latents)
    return ((latents - mean) * recip_std).contiguous()


def vae_decode(vae, latents: torch.Tensor) -> torch.Tensor:
    """Pixels ``(B, 3, T', H, W)`` of standardised latents (``1 + k`` slices -> ``1 + 4k`` frames)."""
    latents = latents.to(vae.dtype)
    mean, recip_std = _latent_stats(vae, latents)
    return vae.decode(latents / recip_std + mean, return_dict=False)[0].contiguous()


def i2v_mask(batch: int, latent_frames: int, latent_h: int, latent_w: int, known_frames: int,
             dtype: torch.dtype, device: torch.device | str, temporal: int = 4) -> torch.Tensor:
    """Wan's latent mask: the first ``known_frames`` pixel frames marked 1 (the first frame counts ``temporal``
    times), folded to ``(B, temporal, latent_frames, h, w)`` (4 channels for Wan's 4x temporal VAE)."""
    mask = torch.zeros(batch, 1, (latent_frames - 1) * temporal + 1, latent_h, latent_w, dtype=dtype, device=device)
    mask[:, :, :known_frames] = 1
    first = torch.repeat_interleave(mask[:, :, 0:1], dim=2, repeats=temporal)
    mask = torch.concat([first, mask[:, :, 1:]], dim=2)
    return mask.view(batch, -1, temporal, latent_h, latent_w).transpose(1, 2)


def reference_condition(vae, ref_pixels: torch.Tensor) -> torch.Tensor:
    """Reference slot: ``[mask 1 (4 ch) | latent (z ch)]``, one latent slice, ``(1, 4 + z, 1, h, w)``."""
    if ref_pixels.ndim == 4:
        ref_pixels = ref_pixels.unsqueeze(2)
    latents = vae_encode(vae, ref_pixels)
    _, _, _, h, w = latents.shape
    mask = i2v_mask(latents.shape[0], 1, h, w, 1, latents.dtype, latents.device, vae_temporal_factor(vae))
    return torch.cat([mask, latents], dim=1)


def carry_condition(vae, carry_pixels: torch.Tensor | None, segment_frames: int, height: int, width: int,
                    n_carry: int, known: bool) -> torch.Tensor:
    """Target-slot conditioning of one segment: the ``n_carry`` carried-over decoded frames (zeros for the
    first segment) followed by zero frames up to ``segment_frames``, VAE-encoded as one clip, with a mask
    marking the carried frames as known (``known=False`` for the first segment). ``(1, 4 + z, T_lat, h, w)``."""
    import torch.nn.functional as F

    dtype = vae.dtype
    device = next(vae.parameters()).device
    if carry_pixels is None:
        carry_pixels = torch.zeros((1, 3, n_carry, height, width), dtype=dtype, device=device)
    carry_pixels = carry_pixels.to(device)
    if carry_pixels.shape[-2:] != (height, width):
        flat = carry_pixels.transpose(1, 2).flatten(0, 1)
        flat = F.interpolate(flat, size=(height, width), mode="bicubic")
        carry_pixels = flat.unflatten(0, (1, -1)).transpose(1, 2)
    rest = torch.zeros(1, 3, segment_frames - n_carry, height, width, dtype=dtype, device=device)
    video = torch.cat([carry_pixels.to(dtype=dtype), rest], dim=2)
    latents = vae_encode(vae, video)
    mask = i2v_mask(1, latents.shape[2], latents.shape[3], latents.shape[4], n_carry if known else 0, dtype, device,
                    vae_temporal_factor(vae))
    return torch.cat([mask, latents], dim=1)


def pose_latents(vae, pose_pixels: torch.Tensor) -> torch.Tensor:
    """Standardised VAE latents of a pose clip, ``(1, z, T_lat, h, w)``; added after patch embedding."""
    return vae_encode(vae, pose_pixels)


# --------------------------------------------------------------------------------------------------------------
# 5. Face motion features once per chunk
# --------------------------------------------------------------------------------------------------------------
def face_motion_features(transformer, face_pixels: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """What ``WanAnimateTransformer3DModel.forward`` computes from the face crops before its blocks (motion
    encoder in batches of ``batch_size`` frames, then the face encoder): ``(B, T_lat, heads + 1, dim)``."""
    b, c, t, h, w = face_pixels.shape
    flat = face_pixels.permute(0, 2, 1, 3, 4).reshape(-1, c, h, w)
    batch_size = batch_size or transformer.config.motion_encoder_batch_size
    vectors = torch.cat([transformer.motion_encoder(x) for x in torch.split(flat, batch_size)])
    return transformer.face_encoder(vectors.view(b, t, -1))


@contextlib.contextmanager
def reuse_face_motion(transformer, face_pixels: torch.Tensor, batch_size: int | None = None) -> Iterator[torch.Tensor]:
    """Run the motion + face encoders once; inside the block, every ``transformer(...)`` call given the same
    ``face_pixel_values`` shape reuses those features (identical output, no per-step motion encoding).

    The transformer's ``motion_encoder`` and ``face_encoder`` forwards are swapped for cheap stand-ins (a
    zeros placeholder and the cached tensor) and restored on exit, including hooks installed by accelerate."""
    features = face_motion_features(transformer, face_pixels, batch_size)
    b, _, t = face_pixels.shape[:3]
    out_dim = transformer.config.motion_encoder_dim
    motion, face = transformer.motion_encoder, transformer.face_encoder
    saved = {m: m.__dict__.get("forward") for m in (motion, face)}

    def placeholder_motion(face_batch, channel_dim=1):
        return face_batch.new_zeros((face_batch.shape[0], out_dim))

    def cached_face(vectors):
        if tuple(vectors.shape[:2]) != (b, t):
            raise RuntimeError(f"reuse_face_motion: features were computed for (batch, frames)=({b}, {t}), "
                               f"the transformer got {tuple(vectors.shape[:2])}")
        return features

    motion.forward, face.forward = placeholder_motion, cached_face
    try:
        yield features
    finally:
        for m, fwd in saved.items():
            if fwd is None:
                del m.forward
            else:
                m.forward = fwd
