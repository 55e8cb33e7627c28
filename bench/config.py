"""Run configuration: frozen dataclasses, presets as TOML files, one precedence rule CLI > config > defaults.

*Identity* fields change pixels or scores (they enter rollout keys and score records); *runtime* fields
(device, results folder, progress) do not.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from bench.errors import ConfigError

FrozenArgs = tuple[tuple[str, Any], ...]


def freeze_args(args: Mapping[str, Any]) -> FrozenArgs:
    return tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v) for k, v in args.items()))


@dataclass(frozen=True)
class RunConfig:
    # identity
    methods: tuple[str, ...] = ("ground_truth", "static_reference")
    baselines: tuple[str, ...] = ()  # trivial baselines run beside the requested methods and listed in their tables
    dataset: str = "lab-test"
    size: str = "lab-64"
    samples: tuple[str, ...] = ()  # sample ids to keep; empty = all
    max_samples: int = 0  # 0 = all
    durations: tuple[float, ...] = (10.0, 90.0)
    fps: int = 25
    seed: int = 42
    metrics: tuple[str, ...] = ()  # empty = the protocol's default set (metrics without weights skipped)
    window_s: float = 5.0
    pose_padding: str = "error"
    references: str = "single"  # "single": every method gets the user reference only (the paper's protocol);
    #                             "multi": every view the sample ships, to each method up to its max_references
    method_args: tuple[tuple[str, FrozenArgs], ...] = ()
    # runtime
    preset: str = "lab"
    experiment: str = ""  # scores folder name; defaults to the preset name
    device: str = "cpu"
    results: str = "results"
    progress: bool = True
    table_layout: str = "leaderboard"  # "leaderboard" (Table 1) or "ablation" (Table 2)
    workers: int = 1  # local worker processes (one torch thread each) sharing the grid's cells

    IDENTITY = ("methods", "baselines", "dataset", "size", "samples", "max_samples", "durations", "fps", "seed", "metrics",
                "window_s", "pose_padding", "references", "method_args")

    @property
    def experiment_name(self) -> str:
        return self.experiment or self.preset

    def args_for(self, method: str) -> dict[str, Any]:
        return dict(dict(self.method_args).get(method, ()))

    @property
    def max_frames(self) -> int:
        return max(duration_frames(d, self.fps) for d in self.durations)

    def validate(self) -> "RunConfig":
        if not self.methods:
            raise ConfigError("no methods given", fix="pass --methods NAME [NAME ...] (python -m bench ls lists them)")
        if not self.durations or any(d <= 0 for d in self.durations):
            raise ConfigError(f"durations must be positive seconds, got {self.durations}", fix="e.g. --durations 10 90")
        if self.pose_padding not in ("error", "reflect", "hold"):
            raise ConfigError(f"pose padding {self.pose_padding!r} unknown", fix="use error, reflect or hold")
        if self.references not in ("single", "multi"):
            raise ConfigError(f"references {self.references!r} unknown",
                              fix="use single (the user reference only, the paper's protocol) or multi (every view)")
        if self.window_s <= 0:
            raise ConfigError("window length must be positive", fix="e.g. --window 5")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}", fix="e.g. --workers 2")
        return self


def duration_frames(seconds: float, fps: int) -> int:
    return int(round(seconds * fps))


def _coerce(name: str, value: Any) -> Any:
    tuple_fields = {"methods", "baselines", "samples", "durations", "metrics"}
    if name in tuple_fields:
        if isinstance(value, (str, int, float)):
            value = [value]
        return tuple(float(v) for v in value) if name == "durations" else tuple(str(v) for v in value)
    return value


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a preset/config TOML: ``[run]`` holds RunConfig fields, ``[methods.NAME]`` identity args."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found", fix="check the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}", fix="fix the syntax") from None
    known = {f.name for f in fields(RunConfig)}
    run = dict(data.get("run", {}))
    bad = set(run) - known
    if bad:
        raise ConfigError(f"{path}: unknown [run] keys {sorted(bad)}", fix=f"known keys: {sorted(known)}")
    out = {k: _coerce(k, v) for k, v in run.items()}
    method_args = {name: dict(args) for name, args in data.get("methods", {}).items()}
    if method_args:
        out["method_args"] = method_args
    return out


def parse_method_args(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``--method-arg wan_animate.refert_num=5`` -> ``{"wan_animate": {"refert_num": 5}}`` (TOML value syntax)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        key, eq, raw = item.partition("=")
        method, dot, arg = key.partition(".")
        if not eq or not dot:
            raise ConfigError(f"--method-arg {item!r} is not METHOD.ARG=VALUE", fix="e.g. --method-arg precomputed.folder=/videos")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        out.setdefault(method, {})[arg] = value
    return out


# Alternative weight sources of a method: one given by a more specific layer (CLI > --config > preset) replaces
# the other from a less specific one, so `--method-arg wan_animate.model_dir=DIR` works under the lab preset.
WEIGHT_SOURCES = ("model_dir", "components")


def _overlay(args: dict[str, Any], layer: dict[str, Any]) -> None:
    if any(key in layer for key in WEIGHT_SOURCES):
        for key in WEIGHT_SOURCES:
            args.pop(key, None)
    args.update(layer)


def _with_variant_defaults(method_args: dict[str, dict[str, Any]], names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """A variant ``m@tag`` starts from ``m``'s arguments, its own section overlaid (e.g. the ablation rows keep
    the preset's ``components`` and ``steps`` and change only ``lora``)."""
    from bench.registry import method_base

    out = dict(method_args)
    for name in set(method_args) | set(names):
        base = method_base(name)
        if base != name and base in method_args:
            args = dict(method_args[base])
            _overlay(args, method_args.get(name, {}))
            out[name] = args
    return out


def build_config(preset: str = "lab", config_file: str | None = None, **cli: Any) -> RunConfig:
    """Defaults < preset file < ``--config`` file < CLI values (None means "not given")."""
    from bench.registry import preset_path

    merged: dict[str, Any] = {"preset": Path(preset).stem}
    method_args: dict[str, dict[str, Any]] = {}
    for source in filter(None, [preset_path(preset), config_file]):
        values = load_config_file(source)
        for name, args in values.pop("method_args", {}).items():
            _overlay(method_args.setdefault(name, {}), args)
        merged.update(values)
    cli_args = cli.pop("method_args", None) or {}
    merged.update({k: _coerce(k, v) for k, v in cli.items() if v is not None})
    for name, args in cli_args.items():
        _overlay(method_args.setdefault(name, {}), args)
    known = {f.name for f in fields(RunConfig)}
    unknown = set(merged) - known
    if unknown:
        raise ConfigError(f"unknown settings {sorted(unknown)}", fix=f"known: {sorted(known)}")
    requested = tuple(merged.get("methods", RunConfig.methods))
    merged["methods"] = requested + tuple(b for b in merged.get("baselines", ()) if b not in requested)
    method_args = _with_variant_defaults(method_args, merged["methods"])
    merged["method_args"] = tuple(sorted((m, freeze_args(a)) for m, a in method_args.items()))
    return RunConfig(**merged).validate()

