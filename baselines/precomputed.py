"""``precomputed``: score videos generated elsewhere - how anyone evaluates a method this project does not wrap.

Contract (``layout="video"``, the default): ``folder`` holds one video per sample, named ``<sample id>.mp4``
(or ``.mkv`` / ``.mov``), at the protocol's fps and the sample's size, with at least as many frames as the
longest duration (docs/data.md#precomputed-folders).

Two more layouts read what the EverAnimate release (``scripts/everanimate_inference.py``) writes:

* ``layout="side_by_side"``: its final mp4, ``<sample id>.mp4``: the generated RGB frame on the left and the
  pose frame on the right (double width, lossy). The left half is cropped; a video of odd width is not
  such a video (error). The crop, and the lossy source, are recorded.
* ``layout="release_frames"``: its lossless per-clip frames, ``<sample id>/frames/clip_NNN_frames.pt`` (the
  ``frames`` folder of its ``--resume_state_dir``; ``<sample id>/clip_NNN_frames.pt`` also works): one
  ``torch.save`` dict per clip, ``{"clip_idx": N, "video_frames": uint8 (T, H, W, 3)}``; clip 0 is used
  whole, every later clip without its first ``overlap_frames`` frames (the release's
  ``--num_overlap_frame``, 4 in its test script), as the release assembles its video. Loaded with
  ``torch.load(weights_only=True)``: tensors only, no code.

1. A missing file, too few frames, another fps or another size is an error naming the file and the fix.
2. ``resize=true`` resizes frames (bicubic) to the sample size; ``resample_fps=true`` maps the video to
   25 fps by nearest frame index. Both are recorded in every score.
3. Only the first ``n_frames`` are read (a longer video is used as a prefix, recorded).
4. ``chunk_frames`` / ``overlap_frames``: the chunking of the generator that made the videos, for the
   ``seam`` metric (joins at ``chunk + k (chunk - overlap)``); default 77 / 4 (Wan-Animate's and the
   EverAnimate release's). Recorded as ``chunk_geometry`` in the rollout's model info.
Arguments: ``--method-arg precomputed.folder=DIR [precomputed.layout=side_by_side|release_frames]
[precomputed.resize=true] [precomputed.resample_fps=true] [precomputed.chunk_frames=77]
[precomputed.overlap_frames=4]``.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.animator import Animator, AnimationRequest, Capabilities, ChunkInput, runtime
from bench.errors import ConfigError, DataError
from bench.sample import sha256_file

EXTENSIONS = (".mp4", ".mkv", ".mov")
LAYOUTS = ("video", "side_by_side", "release_frames")
CLIP_FILE = re.compile(r"clip_(\d+)_frames\.pt$")
RELEASE_CHUNK_FRAMES, RELEASE_OVERLAP_FRAMES = 77, 4


@dataclass(frozen=True)
class PrecomputedConfig:
    """The arguments (module docstring). The folder is a runtime path: its videos' hashes enter the rollout
    key (``weight_fingerprints``), not where they lie."""

    folder: str | None = runtime()
    resize: bool = False
    resample_fps: bool = False
    layout: str = "video"
    chunk_frames: int | None = None  # None (both): 77 / 4 assumed, recorded as assumed
    overlap_frames: int | None = None

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ConfigError(f"unknown layout {self.layout!r}",
                              fix=f"use one of {', '.join(LAYOUTS)} (docs/data.md#precomputed-folders)")
        object.__setattr__(self, "resize", bool(self.resize))
        object.__setattr__(self, "resample_fps", bool(self.resample_fps))
        if self.chunk_frames is not None or self.overlap_frames is not None:
            chunk, overlap = self.geometry()
            if not 0 <= overlap < chunk:
                raise ConfigError(f"chunk_frames {chunk} with overlap_frames {overlap} is impossible",
                                  fix="the chunk must be longer than its overlap, e.g. chunk_frames=77 overlap_frames=4")

    def geometry(self) -> tuple[int, int]:
        """``(chunk_frames, overlap_frames)``, the release's 77 / 4 where not given."""
        return (int(RELEASE_CHUNK_FRAMES if self.chunk_frames is None else self.chunk_frames),
                int(RELEASE_OVERLAP_FRAMES if self.overlap_frames is None else self.overlap_frames))


