"""``precomputed``: score videos generated elsewhere - how anyone evaluates a method this project does not wrap.

Contract: ``folder`` holds one video per sample, named ``<sample id>.mp4`` (or ``.mkv`` / ``.mov``), at
the protocol's fps and the sample's size, with at least as many frames as the longest duration.

1. A missing file, too few frames, another fps or another size is an error naming the file and the fix.
2. ``resize=true`` resizes frames (bicubic) to the sample size; ``resample_fps=true`` maps the video to
   25 fps by nearest frame index. Both are recorded in every score.
3. Only the first ``n_frames`` are read (a longer video is used as a prefix, recorded).
Arguments: ``--method-arg precomputed.folder=DIR [precomputed.resize=true] [precomputed.resample_fps=true]``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.animator import Animator, AnimationRequest, Capabilities, ChunkInput
from bench.errors import ConfigError, DataError
from bench.sample import sha256_file

EXTENSIONS = (".mp4", ".mkv", ".mov")


class Precomputed(Animator):
    name = "precomputed"
    version = "1"
    description = "videos generated elsewhere, one file per sample id"

    def __init__(self, folder: str | None = None, resize: bool = False, resample_fps: bool = False):
        super().__init__(folder=folder, resize=bool(resize), resample_fps=bool(resample_fps))
        self.folder = Path(folder) if folder else None
        self._fingerprints: dict[str, str] | None = None

    def identity(self) -> dict:
        return {"resize": self.identity_args["resize"], "resample_fps": self.identity_args["resample_fps"]}

    def check_ready(self) -> None:
        if self.folder is None:
            raise ConfigError("precomputed needs a folder of videos",
                              fix="pass --method-arg precomputed.folder=DIR (one <sample id>.mp4 per sample)")
        if not self.folder.is_dir():
            raise ConfigError(f"precomputed folder {self.folder} does not exist", fix="check the path")

    def weight_fingerprints(self) -> dict[str, str]:
        """The videos are this method's "weights": their hashes go into the rollout key."""
        if self._fingerprints is None:
            self.check_ready()
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

    def start(self, request: AnimationRequest) -> dict:
        from bench.video import probe

        path = self.video_for(request.sample.id)
        info = probe(path)
        args = self.identity_args
        if abs(info.fps - request.fps) > 1e-3:
            if not args["resample_fps"]:
                raise DataError(f"precomputed: {path} is {info.fps:g} fps, the protocol is {request.fps} fps",
                                fix="re-export at 25 fps, or pass --method-arg precomputed.resample_fps=true (recorded)")
            self.record("resample", f"{path.name}: {info.fps:g} fps mapped to {request.fps} fps by nearest frame",
                        source_fps=info.fps)
        if (info.height, info.width) != (request.height, request.width):
            if not args["resize"]:
                raise DataError(f"precomputed: {path} is {info.width}x{info.height}, the sample is "
                                f"{request.width}x{request.height}",
                                fix="re-export at the sample size, or pass --method-arg precomputed.resize=true (recorded)")
            self.record("resize", f"{path.name}: {info.width}x{info.height} resized (bicubic) to "
                        f"{request.width}x{request.height}")
        source_index = np.floor(np.arange(request.n_frames) * info.fps / request.fps + 1e-9).astype(int)
        if source_index[-1] >= info.n_frames:
            raise DataError(f"precomputed: {path} has {info.n_frames} frames ({info.n_frames / info.fps:.1f} s); "
                            f"{request.n_frames / request.fps:.1f} s are needed",
                            fix="generate a longer video or ask for shorter --durations")
        if source_index[-1] + 1 < info.n_frames:
            self.record("prefix", f"{path.name}: first {request.n_frames / request.fps:g} s of "
                        f"{info.n_frames / info.fps:.1f} s used")
        return {"path": str(path), "source_index": source_index, "request": request}

    def step(self, state: dict, chunk: ChunkInput):
        from PIL import Image

        from bench.video import VideoReader

        request: AnimationRequest = state["request"]
        out = np.arange(chunk.spec.out_start, chunk.spec.out_start + chunk.spec.n_new)
        src = state["source_index"][np.minimum(out, request.n_frames - 1)]
        reader = state.get("reader") or VideoReader(state["path"])
        frames = reader.read(int(src.min()), int(src.max()) + 1)[src - src.min()]
        if frames.shape[1:3] != (request.height, request.width):
            frames = np.stack([np.asarray(Image.fromarray(f).resize((request.width, request.height), Image.BICUBIC))
                               for f in frames])
        return frames, {**state, "reader": reader}

    def state_dict(self, state: dict) -> dict:
        return {"path": state["path"], "source_index": state["source_index"]}

    def load_state_dict(self, request: AnimationRequest, blob: dict) -> dict:
        return {"path": blob["path"], "source_index": np.asarray(blob["source_index"]), "request": request}
