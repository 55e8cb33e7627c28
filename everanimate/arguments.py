"""The arguments of the ``everanimate`` method, importable without torch (``bench run`` checks them before
anything loads; ``bench ls --methods`` lists them)."""
from __future__ import annotations

from dataclasses import dataclass

from bench.errors import ConfigError

from everanimate.config import SamplerConfig

COMPONENTS = ("tiny-random", "lab")
DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class EverAnimateConfig(SamplerConfig):
    """Every sampler setting (``SamplerConfig``), then the components:

    ``components``: "tiny-random" (random untrained Wan-Animate components, ``tiny_seed``) or "lab" (the
    shipped lab models); ``model_dir``: a local Wan2.2-Animate-14B-Diffusers folder (overrides components);
    ``lora``: the EverAnimate LoRA file (default with "lab": the shipped stage-2 LoRA); ``dtype``: None means
    "bfloat16" with ``model_dir``, else "float32"."""

    components: str = "tiny-random"
    model_dir: str | None = None
    lora: str | None = None
    lora_scale: float = 1.0
    tiny_seed: int = 0
    dtype: str | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.components not in COMPONENTS:
            raise ConfigError(f"components={self.components!r}", fix="use 'tiny-random', 'lab' or model_dir=DIR")
        if self.dtype and self.dtype not in DTYPES:
            raise ConfigError(f"dtype={self.dtype!r}", fix="use 'float32' or 'bfloat16'")
