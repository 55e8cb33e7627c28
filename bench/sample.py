"""The benchmark sample: one reference-image + pose-sequence + ground-truth clip, identical for lab and real data.

On disk a sample is a folder (or files named by a manifest record) with:

    gt.mp4          ground-truth RGB video (lossless for the lab)
    pose.mp4        pose maps (skeleton drawn on black), same size / fps / frame count as gt
    face.mp4        face crops (square, S x S), same frame count
    ref_000.png ... reference images; ref_000 is the canonical one, the rest optional extra views
    keypoints.npz   body (T, 18, 3) OpenPose order [x, y, conf] in pixels, face (T, F, 3),
                    face_boxes (T, 4) [x0, y0, x1, y1] pixels, NaN where no face is visible
    masks.mp4       person masks (optional; white = person), same size / frame count as gt

The record that describes it (a manifest line, schema ``bench.sample/1``):

    {"schema": "bench.sample/1", "id": "...", "fps": 25, "n_frames": 2250, "height": 64, "width": 64,
     "face_size": 16, "files": {"gt": {"path": "...", "sha256": "..."}, "pose": {...}, "face": {...},
     "refs": [{...}, ...], "keypoints": {...}, "masks": {... or null}}, "source": {...}}

Paths in a record are relative to the record's base folder (the manifest's folder) unless absolute.
"""
from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import DataError

SAMPLE_SCHEMA = "bench.sample/1"


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22, cached: bool = False) -> str:
    """sha256 of a file: the one file hash of the project (data, rollouts, weights). ``cached``: remember it
    per (path, size, mtime) in this process, for weight files hashed again each time a metric or model is
    built; the run store verifies its chunks uncached."""
    path = Path(path)
    key = None
    if cached:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key in _HASH_CACHE:
            return _HASH_CACHE[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    if key is not None:
        _HASH_CACHE[key] = h.hexdigest()
    return h.hexdigest()


class Sample(ABC):
    """What every method and metric consumes. All frame accessors take a half-open range ``[start, stop)``
    and return ``uint8`` arrays ``(T, H, W, 3)``; streaming callers ask for consecutive ranges."""

    id: str
    fps: int
    n_frames: int
    height: int
    width: int

    @property
    @abstractmethod
    def content_hash(self) -> str:
        """sha256 over everything that defines the sample's pixels (file hashes + geometry)."""

    @abstractmethod
    def gt(self, start: int, stop: int) -> np.ndarray: ...

    @abstractmethod
    def pose(self, start: int, stop: int) -> np.ndarray: ...

    @abstractmethod
    def face(self, start: int, stop: int) -> np.ndarray: ...

    @abstractmethod
    def references(self) -> list[np.ndarray]:
        """Reference images, ``[0]`` the canonical one; each ``(H, W, 3) uint8``."""

    @abstractmethod
    def keypoints(self) -> dict[str, np.ndarray]:
        """``body (T, 18, 3)``, ``face (T, F, 3)``, ``face_boxes (T, 4)`` (NaN rows: no face)."""

    def face_boxes(self, start: int, stop: int) -> np.ndarray:
        return self.keypoints()["face_boxes"][start:stop]

    def masks(self, start: int, stop: int) -> np.ndarray | None:
        """Person masks ``(T, H, W) bool`` or None when the sample has none."""
        return None

    def close(self) -> None:
        pass


@dataclass
class FileSample(Sample):
    """A sample whose files live on disk, described by a ``bench.sample/1`` record."""

    record: dict[str, Any]
    base: Path
    _readers: dict[str, Any] = field(default_factory=dict, repr=False)
    _keypoints: dict[str, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self):
        rec = self.record
        if rec.get("schema") != SAMPLE_SCHEMA:
            raise DataError(f"sample record {rec.get('id', '?')}: schema {rec.get('schema')!r} is not {SAMPLE_SCHEMA!r}",
                            fix="rebuild the manifest with this version of bench")
        for key in ("id", "fps", "n_frames", "height", "width", "files"):
            if key not in rec:
                raise DataError(f"sample record {rec.get('id', '?')}: missing field {key!r}",
                                fix="rebuild the manifest (python -m bench validate shows every problem)")
        self.id = str(rec["id"])
        self.fps = int(rec["fps"])
        self.n_frames = int(rec["n_frames"])
        self.height = int(rec["height"])
        self.width = int(rec["width"])

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> "FileSample":
        folder = Path(folder)
        meta = folder / "sample.json"
        if not meta.exists():
            raise DataError(f"{folder} has no sample.json", fix="render or build the sample again")
        return cls(json.loads(meta.read_text()), folder)

    def path(self, name: str, index: int | None = None) -> Path:
        entry = self.record["files"].get(name)
        if entry is None:
            raise DataError(f"sample {self.id}: no {name!r} file in its record", fix="rebuild the manifest")
        if index is not None:
            entry = entry[index]
        p = Path(entry["path"])
        return p if p.is_absolute() else self.base / p

    @property
    def content_hash(self) -> str:
        files = self.record["files"]
        parts = {k: ([e["sha256"] for e in v] if isinstance(v, list) else (v or {}).get("sha256"))
                 for k, v in sorted(files.items())}
        geometry = {k: self.record[k] for k in ("fps", "n_frames", "height", "width")}
        blob = json.dumps({"files": parts, "geometry": geometry}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def _read(self, name: str, start: int, stop: int) -> np.ndarray:
        from bench.video import VideoReader

        if not 0 <= start <= stop <= self.n_frames:
            raise DataError(f"sample {self.id}: frames [{start}, {stop}) outside 0..{self.n_frames}",
                            fix="ask for a duration no longer than the sample")
        reader = self._readers.get(name)
        if reader is None:
            reader = self._readers[name] = VideoReader(self.path(name))
        try:
            frames = reader.read(start, stop)
        except Exception as exc:
            raise DataError(f"sample {self.id}, field {name!r}: {exc}",
                            fix=f"re-create {self.path(name)} (python -m bench validate lists every problem)") from exc
        if len(frames) != stop - start:
            raise DataError(f"sample {self.id}, field {name!r}: got {len(frames)} frames, expected {stop - start}",
                            fix="the video is truncated; re-create it")
        return frames

    def gt(self, start, stop):
        return self._read("gt", start, stop)

    def pose(self, start, stop):
        return self._read("pose", start, stop)

    def face(self, start, stop):
        return self._read("face", start, stop)

    def masks(self, start, stop):
        if not self.record["files"].get("masks"):
            return None
        return self._read("masks", start, stop)[..., 0] >= 128

    def references(self):
        from PIL import Image

        out = []
        for i in range(len(self.record["files"]["refs"])):
            p = self.path("refs", i)
            try:
                out.append(np.asarray(Image.open(p).convert("RGB")))
            except Exception as exc:
                raise DataError(f"sample {self.id}: cannot read reference image {p}: {exc}",
                                fix="re-create the reference image") from exc
        return out

    def keypoints(self):
        if self._keypoints is None:
            p = self.path("keypoints")
            try:
                with np.load(p) as data:
                    self._keypoints = {k: data[k] for k in data.files}
            except Exception as exc:
                raise DataError(f"sample {self.id}: cannot read keypoints {p}: {exc}", fix="re-create the file") from exc
        return self._keypoints

    def close(self):
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()
