"""Shared test fixtures: small synthetic samples written in the real on-disk sample layout."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.sample import SAMPLE_SCHEMA, FileSample, sha256_file
from bench.video import write_video


def synthetic_frames(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """A textured background with a moving square: deterministic, cheap, and not constant."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    frames = np.repeat(base[None], n, axis=0)
    for t in range(n):
        x = (t * 2) % max(1, w - 8)
        frames[t, 4:12, x:x + 8] = (255 - 3 * t % 256, 80, 40)
    return frames


def write_synthetic_sample(folder: Path, sample_id: str, n: int = 60, h: int = 32, w: int = 32, seed: int = 0,
                           fps: int = 25, n_refs: int = 1) -> FileSample:
    """``n_refs`` reference views (``ref_000.png`` = frame 0, then frames 10, 20, ...), as lab samples ship 3."""
    folder = Path(folder) / sample_id
    folder.mkdir(parents=True, exist_ok=True)
    gt = synthetic_frames(n, h, w, seed)
    pose = (gt // 4).astype(np.uint8)
    face = gt[:, 4:20, 4:20]
    write_video(folder / "gt.mp4", gt, fps)
    write_video(folder / "pose.mp4", pose, fps)
    write_video(folder / "face.mp4", face, fps)
    from PIL import Image

    for i in range(n_refs):
        Image.fromarray(gt[(10 * i) % n]).save(folder / f"ref_{i:03d}.png")
    boxes = np.tile(np.array([[4, 4, 20, 20]], np.float32), (n, 1))
    np.savez(folder / "keypoints.npz", body=np.zeros((n, 18, 3), np.float32), face=np.zeros((n, 68, 3), np.float32),
             face_boxes=boxes)
    files = {name: {"path": f"{name}.mp4", "sha256": sha256_file(folder / f"{name}.mp4")} for name in ("gt", "pose", "face")}
    files["refs"] = [{"path": f"ref_{i:03d}.png", "sha256": sha256_file(folder / f"ref_{i:03d}.png")}
                     for i in range(n_refs)]
    files["keypoints"] = {"path": "keypoints.npz", "sha256": sha256_file(folder / "keypoints.npz")}
    files["masks"] = None
    record = {"schema": SAMPLE_SCHEMA, "id": sample_id, "fps": fps, "n_frames": n, "height": h, "width": w,
              "face_size": 16, "files": files, "source": {"kind": "synthetic-test", "seed": seed}}
    (folder / "sample.json").write_text(json.dumps(record, indent=1))
    return FileSample.from_folder(folder)


def write_dataset(root: Path, n_samples: int = 2, **kwargs) -> Path:
    root = Path(root)
    for i in range(n_samples):
        write_synthetic_sample(root, f"s{i}", seed=i, **kwargs)
    return root
