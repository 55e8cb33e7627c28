"""What defines a lab clip: ``LabSpec`` (seed, size, frames, fps, renderer version) and its content hash."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from bench.errors import ConfigError

LAB_VERSION = "lab/3"
"""Bumped whenever the renderer's pixels change; part of every cache key, expected hash and shipped-model
manifest. ``lab/2``: anti-aliased room, no per-pixel grain, no detail finer than about 5 px at lab-64.
``lab/3``: the frames of ``lab/2``; pose maps drawn with 3-px limbs and 2-px joints instead of 1 px."""

LAB_VERSIONS = (LAB_VERSION,)
"""Renderers this code can draw. Lab v1 (``lab/1``) manifests and models are refused: its pixel-grid detail
held a small VAE at 16 dB, so no lab v1 number is comparable with lab v2's. ``lab/2`` is refused too: its
1-px limbs did not survive the lab VAE, so its models hardly followed their pose."""

LAB_FPS = 25


@dataclass(frozen=True)
class LabSize:
    name: str
    height: int
    width: int
    face_size: int
    """Side of the square face crop; 512 at paper scale, H/4 in the small lab sizes."""


SIZES: dict[str, LabSize] = {
    "lab-64": LabSize("lab-64", 64, 64, 16),
    "lab-128": LabSize("lab-128", 128, 128, 32),
    # Portrait 480 wide x 832 high (H x W = 832 x 480), the 480p human-animation frame; paper-scale face crops.
    "lab-480p": LabSize("lab-480p", 832, 480, 512),
}


def get_size(name: str) -> LabSize:
    if name not in SIZES:
        import difflib

        close = difflib.get_close_matches(name, list(SIZES), n=2)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown lab size {name!r}{hint}", fix=f"use one of: {', '.join(SIZES)}")
    return SIZES[name]


@dataclass(frozen=True)
class LabSpec:
    """Everything that determines a lab clip's pixels. Equal specs render identical files."""

    seed: int
    size: str = "lab-64"
    n_frames: int = 250
    fps: int = LAB_FPS
    version: str = LAB_VERSION

    def __post_init__(self):
        get_size(self.size)
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"lab seed must be a non-negative integer, got {self.seed!r}", fix="pass e.g. seed=1001")
        if not isinstance(self.n_frames, int) or self.n_frames < 1:
            raise ConfigError(f"lab n_frames must be a positive integer, got {self.n_frames!r}",
                              fix="pass e.g. n_frames=250 (10 s at 25 fps)")
        if self.fps != LAB_FPS:
            raise ConfigError(f"lab clips are rendered at {LAB_FPS} fps, got {self.fps}", fix=f"use fps={LAB_FPS}")
        if self.version not in LAB_VERSIONS:
            raise ConfigError(f"lab spec version {self.version!r} is not this renderer's {LAB_VERSION!r}",
                              fix="regenerate the lab manifest with this version of bench (python -m bench lab manifest)")

    @property
    def geometry(self) -> LabSize:
        return get_size(self.size)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LabSpec":
        unknown = set(data) - {"seed", "size", "n_frames", "fps", "version"}
        if unknown:
            raise ConfigError(f"lab spec has unknown fields {sorted(unknown)}", fix="remove them")
        return cls(**data)

    @property
    def content_hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    @property
    def key(self) -> str:
        """Short, readable cache folder name."""
        return f"s{self.seed}-{self.size}-{self.n_frames}f-{self.content_hash[:12]}"

    def with_(self, **changes) -> "LabSpec":
        return LabSpec(**{**self.to_dict(), **changes})
