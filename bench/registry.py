"""One lazy registry for methods, metrics, presets and datasets.

Targets are ``"module:attr"`` strings, so listing (``python -m bench ls``) imports no torch. Unknown
names answer with the closest names; a missing optional dependency answers with what to install.
Extra methods can be registered without editing this file: ``BENCH_PLUGINS="name=module:Class,..."``.
Each registered method also names its arguments' ``Config`` dataclass in a module that imports no torch, so
``bench run`` checks every method argument (and ``bench ls --methods`` lists them) in a fraction of a second.
"""
from __future__ import annotations

import difflib
import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import ConfigError

PRESET_DIR = Path(__file__).parent / "presets"


@dataclass(frozen=True)
class Entry:
    target: str
    summary: str
    needs: str = "nothing"  # what it needs to run: "nothing", "weights", "official checkout + weights"
    config: str = ""  # "module:Class" of the method's Config, importable without torch ("": plugins; instantiated)


METHODS: dict[str, Entry] = {
    "everanimate": Entry("everanimate.animator:EverAnimate",
                         "EverAnimate: persistent latent propagation + restorative flow matching (LoRA on Wan2.2-Animate)",
                         "weights (lab: shipped small models)", "everanimate.arguments:EverAnimateConfig"),
    "wan_animate": Entry("baselines.wan_animate:WanAnimate",
                         "Wan2.2-Animate long-video loop: decoded frames re-encoded into the next segment",
                         "weights (lab: shipped small models)", "baselines.arguments:WanAnimateConfig"),
    "vae_roundtrip": Entry("baselines.vae_roundtrip:VAERoundTrip",
                           "ground truth through the VAE, carry-over decoded and re-encoded per chunk; ground truth "
                           "re-enters every chunk, so a lower bound on VAE loss (not the paper's Finding 1)",
                           "VAE weights (lab: shipped small VAE)", "baselines.arguments:VAERoundTripConfig"),
    "oracle_pixel_carry": Entry("baselines.carry_oracles:OraclePixelCarry",
                                "oracle (Finding 1): person from GT, room carried as decoded pixels re-encoded per chunk",
                                "VAE weights (lab: shipped small VAE)", "baselines.arguments:CarryOracleConfig"),
    "oracle_latent_carry": Entry("baselines.carry_oracles:OracleLatentCarry",
                                 "oracle (Finding 1): person from GT, room carried as a latent encoded once (PLP)",
                                 "VAE weights (lab: shipped small VAE)", "baselines.arguments:CarryOracleConfig"),
    "unianimate_dit": Entry("baselines.unianimate_dit:UniAnimateDiT", "UniAnimate-DiT via its official code",
                            "official checkout + weights", "baselines.unianimate_dit:UniAnimateDiTConfig"),
    "one_to_all": Entry("baselines.one_to_all:OneToAll", "One-to-All Animation via its official code",
                        "official checkout + weights", "baselines.one_to_all:OneToAllConfig"),
    "scail": Entry("baselines.scail:SCAIL", "SCAIL (Preview) via its official code, extended chunk by chunk",
                   "official checkout + weights", "baselines.scail:SCAILConfig"),
    "steadydancer": Entry("baselines.steadydancer:SteadyDancer",
                          "SteadyDancer via its official code, extended chunk by chunk", "official checkout + weights",
                          "baselines.steadydancer:SteadyDancerConfig"),
    "ground_truth": Entry("baselines.ground_truth:GroundTruth", "the ground-truth frames (upper bound, metric sanity)",
                          config="bench.animator:NoArguments"),
    "static_reference": Entry("baselines.static_reference:StaticReference",
                              "the reference image repeated (what 'no motion' scores)",
                              config="bench.animator:NoArguments"),
    "precomputed": Entry("baselines.precomputed:Precomputed",
                         "videos generated elsewhere, one file per sample id (--method-arg precomputed.folder=DIR)",
                         config="baselines.precomputed:PrecomputedConfig"),
}

# pip package that provides each importable top-level module a target may need
INSTALL_HINTS = {
    "diffusers": "diffusers>=0.36", "peft": "peft", "lpips": "lpips", "pytorch_fid": "pytorch-fid",
    "transformers": "transformers", "insightface": "insightface onnxruntime", "onnxruntime": "onnxruntime",
    "cv2": "opencv-python-headless", "torch": "torch torchvision", "torchvision": "torchvision",
    "torchmetrics": "torchmetrics", "accelerate": "accelerate", "av": "av",
}


def plugin_methods() -> dict[str, Entry]:
    out = {}
    for item in filter(None, (s.strip() for s in os.environ.get("BENCH_PLUGINS", "").split(","))):
        name, _, target = item.partition("=")
        if not target or ":" not in target:
            raise ConfigError(f"BENCH_PLUGINS entry {item!r} is not name=module:Class",
                              fix='set BENCH_PLUGINS="mymethod=mypackage.module:MyAnimator"')
        out[name] = Entry(target, f"plugin ({target})")
    return out


def methods() -> dict[str, Entry]:
    return {**METHODS, **plugin_methods()}


def metrics() -> dict[str, Entry]:
    from bench.metrics import METRICS

    return {name: Entry(info.target, info.summary, "weights" if info.weighted else "nothing")
            for name, info in METRICS.items()}


def presets() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PRESET_DIR.glob("*.toml"))}


def datasets() -> dict[str, str]:
    try:
        from bench.datasets import DATASETS
    except ImportError:
        return {}
    return dict(DATASETS)


def unknown(kind: str, name: str, known) -> ConfigError:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known {kind}s: {', '.join(sorted(known))}"
    return ConfigError(f"unknown {kind} {name!r}; {hint}", fix=f"run `python -m bench ls` to list every {kind}")


def import_target(target: str, what: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing and missing != module_name.split(".")[0] and not module_name.startswith(missing):
            pkg = INSTALL_HINTS.get(missing, missing)
            raise ConfigError(f"{what} needs the Python package {missing!r}, which is not installed",
                              fix=f"pip install {pkg}   (or reinstall the project: pip install -e '.[dev]')") from exc
        raise ConfigError(f"{what} is registered as {target!r} but {module_name} cannot be imported: {exc}",
                          fix="this part of the project is not installed in this checkout; update or reinstall it") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{what}: {module_name} has no {attr!r}", fix="fix the registry target") from None


def method_base(name: str) -> str:
    """``"everanimate@stage1"`` -> ``"everanimate"``: a *variant* is a registered method under another label,
    with its own arguments (``[methods."everanimate@stage1"]`` in a preset, overlaid on the base method's), e.g.
    for ablation rows."""
    return name.split("@", 1)[0]


def method_class(name: str):
    table = methods()
    base = method_base(name)
    if base not in table:
        raise unknown("method", base, table)
    return import_target(table[base].target, f"method {name!r}")


def method_config(name: str) -> type | None:
    """The ``Config`` dataclass of a registered method, imported without the method's module (no torch);
    None for a plugin, which is checked by instantiating it."""
    table = methods()
    base = method_base(name)
    if base not in table:
        raise unknown("method", base, table)
    if not table[base].config:
        return None
    return import_target(table[base].config, f"the arguments of method {name!r}")


def metric_class(name: str):
    table = metrics()
    if name not in table:
        raise unknown("metric", name, table)
    return import_target(table[name].target, f"metric {name!r}")


def preset_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" and p.exists():
        return p
    table = presets()
    if name_or_path not in table:
        raise unknown("preset", name_or_path, table)
    return table[name_or_path]
