"""Every EverAnimate default, as frozen dataclasses, and the TOML/JSON training config format.

Precedence: command line (``--set section.key=value``) > config file > these defaults. Unknown keys are
errors, so a typo can never silently fall back to a default.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bench.errors import ConfigError

from bench.models.lora import LoRAConfig
from bench.models import DEFAULT_PROMPT


@dataclass(frozen=True)
class SamplerConfig:
    """Inference: the chunk loop of the spec. Every field changes pixels (all go into the rollout key)."""

    chunk_frames: int = 77  # 1 + 4k frames -> 1 + k latent slices (77 -> 20)
    overlap_frames: int = 4  # = one latent slice: the motion-memory slot covers it
    steps: int = 20
    shift: float = 5.0
    n_memory: int = 4  # K identity-memory slots
    seed_stride: int = 42  # noise seed of chunk c = request seed + seed_stride * c
    clip_source: str = "previous_frame"  # "previous_frame" (release) | "reference"
    flag_motion_mask: bool = False  # the release does not flag the motion slot as known
    prompt: str = DEFAULT_PROMPT

    def __post_init__(self):
        if self.chunk_frames < 5 or (self.chunk_frames - 1) % 4:
            raise ConfigError(f"chunk_frames={self.chunk_frames} is not 1 + 4k (k >= 1)",
                              fix="use 77 (paper) or another 1 + 4k value such as 9, 17, 33")
        if self.overlap_frames != 4:
            raise ConfigError(f"overlap_frames={self.overlap_frames}: the motion memory is one latent slice = 4 frames",
                              fix="use overlap_frames=4")
        if self.steps < 1 or self.shift <= 0 or self.n_memory < 1:
            raise ConfigError("steps, shift and n_memory must be positive", fix="use steps=20, shift=5, n_memory=4")
        if self.clip_source not in ("previous_frame", "reference"):
            raise ConfigError(f"clip_source={self.clip_source!r}", fix="use 'previous_frame' or 'reference'")

    @property
    def n_target(self) -> int:
        return (self.chunk_frames - 1) // 4 + 1


@dataclass(frozen=True)
class DegradeConfig:
    """Pixel degradations for RFM's ``x0_aug``; one parameter set per clip."""

    clahe_p: float = 0.9
    clahe_clip: tuple[float, float] = (1.0, 64.0)
    clahe_grid: tuple[int, int] = (1, 32)
    saturation_p: float = 0.3
    saturation: tuple[float, float] = (1.3, 3.0)
    brightness_p: float = 0.1
    brightness: tuple[float, float] = (0.8, 1.2)
    erase_p: float = 0.9
    erase_patches: tuple[int, int] = (1, 4)
    erase_size: tuple[float, float] = (0.1, 0.3)  # patch side as a fraction of the image side
    erase_factor: tuple[int, int] = (8, 32)  # down- then up-sampling factor


@dataclass(frozen=True)
class RFMConfig:
    lam: float = 1.0  # lambda: peak of alpha(t)
    prob: float = 0.8  # perturb with this probability ...
    min_sigma: float = 0.5  # ... and only when sigma >= min_sigma
    num_train_timesteps: int = 1000
    shift: float = 5.0


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "lab-train"  # a bench dataset name, or "folders:DIR" (one sample folder per subfolder)
    n_frames: int = 162  # frames loaded per training video (>= context + target - overlap)
    cache_root: str = ".cache/bench"
    context_frames: int = 81
    target_frames: int = 77
    overlap_frames: int = 4
    n_memory: int = 4
    anchors_from_context_p: float = 0.95  # else the reference x K
    first_chunk_p: float = 0.2  # anchors = reference x K, motion = zeros
    pose_dropout_p: float = 0.05  # pose replaced by a blank canvas
    # stage 2 only, as the release: with p 0.5 one random affine shared by all K anchors of the sample (only when
    # they come from the context), grey outside the frame
    anchor_augment_p: float = 0.5
    anchor_scale: tuple[float, float] = (0.8, 1.2)  # sampling-grid scale (> 1 zooms out), as affine_grid's theta
    anchor_translate: float = 0.05  # +- fraction of the side (the release's 0.1 in affine_grid's [-1, 1] units)
    # stage-1 motion-memory perturbation (SVI/Helios; the release's option, off as released): with probability
    # corrupt_motion_p the motion slot of the conditioning becomes (1 - sigma) motion + sigma * std * noise at
    # the sample's training sigma; noise fresh, or the target noise's first slot (corrupt_motion_shared_noise)
    corrupt_motion_p: float = 0.0
    corrupt_motion_std: float = 1.0  # 1: unit Gaussian noise, as the release
    corrupt_motion_shared_noise: bool = False

    def __post_init__(self):
        for name in ("context_frames", "target_frames"):
            v = getattr(self, name)
            if v < 5 or (v - 1) % 4:
                raise ConfigError(f"data.{name}={v} is not 1 + 4k", fix="use 81 / 77 (paper) or e.g. 9")
        if self.overlap_frames != 4:
            raise ConfigError("data.overlap_frames must be 4 (one latent slice)", fix="set it to 4")
        if not 0.0 <= self.corrupt_motion_p <= 1.0 or self.corrupt_motion_std < 0:
            raise ConfigError(f"data.corrupt_motion_p={self.corrupt_motion_p}, corrupt_motion_std="
                              f"{self.corrupt_motion_std}", fix="use a probability in [0, 1] and a std >= 0")

    @property
    def n_target(self) -> int:
        return (self.target_frames - 1) // 4 + 1

    @property
    def span(self) -> int:
        """Frames one training sample reads: context, then the target starting ``overlap`` before its end."""
        return self.context_frames + self.target_frames - self.overlap_frames


