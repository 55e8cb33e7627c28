"""Manifests: versioned JSONL sample lists with the sha256 of every file and a fingerprint of the whole list.

Line 1 is a header ``{"schema": "bench.manifest/1", "kind": "samples" | "lab", "n_records": N,
"fingerprint": sha256, ...}``; every further line is one record: a ``bench.sample/1`` record (kind
``samples``: real data, paths relative to the manifest's folder) or a lab spec record (kind ``lab``:
``{"id", "spec": LabSpec fields, "expected": {"lab-64": {"n_frames", "pixel_sha256"}}}``). The fingerprint
is the sha256 of the records' canonical JSON lines, so any edit to a record is caught.

Builders turn real data into manifests: ``build_from_wan_layout`` (folders from Wan-Animate's preprocessing:
``src_pose.mp4``, ``src_face.mp4``, ``src_ref.png``, plus the ground-truth video) and
``build_from_raw_videos`` (a person detector + whole-body pose estimator via onnxruntime).
``validate_manifest`` reports every problem of a manifest at once; ``python -m bench validate`` prints them.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from bench.errors import BenchError, DataError, os_reason
from bench.sample import SAMPLE_SCHEMA, FileSample, sha256_file

MANIFEST_SCHEMA = "bench.manifest/1"
KINDS = ("samples", "lab")
WAN_FILES = {"pose": "src_pose.mp4", "face": "src_face.mp4", "ref": "src_ref.png"}
KEYPOINT_THRESHOLD = 0.3


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest: which sample and field, what, and how to fix it."""

    sample: str
    field: str
    message: str
    fix: str
    severity: str = "error"  # "error" fails validation, "warning" does not

    def __str__(self) -> str:
        return f"[{self.severity}] {self.sample} / {self.field}: {self.message}\n    fix: {self.fix}"


@dataclass
class Manifest:
    path: Path
    header: dict[str, Any]
    records: list[dict[str, Any]]
    problems: list[Problem] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.header.get("kind", "samples")

    @property
    def base(self) -> Path:
        return self.path.parent


def canonical_line(record: dict) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def fingerprint(records: Iterable[dict]) -> str:
    h = hashlib.sha256()
    for record in records:
        h.update(canonical_line(record).encode())
        h.update(b"\n")
    return h.hexdigest()


def write_manifest(path: str | os.PathLike, records: Sequence[dict], kind: str = "samples", validate: bool = False,
                   **meta: Any) -> Path:
    """Write atomically (``.partial`` + rename): a header line, then one canonical JSON line per record.
    ``validate``: check the written file (``validate_manifest``) before the rename; errors leave nothing
    behind and raise one ``DataError`` listing them."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"schema": MANIFEST_SCHEMA, "kind": kind, "n_records": len(records), "fingerprint": fingerprint(records),
              **meta}
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w") as f:
        f.write(json.dumps(header, sort_keys=True) + "\n")
        for record in records:
            f.write(canonical_line(record) + "\n")
    if validate:
        errors = [p for p in validate_manifest(tmp) if p.severity == "error"]
        if errors:
            tmp.unlink()
            raise _problems_error(f"the manifest built for {path} does not validate", errors,
                                  "fix the inputs named above and build again; nothing was written")
    os.replace(tmp, path)
    return path


def read_manifest(path: str | os.PathLike, strict: bool = True) -> Manifest:
    """Parse a manifest. ``strict``: raise ``DataError`` listing every structural problem; otherwise return
    them in ``Manifest.problems`` together with the records that did parse."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise DataError(f"manifest not found: {path}", fix="check the path (manifests live in data_manifests/)")
    problems: list[Problem] = []
    header: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read manifest {path} ({os_reason(exc) if isinstance(exc, OSError) else exc})",
                        fix="re-create the manifest") from exc
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
        except ValueError as exc:
            where = "header" if lineno == 1 else f"line {lineno}"
            problems.append(Problem(f"{name}:{lineno}", where, f"malformed JSON: {exc}",
                                    "fix or remove the line; rebuild the manifest with its builder"))
            continue
        if lineno == 1 and not (obj.get("schema") != MANIFEST_SCHEMA and ("files" in obj or obj.get("schema") == SAMPLE_SCHEMA)):
            header = obj
        else:  # a record (also a first line that is a record: the header is missing, its files still get checked)
            obj.setdefault("_line", lineno)
            records.append(obj)
    if header.get("schema") != MANIFEST_SCHEMA:
        problems.append(Problem(name, "header", f"first line is not a {MANIFEST_SCHEMA} header "
                                f"(schema {header.get('schema')!r})",
                                "rebuild the manifest with this version of bench (its builders write the header)"))
    elif header.get("kind", "samples") not in KINDS:
        problems.append(Problem(name, "header", f"unknown manifest kind {header.get('kind')!r}",
                                f"use one of {KINDS}"))
    clean = [{k: v for k, v in r.items() if k != "_line"} for r in records]
    if header.get("schema") == MANIFEST_SCHEMA:
        n_lines = sum(1 for ln in lines[1:] if ln.strip())
        if header.get("n_records") != n_lines:
            problems.append(Problem(name, "header", f"header says {header.get('n_records')} records, the file has "
                                    f"{n_lines} record lines", "the manifest was truncated or edited; rebuild it"))
        elif not any(p.field.startswith("line") for p in problems) and header.get("fingerprint") != fingerprint(clean):
            problems.append(Problem(name, "fingerprint", "records do not match the header's fingerprint "
                                    "(edited by hand or corrupted)", "rebuild the manifest with its builder"))
    ids = [r.get("id") for r in clean]
    for dup in sorted({i for i in ids if i is not None and ids.count(i) > 1}):
        problems.append(Problem(str(dup), "id", "duplicate sample id", "give every record a unique id"))
    for r, raw in zip(clean, records):
        if "id" not in r:
            problems.append(Problem(f"{name}:{raw['_line']}", "id", "record has no id", "rebuild the manifest"))
    manifest = Manifest(path, header, clean, problems)
    if strict and problems:
        raise DataError(f"manifest {path} has {len(problems)} problem(s):\n" + "\n".join(map(str, problems)),
                        fix=f"run `python -m bench validate {path}` and rebuild the manifest")
    return manifest