class Precomputed(Animator):
    name = "precomputed"
    version = "1"
    description = "videos generated elsewhere, one file per sample id"

    Config = PrecomputedConfig

    def __init__(self, **args):
        super().__init__(**args)
        self.folder = Path(self.config.folder) if self.config.folder else None
        self.layout = self.config.layout
        self._fingerprints: dict[str, str] | None = None

    def identity(self) -> dict:
        cfg = self.config
        out = {"resize": cfg.resize, "resample_fps": cfg.resample_fps}
        if self.layout != "video":  # the default layout keeps the keys of earlier rollouts
            out["layout"] = self.layout
        if self.layout == "release_frames":  # the overlap decides which frames are kept
            out["overlap_frames"] = self.overlap_frames
        return out

    @property
    def overlap_frames(self) -> int:
        return self.config.geometry()[1]

    def chunk_geometry(self) -> dict:
        if self.config.chunk_frames is not None or self.config.overlap_frames is not None:
            chunk, overlap = self.config.geometry()
            return {"chunk_frames": chunk, "overlap_frames": overlap,
                    "source": "given (precomputed.chunk_frames / overlap_frames)"}
        return {"chunk_frames": RELEASE_CHUNK_FRAMES, "overlap_frames": RELEASE_OVERLAP_FRAMES,
                "source": "assumed: 77-frame chunks, 4-frame overlap (Wan-Animate and the EverAnimate release); "
                          "pass precomputed.chunk_frames / overlap_frames if the videos were made otherwise"}

    def model_info(self) -> dict:
        return {**super().model_info(), "chunk_geometry": self.chunk_geometry()}

    def check_ready(self) -> None:
        if self.folder is None:
            raise ConfigError("precomputed needs a folder of videos",
                              fix="pass --method-arg precomputed.folder=DIR (one <sample id>.mp4 per sample)")
        if not self.folder.is_dir():
            raise ConfigError(f"precomputed folder {self.folder} does not exist", fix="check the path")

    def weight_fingerprints(self) -> dict[str, str]:
        """The videos (or per-clip frame files) are this method's "weights": their hashes go into the rollout key."""
        if self._fingerprints is None:
            self.check_ready()
            if self.layout == "release_frames":
                self._fingerprints = {}
                for sub in sorted(p for p in self.folder.iterdir() if p.is_dir()):
                    clips = _clip_files(sub)
                    if clips:
                        h = hashlib.sha256()
                        for c in clips:
                            h.update(f"{c.name}:{sha256_file(c)}\n".encode())
                        self._fingerprints[sub.name] = h.hexdigest()
            else:
                self._fingerprints = {p.stem: sha256_file(p) for p in sorted(self.folder.iterdir())
                                      if p.suffix.lower() in EXTENSIONS}
        return self._fingerprints

    def capabilities(self) -> Capabilities:
        return Capabilities(native_fps=25, chunk_frames=250, overlap_frames=0, can_resume=True)

    def video_for(self, sample_id: str) -> Path:
        for ext in EXTENSIONS:
            p = self.folder / f"{sample_id}{ext}"
            if p.exists():
                return p
        raise DataError(f"precomputed: no video for sample {sample_id!r} in {self.folder}",
                        fix=f"write {self.folder / (sample_id + '.mp4')}")

    # -- layouts ---------------------------------------------------------------------------------------
    def start(self, request: AnimationRequest) -> dict:
        if self.layout == "release_frames":
            return self._start_frames(request)
        from bench.video import probe

        path = self.video_for(request.sample.id)
        info = probe(path)
        width = info.width
        if self.layout == "side_by_side":
            if info.width % 2:
                raise DataError(f"precomputed: {path} is {info.width} px wide, an odd width: not the EverAnimate "
                                "release's side-by-side output (generated RGB | pose, each half the width)",
                                fix="pass the release's final <output>.mp4 unchanged, or use "
                                    "precomputed.layout=video for a plain video (or layout=release_frames for its "
                                    "lossless per-clip frames)")
            width = info.width // 2
            self.record("crop", f"{path.name}: left half (generated RGB) of the side-by-side RGB | pose video, "
                        f"{info.width} -> {width} px wide", source_width=info.width)
            self.record("lossy_source", f"{path.name}: the release's final mp4 is lossy; its lossless per-clip "
                        "frames are read with precomputed.layout=release_frames")
        if abs(info.fps - request.fps) > 1e-3:
            if not self.config.resample_fps:
                raise DataError(f"precomputed: {path} is {info.fps:g} fps, the protocol is {request.fps} fps",
                                fix="re-export at 25 fps, or pass --method-arg precomputed.resample_fps=true (recorded)")
            self.record("resample", f"{path.name}: {info.fps:g} fps mapped to {request.fps} fps by nearest frame",
                        source_fps=info.fps)
        self._check_size(path.name, info.height, width, request)
        source_index = np.floor(np.arange(request.n_frames) * info.fps / request.fps + 1e-9).astype(int)
        if source_index[-1] >= info.n_frames:
            raise DataError(f"precomputed: {path} has {info.n_frames} frames ({info.n_frames / info.fps:.1f} s); "
                            f"{request.n_frames / request.fps:.1f} s are needed",
                            fix="generate a longer video or ask for shorter --durations")
        if source_index[-1] + 1 < info.n_frames:
            self.record("prefix", f"{path.name}: first {request.n_frames / request.fps:g} s of "
                        f"{info.n_frames / info.fps:.1f} s used")
        return {"path": str(path), "source_index": source_index, "request": request,
                "crop_width": width if self.layout == "side_by_side" else 0}

    def _check_size(self, name: str, height: int, width: int, request: AnimationRequest) -> None:
        if (height, width) != (request.height, request.width):
            if not self.config.resize:
                raise DataError(f"precomputed: {name} is {width}x{height}, the sample is "
                                f"{request.width}x{request.height}",
                                fix="re-export at the sample size, or pass --method-arg precomputed.resize=true (recorded)")
            self.record("resize", f"{name}: {width}x{height} resized (bicubic) to {request.width}x{request.height}")

    def _start_frames(self, request: AnimationRequest) -> dict:
        sid = request.sample.id
        folder = self.folder / sid
        clips = _clip_files(folder)
        if not clips:
            raise DataError(f"precomputed: no per-clip frame files for sample {sid!r} under {folder} "
                            "(clip_000_frames.pt, ... in it or in its frames/ folder)",
                            fix=f"copy the release's <resume_state_dir>/frames/ of this sample to {folder / 'frames'}")
        numbers = [int(CLIP_FILE.search(c.name).group(1)) for c in clips]
        if numbers != list(range(len(clips))):
            missing = sorted(set(range(max(numbers) + 1)) - set(numbers))
            raise DataError(f"precomputed: clips {missing} are missing from {clips[0].parent}",
                            fix="copy every clip_NNN_frames.pt the release wrote (it numbers them from 000)")
        first = _load_clip(clips[0], 0)
        h, w = first.shape[1:3]
        self._check_size(clips[0].name, h, w, request)
        overlap = self.overlap_frames
        # output frames of each clip: clip 0 whole, later clips without their first `overlap` frames
        # (every clip has clip 0's length, the release's --frames_per_clip; checked when each clip is read)
        if len(clips) > 1 and len(first) <= overlap:
            raise DataError(f"precomputed: {clips[0]} has {len(first)} frames, not more than the overlap {overlap}",
                            fix="set precomputed.overlap_frames to the release's --num_overlap_frame")
        starts = [0] + [len(first) + i * (len(first) - overlap) for i in range(len(clips) - 1)]
        total = len(first) + (len(clips) - 1) * (len(first) - overlap)
        if total < request.n_frames:
            raise DataError(f"precomputed: the {len(clips)} clips in {clips[0].parent} give {total} frames "
                            f"({total / request.fps:.1f} s); {request.n_frames / request.fps:.1f} s are needed",
                            fix="generate more clips (the release's --num_clips) or ask for shorter --durations")
        self.record("release_frames", f"{sid}: {len(clips)} lossless per-clip frame files of the EverAnimate "
                    f"release; clip 0 whole, later clips without their first {overlap} frames", clips=len(clips),
                    overlap_frames=overlap)
        if total > request.n_frames:
            self.record("prefix", f"{sid}: first {request.n_frames} of {total} frames used")
        return {"clips": [str(c) for c in clips], "starts": starts, "clip_frames": len(first), "request": request}

    def step(self, state: dict, chunk: ChunkInput):
        request: AnimationRequest = state["request"]
        out = np.arange(chunk.spec.out_start, chunk.spec.out_start + chunk.spec.n_new)
        out = np.minimum(out, request.n_frames - 1)
        if "clips" in state:
            frames, state = self._frames_from_clips(state, out)
        else:
            from bench.video import VideoReader

            src = state["source_index"][out]
            reader = state.get("reader") or VideoReader(state["path"])
            frames = reader.read(int(src.min()), int(src.max()) + 1)[src - src.min()]
            if state.get("crop_width"):
                frames = np.ascontiguousarray(frames[:, :, :state["crop_width"]])
            state = {**state, "reader": reader}
        if frames.shape[1:3] != (request.height, request.width):
            from PIL import Image

            frames = np.stack([np.asarray(Image.fromarray(f).resize((request.width, request.height), Image.BICUBIC))
                               for f in frames])
        return frames, state

    def _frames_from_clips(self, state: dict, out: np.ndarray) -> tuple[np.ndarray, dict]:
        starts = np.asarray(state["starts"])
        which = np.searchsorted(starts, out, side="right") - 1
        cache = state.get("cache") or (None, None)
        frames = []
        for clip in np.unique(which):
            if cache[0] != clip:
                path = Path(state["clips"][clip])
                cache = (int(clip), _load_clip(path, int(clip)))
                if len(cache[1]) != state["clip_frames"]:
                    raise DataError(f"precomputed: {path} has {len(cache[1])} frames, clip 0 has "
                                    f"{state['clip_frames']}", fix="pass the release's clip files unchanged "
                                    "(every clip has --frames_per_clip frames)")
            local = out[which == clip] - starts[clip] + (self.overlap_frames if clip else 0)
            frames.append(cache[1][local])
        return np.concatenate(frames), {**state, "cache": cache}

    def state_dict(self, state: dict) -> dict:
        if "clips" in state:
            return {"clips": state["clips"], "starts": np.asarray(state["starts"]), "clip_frames": state["clip_frames"]}
        return {"path": state["path"], "source_index": state["source_index"], "crop_width": state.get("crop_width", 0)}

    def load_state_dict(self, request: AnimationRequest, blob: dict) -> dict:
        if "clips" in blob:
            return {"clips": list(blob["clips"]), "starts": [int(s) for s in np.asarray(blob["starts"])],
                    "clip_frames": int(blob["clip_frames"]), "request": request}
        return {"path": blob["path"], "source_index": np.asarray(blob["source_index"]), "request": request,
                "crop_width": int(blob.get("crop_width", 0))}


