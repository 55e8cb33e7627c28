"""Video I/O on PyAV: streamed reading by frame range, lossless or viewing-quality writing, probing.

Every reader decodes RGB24 ``uint8`` arrays of shape ``(T, H, W, 3)``. Nothing here holds a whole video
in memory unless the caller asks for the whole range.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from bench.errors import BenchError

LOSSLESS_CODEC = "libx264rgb"


class VideoError(BenchError):
    """A video file is missing, unreadable, truncated or not what it claims to be."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    fps: float
    width: int
    height: int
    n_frames: int
    codec: str


def _open(path: str | os.PathLike):
    import av

    path = Path(path)
    if not path.exists():
        raise VideoError(f"video file not found: {path}", fix="check the path, or re-create the file")
    try:
        return av.open(str(path))
    except Exception as exc:  # av raises many error types for broken containers
        raise VideoError(
            f"cannot open video {path}: {exc}", fix="the file is corrupt or not a video; re-create or re-download it"
        ) from exc


def probe(path: str | os.PathLike, count_frames: bool = True) -> VideoInfo:
    """Container facts; with ``count_frames`` the frame count comes from a full demux (exact, cheap)."""
    with _open(path) as container:
        if not container.streams.video:
            raise VideoError(f"{path} has no video stream", fix="pass a video file")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(0)
        n = stream.frames
        if count_frames or not n:
            try:
                n = sum(1 for packet in container.demux(stream) if packet.size)
            except Exception as exc:
                raise VideoError(f"{path} is truncated or corrupt: {exc}", fix="re-create the file") from exc
        return VideoInfo(str(path), float(rate), stream.codec_context.width, stream.codec_context.height, int(n),
                         stream.codec_context.name)


class VideoReader:
    """Sequential-friendly random access: ``read(start, stop)`` keeps the decoder open and only reopens on
    a backward jump, so streaming a video chunk by chunk decodes every frame exactly once."""

    def __init__(self, path: str | os.PathLike, keep: int = 32):
        self.path = Path(path)
        self._container = None
        self._frames: Iterator | None = None
        self._position = 0
        self._keep = keep
        self._recent: list[np.ndarray] = []  # the last `keep` decoded frames, ending at _position

    def _restart(self) -> None:
        self.close()
        self._container = _open(self.path)
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._frames = self._container.decode(stream)
        self._position = 0
        self._recent = []

    def _next(self) -> np.ndarray:
        try:
            frame = next(self._frames)
        except StopIteration:
            raise
        except Exception as exc:
            raise VideoError(f"{self.path}: decoding failed at frame {self._position}: {exc}",
                             fix="the file is corrupt or truncated; re-create it") from exc
        self._position += 1
        # lossless files decode to planar gbrp, which PyAV hands back as RGB without a slow swscale pass
        array = frame.to_ndarray() if frame.format.name == "gbrp" else frame.to_ndarray(format="rgb24")
        if self._keep:
            self._recent.append(array)
            if len(self._recent) > self._keep:
                self._recent.pop(0)
        return array

    def read(self, start: int, stop: int) -> np.ndarray:
        if stop < start or start < 0:
            raise ValueError(f"bad frame range [{start}, {stop})")
        out = []
        cached_from = self._position - len(self._recent)
        if self._frames is not None and cached_from <= start < self._position:
            out = self._recent[start - cached_from: min(stop, self._position) - cached_from]  # small step back
            start = self._position if stop > self._position else stop
        elif self._frames is None or start < self._position:
            self._restart()
        try:
            while self._position < start:
                self._next()
            while self._position < stop:
                out.append(self._next())
        except StopIteration:
            raise VideoError(
                f"{self.path} ended after {self._position} frames but frames [{start}, {stop}) were requested",
                fix="the video is shorter than stated (truncated?); re-create it or fix the stated frame count",
            ) from None
        if not out:
            info = self._container.streams.video[0].codec_context if self._container else None
            return np.zeros((0, info.height if info else 0, info.width if info else 0, 3), np.uint8)
        return np.stack(out)

    def iter_chunks(self, start: int, stop: int, chunk: int) -> Iterator[np.ndarray]:
        for a in range(start, stop, chunk):
            yield self.read(a, min(stop, a + chunk))

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = None
        self._frames = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def read_all(path: str | os.PathLike) -> np.ndarray:
    with VideoReader(path) as reader:
        return reader.read(0, probe(path).n_frames)


class VideoWriter:
    """Writes RGB frames; ``lossless=True`` (default) stores exact pixels with libx264rgb at qp 0.

    Writes go to ``<path>.partial`` and are renamed into place by ``close()``, so an interrupted write
    never leaves a file that looks complete."""

    def __init__(self, path: str | os.PathLike, fps: int | float, lossless: bool = True, crf: int = 18):
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.name + ".partial")
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        rate = Fraction(fps).limit_denominator(1001)
        if lossless:
            self._stream = self._container.add_stream(LOSSLESS_CODEC, rate=rate)
            self._stream.pix_fmt = "rgb24"
            self._stream.options = {"qp": "0", "preset": "ultrafast"}
        else:
            self._stream = self._container.add_stream("libx264", rate=rate)
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(crf), "preset": "veryfast"}
        self._stream.codec_context.thread_count = 1
        self._lossless = lossless
        self._shape: tuple[int, int] | None = None
        self.n_frames = 0

    def write(self, frames: np.ndarray) -> None:
        import av

        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
        if self._shape is None:
            h, w = frames.shape[1:3]
            if not self._lossless and (h % 2 or w % 2):
                raise ValueError(f"yuv420p needs even sizes, got {h}x{w}")
            self._stream.width, self._stream.height = w, h
            self._shape = (h, w)
        elif frames.shape[1:3] != self._shape:
            raise ValueError(f"frame size changed from {self._shape} to {frames.shape[1:3]}")
        for frame in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
        self.n_frames += len(frames)

    def close(self) -> Path:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self._container.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int | float, lossless: bool = True) -> Path:
    with VideoWriter(path, fps, lossless=lossless) as writer:
        writer.write(frames)
    return Path(path)