def load_manifest(path: str | os.PathLike) -> list[FileSample]:
    """The samples of a ``samples`` manifest (paths resolved against the manifest's folder)."""
    manifest = read_manifest(path)
    if manifest.kind != "samples":
        raise DataError(f"{path} is a {manifest.kind} manifest, not a list of sample files",
                        fix="load it with bench.datasets.load_dataset(path, cache_root=...) which renders lab specs")
    return [FileSample(record, manifest.base) for record in manifest.records]


# ----------------------------------------------------------------------------------------------- validation

def validate_manifest(path: str | os.PathLike, decode: bool = True) -> list[Problem]:
    """Every problem of a manifest at once (empty list = valid). ``decode``: fully decode each video."""
    try:
        manifest = read_manifest(path, strict=False)
    except DataError as exc:
        return [Problem(Path(path).name, "manifest", exc.message, exc.fix or "")]
    problems = list(manifest.problems)
    for record in manifest.records:
        if manifest.kind == "lab":
            problems += _validate_lab_record(record)
        else:
            problems += validate_record(record, manifest.base, decode=decode)
    return problems


def _validate_lab_record(record: dict) -> list[Problem]:
    from bench.lab.spec import LabSpec

    sid = str(record.get("id", "?"))
    try:
        LabSpec.from_dict(record.get("spec", {}))
    except (BenchError, TypeError) as exc:
        return [Problem(sid, "spec", str(exc).splitlines()[0], "regenerate the lab manifest: python -m bench lab manifest")]
    return []


