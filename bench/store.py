"""The run store: one folder per content-addressed rollout, per-chunk artefacts written atomically.

Layout under ``<results>/runs/<method>/<key16>/``::

    key.json                 the key payload and its full sha256 (what the rollout *is*)
    chunks/00003.mp4         the frames chunk 3 added (lossless), written to .partial then renamed
    chunks/00003.state.pt    the method's resume state after chunk 3 (resumable methods only)
    chunks/00003.json        chunk record (spec, frame count, sha256 of the mp4/state) - written last
    status.json              written after the last chunk: complete = status ok + every chunk present
    scores/<hash>.json       cached scores of this rollout for one metric set / protocol
    .lock                    file lock: two processes never work on one rollout at once

A chunk exists only when its ``.json`` exists and the files it names match their hashes, so a
``kill -9`` at any moment loses at most the chunk in flight.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from bench.errors import BenchError, os_reason
from bench.sample import sha256_file

KEY_SCHEMA = "bench.rollout-key/1"


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(obj: Any):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def rollout_key(method: str, version: str, identity: dict, weights: dict, sample_hash: str, n_frames: int,
                fps: int, height: int, width: int, seed: int, n_references: int = 1,
                pose_padding: str = "error") -> tuple[str, dict]:
    """The content address of a rollout: everything that changes its pixels, nothing else. This is the
    only place a rollout's identity is hashed: the folder, the resume state and the score records all
    carry this key.

    ``n_references`` (reference views given to the method) enters only when it is more than one (a
    multi-view run): 1 is the protocol default and 0 means the method reads no reference at all, neither
    of which changes pixels relative to the keys written before the count existed.

    ``pose_padding`` decides the poses past the end of the sequence: those of the last chunk's tail and,
    with an explicit ``--pose-padding``, those of a rollout longer than its sample. ``error`` pads the
    last chunk's tail by reflection (what Wan-Animate does), so ``error`` and ``reflect`` give the same
    pixels and the same key; ``hold`` gives other pixels and enters the key."""
    if pose_padding not in ("error", "reflect", "hold"):
        raise BenchError(f"pose padding {pose_padding!r} unknown", fix="use error, reflect or hold")
    payload = {"schema": KEY_SCHEMA, "method": method, "version": str(version), "identity": identity,
               "weights": dict(sorted(weights.items())), "sample": sample_hash, "frames": int(n_frames),
               "fps": int(fps), "resolution": [int(height), int(width)], "seed": int(seed)}
    if n_references > 1:
        payload["n_references"] = int(n_references)
    if pose_padding == "hold":
        payload["pose_padding"] = pose_padding
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest(), payload


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` to ``path`` atomically (readers see the old file or the whole new one)."""
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(Path(path), buffer.getvalue())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, default=_json_default) + "\n").encode())


def check_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise BenchError(f"results folder {root} is not writable ({os_reason(exc)})",
                         fix="pass --results DIR pointing to a folder you can write to") from None


