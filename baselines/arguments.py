"""The arguments of the baselines whose modules import torch (``wan_animate``, ``vae_roundtrip``, the carry
oracles), importable without it: ``bench run`` checks every argument through these before anything loads.
Every check of a value is here, in ``__post_init__``; the method names itself in the error."""
from __future__ import annotations

from dataclasses import dataclass

from bench.errors import ConfigError
from bench.models.vae_method import VAEComponentsConfig


@dataclass(frozen=True)
class WanAnimateConfig:
    """Identity of a ``wan_animate`` run (everything that changes pixels)."""

    model_dir: str | None = None
    components: str | None = None  # "tiny-random": random untrained (tests, smoke runs); "lab": the lab base model
    components_seed: int = 0
    refert_num: int = 1
    steps: int = 20
    shift: float = 5.0
    guidance: float = 1.0
    chunk_frames: int = 77
    prompt: str | None = None  # None: Wan-Animate's default prompt
    solver: str | None = None  # None: the folder's scheduler class (UniPC for diffusers' Wan folders)
    dtype: str = "bfloat16"  # transformer / CLIP / text encoder dtype for model_dir; the VAE stays float32
    lora: str | None = None  # a LoRA on the DiT (the lab's "w/o PLP" ablation: RFM trained on this layout)
    lora_scale: float = 1.0

    def __post_init__(self):
        if (self.model_dir is None) == (self.components is None):
            raise ConfigError("give exactly one of model_dir (a local Wan2.2-Animate-14B-Diffusers folder or a lab "
                              "model folder) and components ('lab' or 'tiny-random')",
                              fix="pass model_dir=/path/to/Wan2.2-Animate-14B-Diffusers, components='lab' or "
                                  "components='tiny-random'")
        if self.components not in (None, "tiny-random", "lab"):
            raise ConfigError(f"unknown components {self.components!r}",
                              fix="use components='tiny-random' or 'lab', or model_dir=FOLDER")
        if self.refert_num not in (1, 5):
            raise ConfigError(f"refert_num must be 1 or 5, got {self.refert_num}",
                              fix="use refert_num=1 (official default) or 5")
        if self.chunk_frames % 4 != 1 or self.chunk_frames <= 2 * self.refert_num:
            raise ConfigError(f"chunk_frames must be 4k + 1 and more than 2 x refert_num, got {self.chunk_frames}",
                              fix="use 77 (native) or another 4k + 1 such as 21 or 37")
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}", fix="use 20 (native)")
        if self.guidance != 1.0:
            raise ConfigError(f"guidance {self.guidance} is not supported (native Wan-Animate uses cfg 1)",
                              fix="use guidance=1.0")
        if self.dtype not in ("bfloat16", "float16", "float32"):
            raise ConfigError(f"unknown dtype {self.dtype!r}", fix="use bfloat16, float16 or float32")


def _check_chunk(chunk_frames: int, name: str, carried: int, fix: str) -> None:
    """A VAE-only method's chunking: 4k + 1 frames per chunk, and 1 <= ``carried`` frames < half a chunk."""
    if chunk_frames % 4 != 1 or not 1 <= carried < chunk_frames // 2:
        raise ConfigError(f"chunk_frames must be 4k + 1 and 1 <= {name} < chunk/2, got {chunk_frames} / {carried}",
                          fix=fix)


@dataclass(frozen=True)
class VAERoundTripConfig(VAEComponentsConfig):
    refert_num: int = 1
    chunk_frames: int = 77

    def __post_init__(self):
        super().__post_init__()
        _check_chunk(self.chunk_frames, "refert_num", self.refert_num, "use chunk_frames=77 with refert_num 1 or 5")


@dataclass(frozen=True)
class CarryOracleConfig(VAEComponentsConfig):
    chunk_frames: int = 77
    overlap: int = 4

    def __post_init__(self):
        super().__post_init__()
        _check_chunk(self.chunk_frames, "overlap", self.overlap, "use chunk_frames=77, overlap=4")