def validate_record(record: dict, base: Path, decode: bool = True) -> list[Problem]:
    """Problems of one ``bench.sample/1`` record: files, hashes, decoding, geometry, keypoints."""
    from PIL import Image

    from bench.video import VideoReader, probe

    sid = str(record.get("id", "?"))
    out: list[Problem] = []

    def problem(field_name, message, fix, severity="error"):
        out.append(Problem(sid, field_name, message, fix, severity))

    # a wrong schema or missing fields are reported, and the files are still checked (every problem at once)
    if record.get("schema") != SAMPLE_SCHEMA:
        problem("schema", f"schema {record.get('schema')!r} is not {SAMPLE_SCHEMA!r}",
                f"set \"schema\": \"{SAMPLE_SCHEMA}\" (docs/data.md) or rebuild the manifest")
    missing = [k for k in ("id", "fps", "n_frames", "height", "width", "files") if k not in record]
    if missing:
        problem("record", f"missing fields {missing}", "add them (docs/data.md lists every field) or rebuild the manifest")
    files = record.get("files")
    if not isinstance(files, dict):
        if "files" in record:
            problem("files", "'files' is not an object", "rebuild the manifest")
        return out
    fps, n, h, w = (record.get(k) for k in ("fps", "n_frames", "height", "width"))
    face_size = record.get("face_size")

    def resolve(entry) -> Path:
        p = Path(entry["path"])
        return p if p.is_absolute() else base / p

    def check_file(field_name, entry) -> Path | None:
        if not isinstance(entry, dict) or "path" not in entry:
            problem(field_name, "no file entry with a 'path'", "rebuild the manifest")
            return None
        p = resolve(entry)
        if not p.is_file():
            problem(field_name, f"file missing: {p}", "restore the file or rebuild the manifest")
            return None
        if entry.get("sha256") and sha256_file(p) != entry["sha256"]:
            problem(field_name, f"sha256 mismatch for {p} (file changed since the manifest was built)",
                    "restore the original file, or rebuild the manifest if the change is intended")
        elif not entry.get("sha256"):
            problem(field_name, f"no sha256 recorded for {p}", "rebuild the manifest", "warning")
        return p

    lengths: dict[str, int] = {}
    for name in ("gt", "pose", "face", "masks"):
        entry = files.get(name)
        if entry is None:
            if name != "masks":
                problem(name, "required video missing from the record", "rebuild the manifest")
            continue
        p = check_file(name, entry)
        if p is None:
            continue
        try:
            info = probe(p)
        except BenchError as exc:
            problem(name, f"unreadable video {p}: {exc.message}", "re-create the file")
            continue
        lengths[name] = info.n_frames
        if fps is not None and abs(info.fps - fps) > 1e-3:
            problem(name, f"{p.name} is {info.fps:g} fps, the record says {fps}",
                    f"resample the video to {fps} fps (e.g. ffmpeg -i in.mp4 -r {fps} out.mp4) and rebuild")
        want = (face_size, face_size) if name == "face" else (h, w)
        if name == "face" and face_size is None:
            if info.width != info.height:
                problem(name, f"face crops are {info.width}x{info.height}, not square", "re-create the face video")
        elif None not in want and (info.height, info.width) != want:
            problem(name, f"{p.name} is {info.width}x{info.height} (WxH), the record says {want[1]}x{want[0]}",
                    "resize the video to the sample size (recording the resize) or fix the record")
        if n is not None and info.n_frames != n:
            problem(name, f"{p.name} has {info.n_frames} frames, the record says {n}",
                    "the file is truncated or the record is wrong; re-create the file or rebuild the manifest")
        if decode and info.n_frames:
            try:
                with VideoReader(p) as reader:
                    for _ in reader.iter_chunks(0, info.n_frames, 256):
                        pass
            except BenchError as exc:
                problem(name, f"decoding failed: {exc.message}", "the file is corrupt or truncated; re-create it")
    if len(set(lengths.values())) > 1:
        problem("lengths", "video lengths disagree: " + ", ".join(f"{k}={v}" for k, v in lengths.items()),
                "pose, face and ground truth must have the same number of frames; rebuild the sample")

    refs = files.get("refs")
    if not refs:
        problem("refs", "no reference image", "add at least the canonical reference image (ref_000.png)")
    for i, entry in enumerate(refs or []):
        p = check_file(f"refs[{i}]", entry)
        if p is None:
            continue
        try:
            with Image.open(p) as im:
                im.load()
                size = im.size
        except Exception as exc:
            problem(f"refs[{i}]", f"cannot decode image {p}: {exc}", "re-create the reference image")
            continue
        if None not in (w, h) and size != (w, h):
            problem(f"refs[{i}]", f"reference is {size[0]}x{size[1]} (WxH), the sample is {w}x{h}",
                    "resize the reference to the sample size (the builders do this and record it)")

    entry = files.get("keypoints")
    if entry is None:
        problem("keypoints", "no keypoints file (F-PSNR falls back to a face detector)",
                "build the manifest with a pose estimator to add keypoints", "warning")
    else:
        p = check_file("keypoints", entry)
        if p is not None and None not in (n, h, w):
            out += _validate_keypoints(sid, p, n, h, w)
    return out


def _validate_keypoints(sid: str, path: Path, n: int, h: int, w: int) -> list[Problem]:
    out: list[Problem] = []
    fix = "re-run the pose estimator / rebuild the sample"
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:
        return [Problem(sid, "keypoints", f"cannot read {path}: {exc}", "re-create the keypoints file")]
    shapes = {"body": (n, 18, 3), "face": None, "face_boxes": (n, 4)}
    for key, shape in shapes.items():
        if key not in arrays:
            out.append(Problem(sid, f"keypoints.{key}", f"array {key!r} missing from {path.name}", fix))
            continue
        a = arrays[key]
        if shape is not None and a.shape != shape:
            out.append(Problem(sid, f"keypoints.{key}", f"shape {a.shape}, expected {shape}", fix))
        elif key == "face" and (a.ndim != 3 or a.shape[0] != n or a.shape[2] != 3):
            out.append(Problem(sid, "keypoints.face", f"shape {a.shape}, expected ({n}, F, 3)", fix))
    for key in ("body", "face"):
        a = arrays.get(key)
        if a is None or a.ndim != 3 or a.shape[-1] != 3 or not a.shape[1]:
            continue
        confident = a[..., 2] >= KEYPOINT_THRESHOLD
        nan = confident & ~(np.isfinite(a[..., 0]) & np.isfinite(a[..., 1]))
        if nan.any():
            t = int(np.argwhere(nan)[0][0])
            out.append(Problem(sid, f"keypoints.{key}", f"{int(nan.sum())} confident points have NaN coordinates "
                               f"(first at frame {t})", "set their confidence to 0 or re-run the pose estimator"))
        x, y = np.nan_to_num(a[..., 0]), np.nan_to_num(a[..., 1])
        outside = confident & ((x < 0) | (x >= w) | (y < 0) | (y >= h))
        if outside.any():
            t, k = (int(v) for v in np.argwhere(outside)[0])
            out.append(Problem(sid, f"keypoints.{key}", f"{int(outside.sum())} confident points lie outside the "
                               f"{w}x{h} frame (first: frame {t}, point {k} at {a[t, k, 0]:.1f},{a[t, k, 1]:.1f})",
                               "set the confidence of out-of-frame points to 0 (the builders do) or fix the coordinates"))
        if key == "body":
            empty = ~confident.any(1)
            if empty.any():
                t = int(np.flatnonzero(empty)[0])
                out.append(Problem(sid, "keypoints.body", f"{int(empty.sum())} frames have no body keypoints "
                                   f"(first: frame {t})", "trim those frames or re-run the pose estimator", "warning"))
    return out


