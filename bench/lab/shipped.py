"""The shipped lab models: where they live, the sha256 manifest, verification before any generation.

Layout under ``models/lab`` (or ``$BENCH_LAB_MODELS``), each produced by one command (``docs/lab.md``)::

    vae/                         python -m bench lab train vae
    wan_animate_base/            python -m bench lab train base           ("Wan-Animate" in lab tables)
    everanimate/stage1/          python -m everanimate train --stage 1 --config everanimate/configs/lab_stage1.toml
    everanimate/stage2/          python -m everanimate train --stage 2 --config everanimate/configs/lab_stage2.toml
    ablations/no_plp/            python -m everanimate train --stage 2 --config everanimate/configs/lab_no_plp.toml
    MANIFEST.json                python -m bench lab ship   (sha256 and size of every shipped file)

``verify_lab_models`` checks every listed file of the requested models against ``MANIFEST.json``; a missing,
truncated or altered file is a ``WeightsError`` before any generation starts.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from bench.errors import WeightsError

MANIFEST = "MANIFEST.json"
FORMAT = "bench.lab-models/1"
MAX_BYTES = 40 * 1024 * 1024
SKIP_NAMES = {MANIFEST, ".bench_fingerprint.json"}
SKIP_DIRS = {"checkpoints"}
COMMANDS = {
    "vae": "python -m bench lab train vae",
    "wan_animate_base": ("python -m bench lab train base, then python -m bench lab train base --set "
                         "init=models/lab/wan_animate_base --set steps=600 --set lr=3e-4 --set warmup=20, then python "
                         "-m bench lab train base --set init=models/lab/wan_animate_base --set steps=1000 --set lr=4e-4 "
                         "--set warmup=30 (the shipped base ran the first two on lab/2 pose maps, the third on lab/3's)"),
    "everanimate/stage1": "python -m everanimate train --stage 1 --config everanimate/configs/lab_stage1.toml",
    "everanimate/stage2": "python -m everanimate train --stage 2 --config everanimate/configs/lab_stage2.toml",
    "ablations/no_plp": "python -m everanimate train --stage 2 --config everanimate/configs/lab_no_plp.toml",
}
FIX = ("the shipped lab models come with the repository (models/lab, checked by MANIFEST.json): restore them with "
       "`git checkout -- models/lab`, or retrain them with the commands in docs/lab.md and run "
       "`python -m bench lab ship`; or set BENCH_LAB_MODELS to a folder holding them")
_verified: dict[tuple[str, int, int], str] = {}


def lab_root() -> Path:
    from bench.models.wan import lab_model_dir

    return lab_model_dir("").resolve()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name not in SKIP_NAMES
                  and not SKIP_DIRS & set(p.relative_to(root).parts) and not p.name.endswith((".tmp", ".pt")))


def write_manifest(root: Path | None = None) -> Path:
    """Hash every shipped file under ``root`` into ``MANIFEST.json``; refuse more than 40 MB in all."""
    from bench.sample import sha256_file

    root = Path(root) if root is not None else lab_root()
    files = _files(root)
    if not files:
        raise WeightsError(f"no lab model files under {root}", fix="train them first (docs/lab.md)")
    entries = {p.relative_to(root).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in files}
    total = sum(e["bytes"] for e in entries.values())
    if total > MAX_BYTES:
        raise WeightsError(f"the lab models total {total / 2**20:.1f} MiB, over the 40 MiB budget",
                           fix="shrink the models or drop intermediate files before shipping")
    from bench.lab.spec import LAB_VERSION

    manifest = {"format": FORMAT, "lab_version": LAB_VERSION, "total_bytes": total, "commands": COMMANDS,
                "files": entries}
    path = root / MANIFEST
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path


def read_manifest(root: Path | None = None) -> dict:
    root = Path(root) if root is not None else lab_root()
    path = root / MANIFEST
    if not path.is_file():
        raise WeightsError(f"the lab models are missing: no {path}", fix=FIX)
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise WeightsError(f"{path} is not valid JSON ({exc})", fix=FIX) from exc
    if manifest.get("format") != FORMAT:
        raise WeightsError(f"{path} has format {manifest.get('format')!r}, expected {FORMAT!r}", fix=FIX)
    from bench.lab.spec import LAB_VERSION

    trained_on = manifest.get("lab_version", "lab/1")  # lab v1 manifests predate the field
    if trained_on != LAB_VERSION:
        raise WeightsError(f"the lab models under {root} were trained on lab renderer {trained_on}, this bench runs "
                           f"{LAB_VERSION}", fix="check out the lab models of this version of bench (git checkout -- "
                           "models/lab), or retrain them (docs/lab.md)")
    return manifest


def verify_lab_models(names: Iterable[str], method: str = "lab", root: Path | None = None) -> None:
    """sha256-check every manifest file under each of ``names`` (e.g. ``"wan_animate_base"``)."""
    from bench.sample import sha256_file

    root = Path(root) if root is not None else lab_root()
    manifest = read_manifest(root)
    problems = []
    for name in names:
        prefix = name.rstrip("/") + "/"
        listed = {rel: e for rel, e in manifest["files"].items() if rel.startswith(prefix)}
        if not listed:
            problems.append(f"{name}: not in {root / MANIFEST}")
        for rel, entry in listed.items():
            path = root / rel
            if not path.is_file():
                problems.append(f"{rel}: missing")
                continue
            st = path.stat()
            if st.st_size != entry["bytes"]:
                problems.append(f"{rel}: {st.st_size} bytes, expected {entry['bytes']} (truncated or replaced)")
                continue
            key = (str(path), st.st_size, st.st_mtime_ns)
            digest = _verified.get(key) or sha256_file(path)
            if digest != entry["sha256"]:
                problems.append(f"{rel}: sha256 {digest[:12]}... does not match the manifest's {entry['sha256'][:12]}...")
                continue
            _verified[key] = digest
    if problems:
        listing = "\n    ".join(problems)
        raise WeightsError(f"{method}: the shipped lab models under {root} failed verification:\n    {listing}", fix=FIX)


def resolve_lab_path(path: str | None) -> str | None:
    """``"lab:everanimate/stage1/lora.safetensors"`` -> that file under the lab models' root (presets use this
    form so they work from any directory and with ``$BENCH_LAB_MODELS``); other paths are returned as is."""
    if path is None or not str(path).startswith("lab:"):
        return path
    return str(lab_root() / str(path)[4:])


def verify_if_shipped(path: str | Path, method: str) -> None:
    """Verify the shipped model folder holding ``path`` when ``path`` lies under the lab models' root."""
    root, resolved = lab_root(), Path(path).resolve()
    if resolved.is_relative_to(root):
        verify_lab_models([resolved.parent.relative_to(root).as_posix()], method=method, root=root)


