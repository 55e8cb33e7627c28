"""Named datasets -> lists of samples. ``DATASETS`` is importable without torch.

- ``lab-test``: the lab test split from ``data_manifests/lab_test.jsonl``, rendered into the cache.
- ``lab-train``: the lab train split (``bench.lab.splits.TRAIN_CLIPS`` clips of 250 frames), rendered on demand.
- any path to a manifest JSONL: real samples (kind ``samples``) or lab specs (kind ``lab``).

Lab samples are cached under ``cache_root/lab/<spec key>/`` where the key contains the spec's content hash
(seed, size, frames, fps, renderer version): a spec change renders a new folder, an unchanged spec reuses
the complete folder (one with a matching ``sample.json``), and nothing half-written is ever reused.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path

from bench.errors import ConfigError, DataError
from bench.sample import Sample

DATASETS: dict[str, str] = {
    "lab-test": "lab test split: 4 procedural subjects x 90 s (2,250 frames) with exact ground truth; renders on a CPU",
    "lab-train": "lab train split: 256 procedural clips x 250 frames from seeds disjoint from the test split",
}


def default_cache_root() -> Path:
    return Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench"))


def _render_lab(records: list[tuple[str, object, dict]], cache_root: Path, progress: bool) -> list[Sample]:
    from tqdm import tqdm

    from bench.lab.render import render_sample

    out = []
    for sid, spec, expected in tqdm(records, desc="lab samples", unit="sample", disable=not progress or len(records) < 2):
        out.append(render_sample(spec, cache_root / "lab", sample_id=sid, progress=progress,
                                 expected_pixel_sha256=expected.get("pixel_sha256") if expected else None))
    return out


def _lab_record_spec(path: Path, record: dict):
    """The ``LabSpec`` of one lab manifest record, or a ``DataError`` naming the record."""
    from bench.lab.spec import LabSpec

    try:
        return LabSpec.from_dict(record["spec"])
    except (KeyError, TypeError) as exc:
        raise DataError(f"{path}: lab record {record.get('id', '?')} has no valid spec ({exc})",
                        fix="regenerate the manifest: python -m bench lab manifest") from exc


def _lab_manifest_samples(path: Path, n_frames: int | None, size: str, cache_root: Path, progress: bool):
    from bench.manifest import read_manifest

    manifest = read_manifest(path)
    records = []
    for record in manifest.records:
        spec = _lab_record_spec(path, record)
        # never past the manifest's length (its pinned hashes): longer runs pad the poses (--pose-padding)
        spec = spec.with_(size=size, n_frames=min(n_frames, spec.n_frames) if n_frames else spec.n_frames)
        expected = record.get("expected", {}).get(size)
        if expected and expected.get("n_frames") != spec.n_frames:
            expected = None  # the expected hash covers one length only
        records.append((record["id"], spec, expected))
    return _render_lab(records, cache_root, progress)


def _train_frames(n_frames: int | None) -> int:
    """A lab-train clip's length for a run needing ``n_frames``: the split's 250 frames, longer on request
    (a shorter duration scores a prefix of the clip, as on lab-test)."""
    from bench.lab.splits import TRAIN_FRAMES

    return max(n_frames or TRAIN_FRAMES, TRAIN_FRAMES)


def describe_dataset(name: str, size: str = "lab-64", n_frames: int | None = None) -> list[tuple[str, int, int]]:
    """``(sample id, frames, fps)`` of every sample of a dataset, without rendering or decoding anything
    (a fast check of ``--dataset``, ``--size``, ``--samples`` and ``--durations`` before a run starts).
    Lab manifests give their clips' pinned length; ``lab-train`` clips are 250 frames or ``n_frames`` if longer."""
    from bench.lab.spec import LAB_FPS, get_size

    path = Path(name)
    if path.is_dir():
        from bench.sample import FileSample

        folders = sorted(p.parent for p in path.glob("*/sample.json"))
        if not folders:
            raise DataError(f"{path} holds no sample folders (*/sample.json)", fix="point --dataset at rendered samples")
        return [(s.id, s.n_frames, s.fps) for s in map(FileSample.from_folder, folders)]
    if name == "lab-train":
        from bench.lab.splits import TRAIN_CLIPS

        get_size(size)
        return [(f"lab-train-{i:05d}", _train_frames(n_frames), LAB_FPS) for i in range(TRAIN_CLIPS)]
    if name == "lab-test":
        from data_manifests import LAB_TEST

        path = Path(LAB_TEST)
    elif not (path.suffix == ".jsonl" or path.is_file()):
        close = difflib.get_close_matches(name, list(DATASETS), n=3)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown dataset {name!r}{hint}",
                          fix=f"use one of {', '.join(DATASETS)}, a path to a manifest .jsonl file or a folder of "
                              "sample folders")
    from bench.manifest import load_manifest, read_manifest

    if not path.is_file():
        raise DataError(f"manifest not found: {path}", fix="check the path")
    manifest = read_manifest(path)
    if manifest.kind == "lab":
        get_size(size)
        out = []
        for record in manifest.records:
            spec = _lab_record_spec(path, record)
            out.append((record["id"], spec.n_frames, spec.fps))
        return out
    return [(s.id, s.n_frames, s.fps) for s in load_manifest(path)]


def load_dataset(name: str, *, n_frames: int | None, cache_root: str | os.PathLike | None = None,
                 size: str = "lab-64", progress: bool = True, allow_short: bool = False) -> list[Sample]:
    """Samples of a named dataset or manifest path. ``n_frames``: lab clips are rendered at this length
    (None = the split's length; never past a lab manifest's length); real samples must be at least this
    long unless ``allow_short`` (a run that pads the pose sequence)."""
    from bench.lab.spec import get_size

    cache_root = Path(cache_root) if cache_root is not None else default_cache_root()
    if n_frames is not None and n_frames < 1:
        raise ConfigError(f"n_frames must be positive, got {n_frames}", fix="pass e.g. --frames 250")
    if name == "lab-test":
        from data_manifests import LAB_TEST

        get_size(size)
        return _lab_manifest_samples(LAB_TEST, n_frames, size, cache_root, progress)
    if name == "lab-train":
        from bench.lab.splits import train_specs

        get_size(size)
        specs = train_specs(size=size, n_frames=_train_frames(n_frames))
        return _render_lab([(sid, spec, None) for sid, spec in specs], cache_root, progress)
    path = Path(name)
    if path.suffix == ".jsonl" or path.is_file():
        from bench.manifest import load_manifest, read_manifest

        if not path.is_file():
            raise DataError(f"manifest not found: {path}", fix="check the path")
        if read_manifest(path).kind == "lab":
            get_size(size)
            return _lab_manifest_samples(path, n_frames, size, cache_root, progress)
        samples = load_manifest(path)
        short = [s.id for s in samples if n_frames is not None and s.n_frames < n_frames and not allow_short]
        if short:
            raise DataError(f"{path}: samples shorter than the requested {n_frames} frames: {', '.join(short)}",
                            fix="ask for fewer frames or drop those samples from the manifest")
        return samples
    close = difflib.get_close_matches(name, list(DATASETS), n=3)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise ConfigError(f"unknown dataset {name!r}{hint}",
                      fix=f"use one of {', '.join(DATASETS)} or a path to a manifest .jsonl file")