def add_validate_arguments(parser) -> None:
    parser.add_argument("manifest", help="manifest JSONL file to check")
    parser.add_argument("--quick", action="store_true", help="probe videos without decoding every frame")


def validate_main(args) -> int:
    problems = validate_manifest(args.manifest, decode=not getattr(args, "quick", False))
    errors = [p for p in problems if p.severity == "error"]
    for p in problems:
        print(p)
    print(f"{args.manifest}: {len(errors)} error(s), {len(problems) - len(errors)} warning(s)")
    return 1 if errors else 0


# ------------------------------------------------------------------------------------------------- builders

def _rel(path: Path, base: Path) -> str:
    path, base = Path(os.path.abspath(path)), Path(os.path.abspath(base))
    try:
        return os.path.relpath(path, base)
    except ValueError:  # another drive on Windows
        return str(path)


def _entry(path: Path, base: Path, at: Path | None = None, **extra) -> dict:
    """A file entry: ``path`` hashed, recorded at ``at`` (where it will be moved) or at ``path``."""
    return {"path": _rel(at if at is not None else path, base), "sha256": sha256_file(path), **extra}


def _reference_at_size(src: Path, dst: Path, width: int, height: int) -> tuple[Path, dict | None]:
    """The reference image at the sample size; a resize is written to ``dst`` (temp + rename) and described
    (never silent)."""
    from PIL import Image

    try:
        with Image.open(src) as im:
            im = im.convert("RGB")
            size = im.size
            if size == (width, height):
                return src, None
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.partial.png")
            im.resize((width, height), Image.Resampling.LANCZOS).save(tmp)
            os.replace(tmp, dst)
    except OSError as exc:
        raise DataError(f"cannot read reference image {src} ({os_reason(exc)})", fix="re-create the image") from exc
    return dst, {"reference_resize": {"from": list(size), "to": [width, height], "filter": "lanczos",
                                      "aspect_changed": abs(size[0] / size[1] - width / height) > 1e-3}}


def _problems_error(what: str, problems: Sequence[Problem], fix: str) -> DataError:
    """One error listing every problem (sample, file, message, fix), so nothing is fixed one run at a time."""
    lines = [f"  {p.sample}: {p.message}\n      fix: {p.fix}" for p in problems]
    return DataError(f"{what}: {len(problems)} problem(s):\n" + "\n".join(lines), fix=fix)


def _bar(total: int, desc: str, progress: bool, unit: str = "clip"):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, leave=False)