def lora_metadata(path: str | Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:
        raise WeightsError(f"cannot read LoRA file {path}: {exc}", fix="the file is truncated or not safetensors") from exc


def check_lora_base(lora: str | Path, base_dir: str | Path | None, method: str, memory: str) -> None:
    """A LoRA trained by ``python -m everanimate train`` records the base it was trained on and its memory
    layout; using it on another base model or with the other layout is an error, not a silent mismatch."""
    if not Path(lora).is_file():
        raise WeightsError(f"{method}: LoRA file {lora} does not exist",
                           fix="pass an existing LoRA file (train one: python -m everanimate train ...)")
    meta = lora_metadata(lora)
    if meta.get("memory") and meta["memory"] != memory:
        raise WeightsError(f"{method}: LoRA {lora} was trained for the {meta['memory']!r} memory layout, this method "
                           f"uses {memory!r}", fix="pass the LoRA trained for this method (see docs/lab.md)")
    recorded = meta.get("base_fingerprint")
    if recorded and base_dir is not None and not recorded.startswith("tiny"):
        from bench.models.wan import fingerprint

        actual = fingerprint(base_dir)
        if actual != recorded:
            raise WeightsError(f"{method}: LoRA {lora} was trained on a different base model (base fingerprint "
                               f"{recorded[:12]}..., this base {base_dir} is {actual[:12]}...)",
                               fix="use the LoRA trained for this base, or retrain it on this base "
                                   "(python -m everanimate train ...)")
