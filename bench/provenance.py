"""Provenance recorded in every score: code version, packages, device, protocol."""
from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "torchvision", "diffusers", "transformers", "peft", "accelerate", "safetensors", "numpy", "av",
            "opencv-python-headless", "numba", "lpips", "pytorch-fid", "torchmetrics", "onnxruntime",
            "everanimate-bench")


@functools.lru_cache(maxsize=1)
def git_state() -> dict:
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


@functools.lru_cache(maxsize=1)
def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_description(device: str) -> str:
    if device.startswith("cuda"):
        try:
            import torch

            return f"{device}: {torch.cuda.get_device_name(torch.device(device))}"
        except Exception:
            return device
    return f"{device}: {platform.machine()}"


def provenance(device: str, protocol: str) -> dict:
    return {"git": git_state(), "packages": package_versions(), "device": device_description(device),
            "protocol": protocol}