def check_wan_folder(sid: str, folder: Path, gt: Path | None, fps: int = 25) -> tuple[dict | None, list[Problem]]:
    """Every problem of one Wan-Animate preprocessed folder and its ground truth, each naming the file and
    the fix; the probed geometry when there is none."""
    from PIL import Image

    from bench.video import probe

    problems: list[Problem] = []

    def problem(name, message, fix):
        problems.append(Problem(sid, name, message, fix))

    rerun = (f"re-run Wan-Animate's preprocessing on this clip's {fps} fps ground-truth video (it writes "
             f"{', '.join(WAN_FILES.values())} into one folder)")
    if not folder.is_dir():
        problem("folder", f"{folder} is not a folder", f"pass Wan-Animate preprocessing output folders; {rerun}")
        return None, problems
    paths = {k: folder / v for k, v in WAN_FILES.items()}
    for k, p in paths.items():
        if not p.is_file():
            problem(k, f"missing {p}", rerun)
    if gt is None or not gt.is_file():
        problem("gt", f"ground-truth video missing: {gt if gt is not None else '(none given)'}",
                "pass the clip's ground-truth (driving) video with --gt (same order as the folders) or --gt-dir "
                f"DIR holding {sid}.mp4")
    else:
        paths["gt"] = gt
    infos = {}
    for k in ("gt", "pose", "face"):
        p = paths.get(k)
        if p is None or not p.is_file():
            continue
        try:
            infos[k] = probe(p)
        except BenchError as exc:
            problem(k, f"unreadable video {p}: {exc.message}", f"re-create it ({rerun})" if k != "gt" else
                    "re-export the ground-truth video (H.264/FFV1 mp4 that PyAV decodes)")
            continue
        if infos[k].n_frames == 0:
            problem(k, f"{p} has no frames", "re-create the file")
        if abs(infos[k].fps - fps) > 1e-3:
            problem(k, f"{p} is {infos[k].fps:g} fps; the benchmark runs at {fps} fps",
                    f"resample the ground truth first (ffmpeg -i GT.mp4 -r {fps} GT_{fps}fps.mp4), then "
                    + ("use it here" if k == "gt" else "re-run the preprocessing on it"))
    if paths["ref"].is_file():
        try:
            with Image.open(paths["ref"]) as im:
                im.load()
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for a bad image
            problem("ref", f"cannot decode image {paths['ref']}: {exc}", f"re-create it ({rerun})")
    g, po, fa = infos.get("gt"), infos.get("pose"), infos.get("face")
    if g and po and (g.width, g.height) != (po.width, po.height):
        problem("pose", f"{paths['pose']} is {po.width}x{po.height} but the ground truth {gt} is {g.width}x{g.height}",
                f"re-run the preprocessing at the ground truth's size, or resize the ground truth to "
                f"{po.width}x{po.height} (ffmpeg -i GT.mp4 -vf scale={po.width}:{po.height} ...)")
    for k, info in (("pose", po), ("face", fa)):
        if g and info and info.n_frames != g.n_frames:
            shorter = info.n_frames < g.n_frames
            problem(k, f"frame counts differ: {paths[k]} has {info.n_frames} frames, "
                       f"{'shorter' if shorter else 'longer'} than the ground truth {gt} ({g.n_frames} frames)",
                    (f"re-run the preprocessing on the whole ground-truth video, or trim the ground truth to its "
                     f"first {info.n_frames} frames (ffmpeg -i GT.mp4 -frames:v {info.n_frames} -c:v libx264 "
                     f"-crf 0 GT_trim.mp4)") if shorter else
                    "the preprocessing ran on a longer video than this ground truth: pass the matching ground truth "
                    "or re-run the preprocessing on this one")
    if fa and fa.width != fa.height:
        problem("face", f"{paths['face']} is {fa.width}x{fa.height}, not square", f"re-create it ({rerun})")
    if problems:
        return None, problems
    return {"paths": paths, "gt": g, "pose": po, "face": fa}, []


def _duplicate_ids(ids: list[str], fix: str) -> list[Problem]:
    """One ``Problem`` per sample id used more than once."""
    return [Problem(str(i), "id", f"sample id {i!r} is used {ids.count(i)} times", fix)
            for i in sorted(set(ids)) if ids.count(i) > 1]


def build_from_wan_layout(folders: Sequence[str | os.PathLike], gt_videos: Sequence[str | os.PathLike],
                          out: str | os.PathLike, ids: Sequence[str] | None = None, fps: int = 25,
                          progress: bool = False, validate: bool = False) -> Path:
    """Manifest ``out`` (a .jsonl path) for Wan-Animate preprocessed folders (``src_pose.mp4``,
    ``src_face.mp4``, ``src_ref.png``) with their ground-truth videos. Files are referenced in place (paths
    relative to the manifest); a reference image of another size is resized into ``<out dir>/<id>/`` and
    the resize recorded. Every problem of every folder is reported at once (one ``DataError``) and nothing
    is written then; ``validate``: the manifest is validated before it replaces ``out``."""
    out = Path(out)
    base = out.parent
    folders, gt_videos = [Path(f) for f in folders], [Path(g) for g in gt_videos]
    if len(folders) != len(gt_videos):
        raise DataError(f"{len(folders)} folders but {len(gt_videos)} ground-truth videos",
                        fix="pass one ground-truth video per preprocessed folder, in the same order")
    ids = list(ids) if ids is not None else [f.name for f in folders]
    if len(ids) != len(folders):
        raise DataError(f"{len(ids)} ids for {len(folders)} folders", fix="pass one id per folder, or none")
    problems = _duplicate_ids(ids, "give every clip a unique id (--ids, or distinct folder names)")
    checked = []
    bar = _bar(len(folders), "check clips", progress)
    for sid, folder, gt in zip(ids, folders, gt_videos):
        info, found = check_wan_folder(sid, folder, gt, fps)
        problems += found
        checked.append(info)
        bar.update(1)
    bar.close()
    if problems:
        raise _problems_error(f"cannot build {out}", problems,
                              "fix those clips (or leave them out) and run the same command again; nothing was "
                              "written")
    records = []
    bar = _bar(len(folders), "hash files", progress)
    for sid, folder, gt, info in zip(ids, folders, gt_videos, checked):
        paths, gt_i, pose_i, face_i = info["paths"], info["gt"], info["pose"], info["face"]
        ref, adaptation = _reference_at_size(paths["ref"], base / sid / "ref_000.png", pose_i.width, pose_i.height)
        records.append({
            "schema": SAMPLE_SCHEMA, "id": sid, "fps": int(round(gt_i.fps)), "n_frames": gt_i.n_frames,
            "height": gt_i.height, "width": gt_i.width, "face_size": face_i.width,
            "files": {"gt": _entry(gt, base), "pose": _entry(paths["pose"], base), "face": _entry(paths["face"], base),
                      "refs": [_entry(ref, base, view="reference")], "keypoints": None, "masks": None},
            "source": {"kind": "wan_layout", "folder": _rel(folder, base)},
            "adaptations": adaptation or {},
        })
        bar.update(1)
    bar.close()
    return write_manifest(out, records, kind="samples", validate=validate, created_by="build_from_wan_layout")


