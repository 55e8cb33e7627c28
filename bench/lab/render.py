"""Lab spec -> sample folder in the ``bench.sample/1`` layout, cached by the spec's content hash.

``LabClip`` renders frames in memory (chunk by chunk, prefix-stable); ``render_sample`` writes the folder
atomically: everything goes to a hidden temporary folder, ``sample.json`` is written last, and the folder
is renamed into place. A folder without a ``sample.json`` whose spec matches is never treated as done.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.errors import DataError
from bench.face_crop import CropReport, StreamingCropper
from bench.lab.background import render_background
from bench.lab.motion import _REST, A, Motion, generate_motion
from bench.lab.puppet import Appearance, Puppet, draw_appearance, pose_frames
from bench.lab.spec import LabSpec
from bench.pose_render import draw_pose
from bench.sample import SAMPLE_SCHEMA, FileSample, sha256_file

X_RANGE = 0.14  # how far the character walks from the centre, in frame heights
REFERENCE_VIEWS = (("front", 0.0), ("back", np.pi), ("side", np.pi / 2))


@dataclass
class LabChunk:
    """Frames ``[start, stop)`` of a clip: ``gt``/``pose`` (T, H, W, 3), ``face`` (T, S, S, 3), ``masks``
    (T, H, W) bool, keypoints ``body`` (T, 18, 3), ``face_points`` (T, 68, 3), ``face_boxes`` (T, 4)."""

    start: int
    gt: np.ndarray
    pose: np.ndarray
    face: np.ndarray
    masks: np.ndarray
    body: np.ndarray
    face_points: np.ndarray
    face_boxes: np.ndarray
    crop_report: CropReport  # cumulative over the clip so far


class LabClip:
    """One lab clip, deterministic from its spec. Render consecutive chunks with ``chunk(start, stop)``."""

    def __init__(self, spec: LabSpec):
        self.spec = spec
        g = spec.geometry
        self.height, self.width, self.face_size = g.height, g.width, g.face_size
        appearance_seq, background_seq, motion_seq = np.random.SeedSequence(spec.seed).spawn(3)
        self.appearance: Appearance = draw_appearance(np.random.default_rng(appearance_seq))
        self.background = render_background(np.random.default_rng(background_seq), self.height, self.width)
        self.motion: Motion = generate_motion(motion_seq, spec.n_frames, spec.fps, X_RANGE)
        self.puppet = Puppet(self.appearance, self.background)
        self.posed = pose_frames(self.appearance, self.motion.angles, self.motion.yaw, self.motion.root_x,
                                 self.height, self.width)
        self.cropper = StreamingCropper(self.face_size, self.height, self.width)

    def _draw(self, posed, indices) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n = len(indices)
        gt = np.empty((n, self.height, self.width, 3), np.uint8)
        masks = np.empty((n, self.height, self.width), bool)
        body = np.empty((n, 18, 3), np.float32)
        face = np.empty((n, 68, 3), np.float32)
        for j, i in enumerate(indices):
            gt[j], masks[j], body[j, :, 2], face[j, :, 2] = self.puppet.draw(posed, i)
        body[:, :, :2] = posed.body[indices]
        face[:, :, :2] = posed.face[indices]
        return gt, masks, body, face, posed

    def chunk(self, start: int, stop: int) -> LabChunk:
        if not 0 <= start < stop <= self.spec.n_frames:
            raise ValueError(f"frames [{start}, {stop}) outside 0..{self.spec.n_frames}")
        gt, masks, body, face, _ = self._draw(self.posed, np.arange(start, stop))
        pose = draw_pose(body, face, self.height, self.width)
        crops, boxes = self.cropper(gt, body, face)
        report = self.cropper.report
        return LabChunk(start, gt, pose, crops, masks, body, face, boxes.astype(np.float32), report)

    def references(self) -> list[tuple[str, np.ndarray]]:
        """Canonical reference (front, relaxed pose, centred) plus back and side views."""
        n = len(REFERENCE_VIEWS)
        angles = np.tile(_REST, (n, 1))
        angles[:, A["r_sho_abd"]] = angles[:, A["l_sho_abd"]] = 0.35
        angles[:, A["r_elb_abd"]] = angles[:, A["l_elb_abd"]] = 0.25
        yaw = np.array([v for _, v in REFERENCE_VIEWS])
        posed = pose_frames(self.appearance, angles, yaw, np.full(n, 0.5), self.height, self.width)
        gt, *_ = self._draw(posed, np.arange(n))
        return [(name, gt[k]) for k, (name, _) in enumerate(REFERENCE_VIEWS)]


def render_frames(spec: LabSpec, start: int = 0, stop: int | None = None) -> LabChunk:
    """All products of frames ``[start, stop)`` in memory (tests, previews, benchmarks)."""
    clip = LabClip(spec)
    stop = spec.n_frames if stop is None else stop
    if start:
        clip.chunk(0, start)  # crop-box carry-over makes frames depend on earlier ones
    return clip.chunk(start, stop)


def pixel_sha256(spec: LabSpec, progress: bool = False) -> str:
    """The hash ``render_sample`` records as ``source.pixel_sha256``, computed without writing any file."""
    from tqdm import tqdm

    clip = LabClip(spec)
    digest = hashlib.sha256()
    keypoints = {"body": [], "face": [], "face_boxes": []}
    with tqdm(total=spec.n_frames, desc=f"hash {spec.key}", unit="frame", disable=not progress, leave=False) as bar:
        for c in _chunks(clip):
            for frames in (c.gt, c.pose, c.face, _mask_rgb(c.masks)):
                digest.update(frames.tobytes())
            keypoints["body"].append(c.body), keypoints["face"].append(c.face_points)
            keypoints["face_boxes"].append(c.face_boxes)
            bar.update(len(c.gt))
    for key in ("body", "face", "face_boxes"):
        digest.update(np.ascontiguousarray(np.concatenate(keypoints[key])).tobytes())
    for _, image in clip.references():
        digest.update(image.tobytes())
    return digest.hexdigest()


def _chunks(clip: LabClip):
    h, w, n = clip.height, clip.width, clip.spec.n_frames
    step = max(8, min(250, 4_000_000 // (h * w)))
    for start in range(0, n, step):
        yield clip.chunk(start, min(n, start + step))


def _mask_rgb(masks: np.ndarray) -> np.ndarray:
    return np.repeat(masks[..., None].astype(np.uint8) * 255, 3, axis=-1)


def is_complete(folder: Path, spec: LabSpec) -> bool:
    meta = folder / "sample.json"
    if not meta.is_file():
        return False
    try:
        record = json.loads(meta.read_text())
    except (OSError, ValueError):
        return False
    if record.get("source", {}).get("spec") != spec.to_dict():
        return False
    files = record.get("files", {})
    paths = [files.get(k, {}).get("path") for k in ("gt", "pose", "face", "keypoints", "masks")]
    paths += [e.get("path") for e in files.get("refs", [])]
    return all(p and (folder / p).is_file() for p in paths)


def render_sample(spec: LabSpec, root: str | os.PathLike, sample_id: str | None = None, progress: bool = True,
                  expected_pixel_sha256: str | None = None) -> FileSample:
    """Render ``spec`` into ``root/<spec.key>/`` (or reuse it when complete) and load it as a ``FileSample``.

    With ``expected_pixel_sha256`` a fresh render is checked against the hash of its pixels and keypoints
    (catches renderer changes); a mismatch raises ``DataError`` and leaves nothing behind."""
    root = Path(root)
    folder = root / spec.key
    sample_id = sample_id or f"lab-s{spec.seed}"
    if is_complete(folder, spec):
        sample = FileSample.from_folder(folder)
        if sample.id != sample_id:
            sample.record["id"] = sample.id = sample_id
        return sample
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{spec.key}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        record = _write_sample(spec, tmp, sample_id, progress)
        pixel_hash = record["source"]["pixel_sha256"]
        if expected_pixel_sha256 and pixel_hash != expected_pixel_sha256:
            raise DataError(
                f"lab sample {sample_id} (seed {spec.seed}, {spec.size}, {spec.n_frames} frames): rendered pixels "
                f"hash {pixel_hash[:16]}... but the manifest expects {expected_pixel_sha256[:16]}...",
                fix="the lab renderer changed: bump LAB_VERSION in bench/lab/spec.py and regenerate the test "
                    "manifest (python -m bench lab manifest), or install the bench version the manifest was made with")
        if is_complete(folder, spec):
            pass  # another process finished first and may be reading it: keep its (identical) render
        else:
            if folder.exists():
                shutil.rmtree(folder)  # an incomplete or stale render
            try:
                os.replace(tmp, folder)
            except OSError:
                if not is_complete(folder, spec):  # another process finished first, or something is in the way
                    raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return FileSample.from_folder(folder)


def _write_sample(spec: LabSpec, folder: Path, sample_id: str, progress: bool) -> dict:
    from PIL import Image
    from tqdm import tqdm

    from bench.video import VideoWriter

    clip = LabClip(spec)
    h, w = clip.height, clip.width
    digest = hashlib.sha256()
    bodies, faces, boxes = [], [], []
    writers = {name: VideoWriter(folder / f"{name}.mp4", spec.fps) for name in ("gt", "pose", "face", "masks")}
    bar = tqdm(total=spec.n_frames, desc=f"lab {sample_id} {spec.size}", unit="frame", disable=not progress,
               leave=False)
    try:
        for c in _chunks(clip):
            for name, frames in (("gt", c.gt), ("pose", c.pose), ("face", c.face), ("masks", _mask_rgb(c.masks))):
                writers[name].write(frames)
                digest.update(frames.tobytes())
            bodies.append(c.body), faces.append(c.face_points), boxes.append(c.face_boxes)
            bar.update(len(c.gt))
        for writer in writers.values():
            writer.close()
    except BaseException:
        for writer in writers.values():
            try:
                writer.abort()
            except Exception:
                pass
        raise
    finally:
        bar.close()

    keypoints = {"body": np.concatenate(bodies), "face": np.concatenate(faces), "face_boxes": np.concatenate(boxes)}
    for key in ("body", "face", "face_boxes"):
        digest.update(np.ascontiguousarray(keypoints[key]).tobytes())
    np.savez(folder / "keypoints.npz", **keypoints)
    refs = []
    for k, (view, image) in enumerate(clip.references()):
        name = f"ref_{k:03d}.png"
        Image.fromarray(image).save(folder / name)
        digest.update(image.tobytes())
        refs.append({"path": name, "sha256": sha256_file(folder / name), "view": view})

    def entry(name):
        return {"path": name, "sha256": sha256_file(folder / name)}

    record = {
        "schema": SAMPLE_SCHEMA, "id": sample_id, "fps": spec.fps, "n_frames": spec.n_frames, "height": h,
        "width": w, "face_size": clip.face_size,
        "files": {"gt": entry("gt.mp4"), "pose": entry("pose.mp4"), "face": entry("face.mp4"), "refs": refs,
                  "keypoints": entry("keypoints.npz"), "masks": entry("masks.mp4")},
        "source": {"kind": "lab", "spec": spec.to_dict(), "spec_hash": spec.content_hash,
                   "pixel_sha256": digest.hexdigest(), "appearance": clip.appearance.__dict__,
                   "moves": [m.__dict__ for m in clip.motion.moves if m.start < spec.n_frames / spec.fps]},
        "adaptations": {"face_crop": clip.cropper.report.to_dict()},
    }
    tmp_meta = folder / "sample.json.partial"
    tmp_meta.write_text(json.dumps(record, indent=1, default=float))
    os.replace(tmp_meta, folder / "sample.json")
    return record