def _clip_files(folder: Path) -> list[Path]:
    """``clip_NNN_frames.pt`` files of one sample (in ``folder/frames`` or ``folder``), by clip number."""
    for where in (folder / "frames", folder):
        if where.is_dir():
            clips = [p for p in where.iterdir() if CLIP_FILE.search(p.name)]
            if clips:
                return sorted(clips, key=lambda p: int(CLIP_FILE.search(p.name).group(1)))
    return []


def _load_clip(path: Path, index: int) -> np.ndarray:
    """One release clip file -> ``uint8 (T, H, W, 3)``; anything else is an error naming the file."""
    import pickle

    import torch

    fix = ("pass the release's per-clip frame files unchanged (torch.save of {'clip_idx', 'video_frames'}), or use "
           "precomputed.layout=side_by_side with its final mp4")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise DataError(f"precomputed: cannot read {path}: {str(exc).splitlines()[0]}", fix=fix) from None
    frames = blob.get("video_frames") if isinstance(blob, dict) else None
    if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        what = type(frames).__name__ if not isinstance(frames, torch.Tensor) else f"{frames.dtype} {tuple(frames.shape)}"
        raise DataError(f"precomputed: {path} has no uint8 (T, H, W, 3) 'video_frames' tensor (found {what})", fix=fix)
    if isinstance(blob.get("clip_idx"), int) and blob["clip_idx"] != index:
        raise DataError(f"precomputed: {path} says it is clip {blob['clip_idx']}, its name says {index}",
                        fix="restore the release's file names")
    return frames.numpy()