def export_wan_layout(sample: FileSample, folder: str | os.PathLike) -> Path:
    """Copy a sample's pose, face and canonical reference into Wan-Animate's layout (``src_pose.mp4``,
    ``src_face.mp4``, ``src_ref.png``), e.g. to run the official preprocessing-free path on lab data."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sample.path("pose"), folder / WAN_FILES["pose"])
    shutil.copyfile(sample.path("face"), folder / WAN_FILES["face"])
    shutil.copyfile(sample.path("refs", 0), folder / WAN_FILES["ref"])
    return folder


def build_from_raw_videos(videos: Sequence[str | os.PathLike], detector_onnx: str | os.PathLike,
                          pose_onnx: str | os.PathLike, out: str | os.PathLike, ids: Sequence[str] | None = None,
                          face_size: int = 512, detector_sha256: str | None = None, pose_sha256: str | None = None,
                          progress: bool = True, chunk: int = 64, fps: int = 25, validate: bool = False) -> Path:
    """Samples from raw 25 fps videos through a real pose estimator (onnxruntime): per video a folder
    ``<out dir>/<id>/`` with pose.mp4 (shared renderer), face.mp4 (shared face crops), ref_000.png (first
    frame), keypoints.npz; the ground truth is referenced in place. Writes the manifest ``out``.

    Every input problem (missing or unreadable video, wrong fps, empty, duplicate id) is reported at once
    before any model runs; the models are checked on load (a detector or pose file that does not fit its
    contract is an error naming the file). Sample folders are built in a staging folder and moved into
    place only when every video succeeded; the manifest is written last, atomically."""
    from PIL import Image

    from bench.face_crop import StreamingCropper
    from bench.pose_estimation import WholeBodyEstimator
    from bench.pose_render import draw_pose
    from bench.video import VideoReader, VideoWriter, probe

    out = Path(out)
    base = out.parent
    videos = [Path(v) for v in videos]
    ids = list(ids) if ids is not None else [v.stem for v in videos]
    if len(ids) != len(videos):
        raise DataError(f"{len(ids)} ids for {len(videos)} videos", fix="pass one id per video, or none")
    problems = _duplicate_ids(ids, "pass distinct --ids or rename the videos")
    infos = {}
    for sid, video in zip(ids, videos):
        if not video.is_file():
            problems.append(Problem(sid, "gt", f"video not found: {video}", "check the path"))
            continue
        try:
            info = probe(video)
        except BenchError as exc:
            problems.append(Problem(sid, "gt", f"unreadable video {video}: {exc.message}",
                                    "re-export it as an mp4 that PyAV decodes (H.264 or FFV1)"))
            continue
        if abs(info.fps - fps) > 1e-3:
            problems.append(Problem(sid, "gt", f"{video} is {info.fps:g} fps; the benchmark runs at {fps} fps",
                                    f"resample first: ffmpeg -i {video} -r {fps} {video.stem}_{fps}fps.mp4"))
        if info.n_frames == 0:
            problems.append(Problem(sid, "gt", f"{video} has no frames", "pass a non-empty video"))
        infos[sid] = info
    if problems:
        raise _problems_error(f"cannot build {out}", problems,
                              "fix those videos (or leave them out) and run the same command again; nothing was "
                              "written")
    estimator = WholeBodyEstimator(detector_onnx, pose_onnx, detector_sha256=detector_sha256,
                                   pose_sha256=pose_sha256)
    staging = base / f".{out.stem}.building-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    records = []
    try:
        for sid, video in zip(ids, videos):
            info = infos[sid]
            tmp = staging / sid
            tmp.mkdir()
            h, w = info.height, info.width
            cropper = StreamingCropper(face_size, h, w)
            bodies, faces, boxes = [], [], []
            zeroed = 0
            with VideoReader(video) as reader, VideoWriter(tmp / "pose.mp4", fps) as pose_w, \
                    VideoWriter(tmp / "face.mp4", fps) as face_w:
                bar = _bar(info.n_frames, f"pose {sid}", progress, unit="frame")
                for frames in reader.iter_chunks(0, info.n_frames, chunk):
                    if bodies == []:
                        Image.fromarray(frames[0]).save(tmp / "ref_000.png")
                    body, face = estimator.estimate_frames(frames)
                    zeroed += _zero_out_of_frame(body, h, w) + _zero_out_of_frame(face, h, w)
                    pose_w.write(draw_pose(body, face, h, w))
                    crops, fb = cropper(frames, body, face)
                    face_w.write(crops)
                    bodies.append(body), faces.append(face), boxes.append(fb)
                    bar.update(len(frames))
                bar.close()
            np.savez(tmp / "keypoints.npz", body=np.concatenate(bodies).astype(np.float32),
                     face=np.concatenate(faces).astype(np.float32),
                     face_boxes=np.concatenate(boxes).astype(np.float32))
            folder = base / sid
            records.append({
                "schema": SAMPLE_SCHEMA, "id": sid, "fps": fps, "n_frames": info.n_frames, "height": h, "width": w,
                "face_size": face_size,
                "files": {"gt": _entry(video, base), "pose": _entry(tmp / "pose.mp4", base, at=folder / "pose.mp4"),
                          "face": _entry(tmp / "face.mp4", base, at=folder / "face.mp4"),
                          "refs": [_entry(tmp / "ref_000.png", base, at=folder / "ref_000.png", view="first_frame")],
                          "keypoints": _entry(tmp / "keypoints.npz", base, at=folder / "keypoints.npz"), "masks": None},
                "source": {"kind": "raw_video", "video": _rel(video, base), "estimator": estimator.describe()},
                "adaptations": {"face_crop": cropper.report.to_dict(), "keypoints_zeroed_out_of_frame": zeroed},
            })
        for sid in ids:  # every video succeeded: move the sample folders into place
            folder = base / sid
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(staging / sid, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return write_manifest(out, records, kind="samples", validate=validate, created_by="build_from_raw_videos")


def _zero_out_of_frame(points: np.ndarray, h: int, w: int) -> int:
    """Set the confidence of points outside the frame to 0 (counted, so the builder can record it)."""
    if points.size == 0:
        return 0
    x, y = points[..., 0], points[..., 1]
    outside = (points[..., 2] > 0) & ~((x >= 0) & (x < w) & (y >= 0) & (y < h))
    points[..., 2][outside] = 0.0
    return int(outside.sum())


def sample_record(sample: FileSample, base: str | os.PathLike) -> dict:
    """A copy of ``sample``'s record with its file paths made relative to ``base`` (a manifest's folder), so
    samples rendered or built anywhere can be listed in one manifest."""
    import copy

    record = copy.deepcopy(sample.record)
    base = Path(base)
    for name, entry in record["files"].items():
        if isinstance(entry, list):
            for i, e in enumerate(entry):
                e["path"] = _rel(sample.path(name, i), base)
        elif entry is not None:
            entry["path"] = _rel(sample.path(name), base)
    return record


# ------------------------------------------------------------------------------------------ `bench manifest`

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov")


def add_manifest_arguments(parser) -> None:
    """``bench manifest from-wan`` / ``from-videos`` (docs/data.md)."""
    sub = parser.add_subparsers(dest="manifest_command", metavar="SOURCE")
    p = sub.add_parser("from-wan", help="Wan-Animate preprocessed folders (src_pose.mp4, src_face.mp4, src_ref.png) "
                                        "plus their ground-truth videos",
                       description="Build a bench.sample/1 manifest from folders written by Wan-Animate's "
                                   "preprocessing, each with src_pose.mp4, src_face.mp4 and src_ref.png, and the "
                                   "ground-truth (driving) video of each clip. Files are referenced in place; every "
                                   "problem of every clip is reported at once; the manifest is validated and only "
                                   "then written (atomically). See docs/data.md.")
    p.add_argument("folders", nargs="+", help="preprocessed folders, or a folder whose sub-folders are")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--gt", nargs="+", help="ground-truth videos, one per folder, in the same order")
    g.add_argument("--gt-dir", help="folder with one ground-truth video per clip, named <folder name>.mp4")
    p.add_argument("--ids", nargs="+", help="sample ids (default: the folder names)")
    p.add_argument("--out", required=True, help="manifest to write (.jsonl); paths in it are relative to its folder")
    p.add_argument("--fps", type=int, default=25, help="protocol frame rate every video must have (default 25)")
    p.add_argument("--quick", action="store_true", help="final validation probes videos without decoding every frame")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p = sub.add_parser("from-videos", help="raw 25 fps videos through a local ONNX person detector and pose estimator",
                       description="Build a bench.sample/1 manifest from raw videos: a person detector and a "
                                   "whole-body pose estimator (local ONNX files, onnxruntime) give keypoints; pose "
                                   "maps, face crops and the first frame as reference are written to "
                                   "<out folder>/<id>/. Input problems are reported at once before any model "
                                   "runs; the manifest is validated and only then written. See docs/data.md.")
    p.add_argument("videos", nargs="+", help="ground-truth videos (25 fps)")
    p.add_argument("--detector", required=True, help="person detector ONNX (e.g. Wan-Animate's yolov10m.onnx)")
    p.add_argument("--pose", required=True, help="whole-body pose ONNX (e.g. vitpose_h_wholebody.onnx, DWPose)")
    p.add_argument("--detector-sha256", help="expected sha256 of the detector file")
    p.add_argument("--pose-sha256", help="expected sha256 of the pose file")
    p.add_argument("--ids", nargs="+", help="sample ids (default: the video file names)")
    p.add_argument("--face-size", type=int, default=512, help="face crop size (default 512, as Wan-Animate)")
    p.add_argument("--out", required=True, help="manifest to write (.jsonl); sample folders go beside it")
    p.add_argument("--quick", action="store_true", help="final validation probes videos without decoding every frame")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _wan_folders(paths: Sequence[str]) -> list[Path]:
    """The preprocessed folders: each path itself, or (when it holds none of Wan's files) its sub-folders
    that do."""
    out = []
    for p in map(Path, paths):
        if p.is_dir() and not any((p / f).exists() for f in WAN_FILES.values()):
            subs = sorted(d for d in p.iterdir() if d.is_dir() and any((d / f).exists() for f in WAN_FILES.values()))
            if subs:
                out += subs
                continue
        out.append(p)
    return out


def _gt_in_dir(folder: Path, name: str) -> Path:
    for ext in VIDEO_EXTENSIONS:
        if (folder / f"{name}{ext}").is_file():
            return folder / f"{name}{ext}"
    return folder / f"{name}.mp4"  # reported as missing by the checks


def manifest_main(args) -> int:
    """Build into a temporary manifest beside ``--out``, validate it, print every problem, and move it to
    ``--out`` only when it has no error (exit 1 otherwise, nothing written)."""
    if not getattr(args, "manifest_command", None):
        raise DataError("bench manifest needs a source", fix="python -m bench manifest from-wan --help, or from-videos")
    out = Path(args.out)
    if out.suffix != ".jsonl":
        raise DataError(f"--out {out} is not a .jsonl file", fix=f"name the manifest e.g. {out.with_suffix('.jsonl')}")
    progress = not args.no_progress
    building = out.with_name(f".{out.name}.building.jsonl")
    try:
        if args.manifest_command == "from-wan":
            folders = _wan_folders(args.folders)
            if args.gt:
                gts = [Path(g) for g in args.gt]
            else:
                gt_dir = Path(args.gt_dir)
                if not gt_dir.is_dir():
                    raise DataError(f"--gt-dir {gt_dir} is not a folder", fix="pass the folder of ground-truth videos")
                gts = [_gt_in_dir(gt_dir, f.name) for f in folders]
            print(f"bench manifest from-wan: {len(folders)} clip(s) -> {out}", flush=True)
            build_from_wan_layout(folders, gts, building, ids=args.ids, fps=args.fps, progress=progress)
        else:
            print(f"bench manifest from-videos: {len(args.videos)} video(s) -> {out}", flush=True)
            build_from_raw_videos(args.videos, args.detector, args.pose, building, ids=args.ids,
                                  face_size=args.face_size, detector_sha256=args.detector_sha256,
                                  pose_sha256=args.pose_sha256, progress=progress)
    except DataError as exc:  # name the manifest asked for, not the temporary file
        raise DataError(exc.message.replace(str(building), str(out)), fix=exc.fix) from None
    try:
        print(f"validating {out.name} ...", flush=True)
        problems = validate_manifest(building, decode=not args.quick)
        errors = [p for p in problems if p.severity == "error"]
        for p in problems:
            print(p)
        if errors:
            print(f"{out}: {len(errors)} error(s): not written", file=sys.stderr)
            return 1
        os.replace(building, out)
    finally:
        building.unlink(missing_ok=True)
    n = read_manifest(out).header["n_records"]
    print(f"wrote {out}: {n} sample(s), {len(problems)} warning(s); validated "
          f"({'probe only' if args.quick else 'every frame decoded'})\n"
          f"run it: python -m bench run --dataset {out} --methods ... --durations ...")
    return 0