@dataclass(frozen=True)
class TrainConfig:
    stage: int = 1  # 1: PLP memory + plain FM; 2: RFM + anchor augmentation
    base: str = "tiny:lab-64"  # "tiny:<preset>" (random, untrained) or a diffusers Wan-Animate folder
    base_seed: int = 0  # seed of the tiny random base
    base_layers: int | None = None
    init_lora: str | None = None  # the LoRA to start from: stage 2 the stage-1 file (required with memory="plp")
    memory: str = "plp"  # "plp": K identity + 1 motion latent slot; "pixel_carry": Wan-Animate's reference slot +
    #                      decoded carry-over frame (the "w/o PLP" ablation: RFM trained on the baseline's layout)
    output_dir: str = "runs/everanimate/stage1"
    steps: int = 4000  # paper: stage 1 4,000 / stage 2 1,000
    lr: float = 1e-4
    weight_decay: float = 0.0
    batch_size: int = 1
    grad_accum: int = 1
    mixed_precision: str = "no"  # "no" | "bf16" (GPUs)
    gradient_checkpointing: bool = True
    checkpoint_every: int = 500
    log_every: int = 10
    seed: int = 0
    max_grad_norm: float = 1.0
    loss_slots: str = "all"  # "all": MSE on all K + T slots (the release; anchors: plain FM velocity);
    #                          "target": the T target slots only (ablation)
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    rfm: RFMConfig = field(default_factory=RFMConfig)
    degrade: DegradeConfig = field(default_factory=DegradeConfig)

    def __post_init__(self):
        if self.stage not in (1, 2):
            raise ConfigError(f"stage={self.stage}", fix="use --stage 1 or --stage 2")
        if self.memory not in ("plp", "pixel_carry"):
            raise ConfigError(f"memory={self.memory!r}", fix="use 'plp' (EverAnimate) or 'pixel_carry' (w/o PLP ablation)")
        if self.stage == 2 and not self.init_lora and self.memory == "plp":
            raise ConfigError("stage 2 starts from the stage-1 LoRA but init_lora is not set",
                              fix="pass --set init_lora=RUN1/lora.safetensors (stage 1's output)")
        if self.loss_slots not in ("all", "target"):
            raise ConfigError(f"loss_slots={self.loss_slots!r}", fix="use 'all' (release) or 'target' (ablation)")
        if self.mixed_precision not in ("no", "bf16"):
            raise ConfigError(f"mixed_precision={self.mixed_precision!r}", fix="use 'no' or 'bf16'")
        if self.data.corrupt_motion_p > 0 and self.memory != "plp":
            raise ConfigError("data.corrupt_motion_p perturbs the PLP motion-memory slot; memory='pixel_carry' has none",
                              fix="set data.corrupt_motion_p=0 or use memory='plp'")
        if self.data.n_memory < 1:
            raise ConfigError("data.n_memory must be >= 1", fix="use 4")

    @property
    def memory_slots(self) -> int:
        """Slots in front of the targets: K anchors (PLP) or the one reference slot (pixel carry-over)."""
        return self.data.n_memory if self.memory == "plp" else 1

    @property
    def use_rfm(self) -> bool:
        return self.stage == 2

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]


SECTIONS = {"data": DataConfig, "lora": LoRAConfig, "rfm": RFMConfig, "degrade": DegradeConfig}


def _coerce(cls, name: str, value: Any, where: str) -> Any:
    ftype = {f.name: f.type for f in fields(cls)}[name]
    if isinstance(value, str) and value in ("None", "null") and "None" in ftype:
        return None
    try:
        if isinstance(value, str) and not ftype.startswith("str"):
            value = json.loads(value)
        if ftype.startswith("tuple") and value is not None:
            value = tuple(value)
        elif ftype.startswith("float") and isinstance(value, int):
            value = float(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: cannot read {value!r} as {ftype}", fix="write e.g. 1e-4, 3, true, [1, 2]") from exc
    return value


def _build(cls, data: dict, where: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        import difflib

        hints = [f"{u} (did you mean {difflib.get_close_matches(u, known, 1)[0]}?)"
                 if difflib.get_close_matches(u, known, 1) else u for u in unknown]
        raise ConfigError(f"{where}: unknown keys {', '.join(hints)}", fix=f"known keys: {', '.join(sorted(known))}")
    kwargs = {}
    for key, value in data.items():
        if key in SECTIONS and cls is TrainConfig:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: [{key}] must be a table", fix=f"write [{key}] followed by key = value lines")
            kwargs[key] = _build(SECTIONS[key], value, f"{where} [{key}]")
        else:
            kwargs[key] = _coerce(cls, key, value, f"{where} {key}")
    return cls(**kwargs)


def load_train_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                      **top_level: Any) -> TrainConfig:
    """Read a TOML or JSON config, apply ``section.key=value`` overrides and keyword overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist", fix="pass an existing file (see everanimate/configs/)")
        try:
            data = tomllib.loads(p.read_text()) if p.suffix == ".toml" else json.loads(p.read_text())
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot parse {p}: {exc}", fix="fix the syntax (TOML or JSON)") from exc
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value", fix="write e.g. --set lora.rank=16")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        target = data
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value.strip()
    for key, value in top_level.items():
        if value is not None:
            data[key] = value
    return _build(TrainConfig, data, str(path or "config"))