def _encode_state(obj: Any) -> Any:
    """numpy arrays become tagged tensors so the state loads with ``torch.load(weights_only=True)``."""
    import torch

    if isinstance(obj, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.array(obj, copy=True))}
    if isinstance(obj, dict):
        return {k: _encode_state(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode_state(v) for v in obj]
    return obj


def _decode_state(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"}:
            return obj["__ndarray__"].numpy()
        return {k: _decode_state(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode_state(v) for v in obj]
    return obj


@dataclass(frozen=True)
class ChunkRecord:
    index: int
    out_start: int
    n_frames: int
    video_sha256: str
    state_sha256: str | None
    adaptations: list = field(default_factory=list)


class Rollout:
    """One rollout folder. All writes are atomic; reads verify hashes."""

    def __init__(self, root: Path, method: str, key: str, payload: dict):
        self.key = key
        self.payload = payload
        self.folder = Path(root) / "runs" / method / key[:16]
        self.chunks_dir = self.folder / "chunks"

    # -- lifecycle -------------------------------------------------------------------------------
    def lock(self, timeout: float = -1):
        from filelock import FileLock

        self.folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.folder / ".lock"), timeout=timeout)

    def ensure_key(self) -> None:
        key_file = self.folder / "key.json"
        if key_file.exists():
            stored = json.loads(key_file.read_text())
            if stored.get("key") != self.key:
                raise BenchError(f"{self.folder} holds rollout {stored.get('key', '?')[:16]}..., not {self.key[:16]}...",
                                 fix="a 64-bit key prefix collided or the folder was edited; delete the folder")
            return
        atomic_write_json(key_file, {"key": self.key, "payload": self.payload})

    def status(self) -> dict | None:
        p = self.folder / "status.json"
        if not p.exists():
            return None
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError:
            return None

    def is_complete(self) -> bool:
        status = self.status()
        if not status or status.get("status") != "complete":
            return False
        records = self.chunk_records()
        return len(records) == status.get("chunks") and sum(r.n_frames for r in records) >= status.get("n_frames", 0)

    def mark_complete(self, n_frames: int, info: dict) -> None:
        records = self.chunk_records()
        atomic_write_json(self.folder / "status.json",
                          {"status": "complete", "key": self.key, "n_frames": int(n_frames), "chunks": len(records),
                           **info})

    # -- chunks ----------------------------------------------------------------------------------
    def _paths(self, index: int) -> tuple[Path, Path, Path]:
        stem = self.chunks_dir / f"{index:05d}"
        return stem.with_suffix(".mp4"), Path(f"{stem}.state.pt"), stem.with_suffix(".json")

    def write_chunk(self, index: int, out_start: int, frames: np.ndarray, fps: int, state: dict | None,
                    adaptations: list | None = None) -> ChunkRecord:
        from bench.video import write_video

        video, state_path, meta = self._paths(index)
        self.chunks_dir.mkdir(parents=True, exist_ok=True)
        write_video(video, frames, fps)
        state_sha = None
        if state is not None:
            import io

            import torch

            buffer = io.BytesIO()
            torch.save(_encode_state(state), buffer)
            data = buffer.getvalue()
            atomic_write_bytes(state_path, data)
            state_sha = hashlib.sha256(data).hexdigest()
        record = ChunkRecord(index, int(out_start), int(len(frames)), sha256_file(video), state_sha,
                             list(adaptations or []))
        atomic_write_json(meta, record.__dict__)
        return record

    def chunk_records(self, verify: bool = False) -> list[ChunkRecord]:
        """The contiguous run of committed chunks from 0; anything after a gap or a bad hash is ignored."""
        out: list[ChunkRecord] = []
        index = 0
        while True:
            video, state_path, meta = self._paths(index)
            if not meta.exists():
                break
            try:
                record = ChunkRecord(**json.loads(meta.read_text()))
            except (json.JSONDecodeError, TypeError):
                break
            if not video.exists() or (record.state_sha256 and not state_path.exists()):
                break
            if verify and (sha256_file(video) != record.video_sha256 or
                           (record.state_sha256 and sha256_file(state_path) != record.state_sha256)):
                break
            out.append(record)
            index += 1
        return out

    def discard_after(self, n_chunks: int) -> None:
        """Remove chunk files at or past ``n_chunks`` (leftovers of an interrupted run)."""
        if not self.chunks_dir.exists():
            return
        for p in self.chunks_dir.iterdir():
            stem = p.name.split(".")[0]
            if (stem.isdigit() and int(stem) >= n_chunks) or p.name.endswith(".partial") or p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)

    def load_state(self, index: int) -> dict:
        import torch

        _, state_path, _ = self._paths(index)
        return _decode_state(torch.load(state_path, map_location="cpu", weights_only=True))

    def iter_frames(self, stop: int, batch: int = 64) -> Iterator[tuple[int, np.ndarray]]:
        """Stream ``(start, frames)`` batches of the rollout's first ``stop`` frames, chunk by chunk."""
        from bench.video import VideoReader

        position = 0
        for record in self.chunk_records():
            if position >= stop:
                break
            take = min(record.n_frames, stop - position)
            with VideoReader(self._paths(record.index)[0]) as reader:
                for a in range(0, take, batch):
                    frames = reader.read(a, min(take, a + batch))
                    yield position + a, frames
            position += take
        if position < stop:
            raise BenchError(f"rollout {self.folder} has {position} frames, {stop} needed",
                             fix="re-run `python -m bench run` to finish it")

    # -- scores ----------------------------------------------------------------------------------
    def scores_path(self, scoring_key: str) -> Path:
        return self.folder / "scores" / f"{scoring_key[:16]}.json"
