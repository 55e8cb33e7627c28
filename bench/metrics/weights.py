"""Metric weights: which files, where the libraries look for them, how they are verified.

Nothing here downloads anything. Every loader first checks that its file is already in the place the
library reads it from (``torch.hub`` checkpoints folder, Hugging Face hub cache, insightface root, or an
explicit path), verifies its sha256, and returns a ``WeightRecord`` that goes into every score.

Verification, per file:

* a pinned full sha256 when we know it (``KnownWeight.sha256``);
* otherwise the ``torch.hub`` filename prefix (``alexnet-owt-7be5be79.pth``: the first 8 hex digits of the
  file's sha256 -- the same check ``torch.hub`` does after a download);
* Hugging Face LFS files are stored as ``blobs/<sha256>``: the content must hash to its blob name;
* always: a present, non-empty, fully readable file; the full sha256 is recorded.

``doctor_report()`` lists every file with its status and exactly where it goes (``bench doctor``).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from bench.errors import WeightsError
from bench.metrics.base import WeightRecord
from bench.sample import sha256_file

HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class KnownWeight:
    key: str
    metrics: tuple[str, ...]
    filename: str
    location: str  # "torch_hub" | "lpips_wheel" | "hf_hub" | "insightface" | "videomae_v2" (torch_hub or its env path)
    source: str
    sha256: str | None = None  # full pinned hash, when known
    sha256_prefix: str | None = None  # torch.hub filename hash prefix
    repo_id: str | None = None  # Hugging Face repo for location "hf_hub"
    note: str = ""
    optional: bool = False  # only needed for a non-default option (e.g. another backbone)


KNOWN_WEIGHTS: dict[str, KnownWeight] = {
    "alexnet": KnownWeight(
        "alexnet", ("lpips",), "alexnet-owt-7be5be79.pth", "torch_hub",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", sha256_prefix="7be5be79",
        note="torchvision AlexNet ImageNet weights (LPIPS backbone)"),
    "lpips_alex_linear": KnownWeight(
        "lpips_alex_linear", ("lpips",), "weights/v0.1/alex.pth", "lpips_wheel",
        "ships inside the lpips 0.1.4 wheel (pip install lpips==0.1.4)",
        sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
        note="LPIPS v0.1 linear calibration layers"),
    "fid_inception": KnownWeight(
        "fid_inception", ("fid",), "pt_inception-2015-12-05-6726825d.pth", "torch_hub",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
        sha256_prefix="6726825d", note="TF FID Inception-v3 ported by pytorch-fid"),
    "videomae_base": KnownWeight(
        "videomae_base", ("vmae_paired", "vmae_fd"), "model.safetensors | pytorch_model.bin (+ config.json)",
        "hf_hub", "huggingface-cli download MCG-NJU/videomae-base  (or pass an explicit folder)",
        repo_id="MCG-NJU/videomae-base", note="VideoMAE ViT-B/16 Kinetics-400 self-supervised"),
    "videomae_v2_g": KnownWeight(
        "videomae_v2_g", ("vmae_paired", "vmae_fd"), "vit_g_hybrid_pt_1200e_ssv2_ft.pth", "videomae_v2",
        "VideoMAEv2 model zoo (https://github.com/OpenGVLab/VideoMAEv2/blob/master/docs/MODEL_ZOO.md, download "
        "form); the copy cd-fvd fetches: https://huggingface.co/OpenGVLab/InternVideoMAE_models/resolve/main/mae-g/"
        "vit_g_hybrid_pt_1200e_ssv2_ft.pth  (or an explicit path: BENCH_VIDEOMAE_V2_PATH)",
        note="VideoMAE-v2 ViT-g/14 fine-tuned on SSv2 (CD-FVD's feature network); only for "
             "BENCH_VIDEOMAE_BACKBONE=videomae-v2-g", optional=True),
    "insightface_det": KnownWeight(
        "insightface_det", ("fpsnr",), "det_10g.onnx", "insightface",
        "insightface buffalo_l pack (https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip)",
        note="SCRFD face detector; only needed when the GT has no face keypoints; NON-COMMERCIAL licence"),
}


# ---------------------------------------------------------------------------------------------- places
def torch_hub_checkpoints_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` exactly as ``torch.hub`` resolves it (TORCH_HOME read at call time)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_hub_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface")
    return Path(home) / "hub"


def insightface_model_dir(root: str | os.PathLike | None = None) -> Path:
    root = root or os.environ.get("BENCH_INSIGHTFACE_ROOT") or "~/.insightface"
    return Path(os.path.expanduser(str(root))) / "models" / "buffalo_l"


def lpips_wheel_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.origin:
        raise WeightsError("the lpips package is not installed", fix="pip install lpips==0.1.4")
    return Path(spec.origin).parent


def expected_location(known: KnownWeight) -> str:
    if known.location == "torch_hub":
        return str(torch_hub_checkpoints_dir() / known.filename)
    if known.location == "lpips_wheel":
        try:
            return str(lpips_wheel_dir() / known.filename)
        except WeightsError:
            return "<site-packages>/lpips/" + known.filename
    if known.location == "hf_hub":
        return str(hf_hub_dir() / ("models--" + known.repo_id.replace("/", "--")) / "snapshots" / "<revision>")
    if known.location == "insightface":
        return str(insightface_model_dir() / known.filename)
    if known.location == "videomae_v2":
        return str(videomae_v2_file())
    raise ValueError(known.location)


# ---------------------------------------------------------------------------------------------- hashing


def _missing(known: KnownWeight, where: str) -> WeightsError:
    expect = known.sha256 or (f"sha256 starting {known.sha256_prefix}" if known.sha256_prefix else "not pinned")
    return WeightsError(
        f"weights for {', '.join(known.metrics)} not found: {known.filename} (expected sha256: {expect})",
        fix=f"put the file at {where}  (source: {known.source}); this benchmark never downloads weights itself")


def verify_file(known: KnownWeight, path: str | os.PathLike, *, blob_sha256: str | None = None) -> WeightRecord:
    """Check one file against what we know about it; return its record or raise ``WeightsError``."""
    path = Path(path)
    if not path.is_file():
        raise _missing(known, str(path))
    if path.stat().st_size == 0:
        raise WeightsError(f"{path} is empty ({known.key})", fix=f"delete it and place the real file (source: {known.source})")
    digest = sha256_file(path, cached=True)
    problem = None
    if known.sha256 and digest != known.sha256:
        problem = f"sha256 {digest} != expected {known.sha256}"
    elif not known.sha256 and known.sha256_prefix and not digest.startswith(known.sha256_prefix):
        problem = f"sha256 {digest} does not start with {known.sha256_prefix} (the hash in its file name)"
    elif blob_sha256 and digest != blob_sha256:
        problem = f"content sha256 {digest} != its Hugging Face blob name {blob_sha256}"
    if problem:
        raise WeightsError(f"{path} is corrupt, truncated or the wrong file: {problem}",
                           fix=f"delete it and place the real file (source: {known.source})")
    return WeightRecord(known.key, str(path), digest)


# ---------------------------------------------------------------------------------------------- resolvers
def resolve_torch_hub(key: str) -> WeightRecord:
    known = KNOWN_WEIGHTS[key]
    return verify_file(known, torch_hub_checkpoints_dir() / known.filename)


def resolve_lpips_linear() -> WeightRecord:
    known = KNOWN_WEIGHTS["lpips_alex_linear"]
    return verify_file(known, lpips_wheel_dir() / known.filename)


VIDEOMAE_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def find_videomae_dir(path: str | os.PathLike | None = None, repo_id: str | None = None) -> Path:
    """An explicit folder (``save_pretrained`` layout) or the newest snapshot of ``repo_id`` in the HF cache."""
    known = KNOWN_WEIGHTS["videomae_base"]
    if path is not None:
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise WeightsError(f"VideoMAE folder {folder} has no config.json",
                               fix="pass a folder written by save_pretrained / huggingface-cli download")
        return folder
    repo_id = repo_id or known.repo_id
    repo_dir = hf_hub_dir() / ("models--" + repo_id.replace("/", "--"))
    snapshots = repo_dir / "snapshots"
    candidates = []
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        candidates.append(snapshots / ref.read_text().strip())
    if snapshots.is_dir():
        candidates += sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    for folder in candidates:
        if (folder / "config.json").is_file() and any((folder / f).exists() for f in VIDEOMAE_WEIGHT_FILES):
            return folder
    raise WeightsError(
        f"VideoMAE weights ({repo_id}) not found in the Hugging Face cache {hf_hub_dir()}",
        fix=f"run `huggingface-cli download {repo_id}` with HF_HOME={hf_hub_dir().parent} on a machine with "
            f"internet and copy {repo_dir} here, or pass an explicit folder (config.json + model.safetensors)")


def resolve_videomae(path: str | os.PathLike | None = None) -> tuple[Path, list[WeightRecord]]:
    known = KNOWN_WEIGHTS["videomae_base"]
    folder = find_videomae_dir(path)
    weight_file = next((folder / f for f in VIDEOMAE_WEIGHT_FILES if (folder / f).exists()), None)
    if weight_file is None:
        raise WeightsError(f"VideoMAE folder {folder} has config.json but no model.safetensors / pytorch_model.bin",
                           fix=f"complete the download ({known.source})")
    blob = None
    if weight_file.is_symlink():  # HF cache: snapshots/<rev>/file -> ../../blobs/<sha256>
        target = Path(os.path.realpath(weight_file))
        if not target.exists():
            raise WeightsError(f"{weight_file} is a dangling link (incomplete download)", fix=f"re-download ({known.source})")
        blob = target.name if HEX64.match(target.name) else None
    record = verify_file(known, weight_file, blob_sha256=blob)
    config = folder / "config.json"
    try:
        json.loads(config.read_text())
    except ValueError as exc:
        raise WeightsError(f"{config} is not valid JSON: {exc}", fix=f"re-download ({known.source})") from exc
    return folder, [record, WeightRecord("videomae_config", str(config), sha256_file(config, cached=True))]


def videomae_v2_file(path: str | os.PathLike | None = None) -> Path:
    """Where the VideoMAE-v2 ViT-g checkpoint is read from: ``path``, else ``$BENCH_VIDEOMAE_V2_PATH``, else
    ``$TORCH_HOME/hub/checkpoints/vit_g_hybrid_pt_1200e_ssv2_ft.pth``; a folder means that file name inside it."""
    known = KNOWN_WEIGHTS["videomae_v2_g"]
    path = path if path is not None else os.environ.get("BENCH_VIDEOMAE_V2_PATH") or None
    if path is None:
        return torch_hub_checkpoints_dir() / known.filename
    path = Path(os.path.expanduser(str(path)))
    return path / known.filename if path.is_dir() else path


def resolve_videomae_v2(path: str | os.PathLike | None = None) -> WeightRecord:
    """Verify the VideoMAE-v2 checkpoint file (present, non-empty; sha256 not pinned, recorded)."""
    return verify_file(KNOWN_WEIGHTS["videomae_v2_g"], videomae_v2_file(path))


def resolve_insightface_detector(root: str | os.PathLike | None = None) -> WeightRecord:
    known = KNOWN_WEIGHTS["insightface_det"]
    return verify_file(known, insightface_model_dir(root) / known.filename)


# ---------------------------------------------------------------------------------------------- doctor
def _status(key: str, resolve) -> dict:
    known = KNOWN_WEIGHTS[key]
    entry = {
        "key": key, "name": key, "metrics": list(known.metrics), "file": known.filename,
        "expected_location": expected_location(known), "source": known.source,
        "expected_sha256": known.sha256 or (f"{known.sha256_prefix}... (torch.hub prefix)" if known.sha256_prefix
                                            else "not pinned (recorded when used)"),
        "note": known.note, "optional": known.optional,
    }
    try:
        records = resolve()
        records = records[1] if isinstance(records, tuple) else records
        records = records if isinstance(records, list) else [records]
        entry.update(status="present", path=records[0].path, sha256=records[0].sha256, message="verified")
    except WeightsError as exc:
        corrupt = "corrupt" in exc.message or "empty" in exc.message or "dangling" in exc.message
        entry.update(status="corrupt" if corrupt else "missing", path=None, sha256=None,
                     message=exc.message, fix=exc.fix)
    return entry


def doctor_report() -> list[dict]:
    """One entry per weight file: key (= name), metrics, status (present / missing / corrupt), file, expected
    location, expected sha256, recorded sha256, source, the fix and ``optional`` (needed only for a non-default
    option, e.g. the VideoMAE-v2 backbone). Never downloads."""
    return [
        _status("alexnet", lambda: resolve_torch_hub("alexnet")),
        _status("lpips_alex_linear", resolve_lpips_linear),
        _status("fid_inception", lambda: resolve_torch_hub("fid_inception")),
        _status("videomae_base", lambda: resolve_videomae()),
        _status("videomae_v2_g", lambda: resolve_videomae_v2()),
        _status("insightface_det", lambda: resolve_insightface_detector()),
    ]


def format_doctor_report(entries: list[dict] | None = None) -> str:
    entries = doctor_report() if entries is None else entries
    lines = []
    for e in entries:
        optional = "  (optional)" if e.get("optional") else ""
        lines.append(f"[{e['status']:>7}] {e['key']:<18} for {', '.join(e['metrics'])}: {e['file']}{optional}")
        if e.get("optional"):
            lines.append(f"          note     {e['note']}")
        lines.append(f"          goes to  {e['expected_location']}")
        lines.append(f"          sha256   {e['sha256'] or e['expected_sha256']}")
        if e["status"] != "present":
            lines.append(f"          source   {e['source']}")
    return "\n".join(lines)
