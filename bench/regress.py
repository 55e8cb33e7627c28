"""``python -m bench regress``: a short, deterministic lab run compared with golden scores in git.

The run is fresh every time (a temporary results folder: nothing is reused from, or written to, the
user's ``results/``), so a change anywhere on the path -- lab renderer, model code, sampler, chunk loop,
store, metrics -- that moves a number beyond its tolerance is caught. The golden file
``results/golden/<name>.json`` holds one value per (metric, method, duration), the mean over the spec's
samples, plus the provenance of the run that wrote it. ``--update`` rewrites it after an intended change.

Exit status: 0 all cells within tolerance; 1 a regression, a missing or extra cell, or a failed run;
2 a usage problem (e.g. no golden file yet: run ``--update``).
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TextIO

from bench.errors import ConfigError, DataError
from bench.records import ALL_SAMPLES, ScoreRecord

GOLDEN_SCHEMA = "bench.golden/1"
GOLDEN_DIR = Path("results") / "golden"
#: torch threads during the run: one thread makes CPU reductions run in one fixed order on every machine
THREADS = 1

#: Absolute tolerances, per metric.
#:
#: Rollouts are generated and scored on the CPU in float32 (models) and float64 (metrics). The same code
#: on another machine (another CPU vector width, another oneDNN / MKL / OpenBLAS kernel choice, another
#: torch build) reorders float32 sums, which moves each generated pixel by at most a few 1e-3 before
#: rounding to uint8; after rounding, a handful of pixels per frame differ by one level. Over a 4 s,
#: 64x64 rollout that moves the means by:
#:
#: * PSNR: a few 1e-3 dB at the 15-30 dB of the lab methods -> 0.05 dB, an order of magnitude of headroom,
#:   while a real change (a sampler step, a seed, a chunk-boundary bug) moves it by 0.1 dB or more;
#: * SSIM: a few 1e-4 -> 0.002 (the same headroom on SSIM's [0, 1] scale);
#: * LPIPS: same scale as SSIM -> 0.002 (only used when its weights are present; not in the default spec);
#: * F-PSNR / BG-PSNR: PSNR over a small face box / the background only, i.e. over far fewer pixels, so one
#:   flipped pixel weighs more -> 0.1 dB.
#:
#: A tolerance is not a per-run noise estimate: two runs on one machine give identical numbers (fixed
#: seeds, one thread). It is the cross-machine budget. Anything beyond it is treated as a real change.
DEFAULT_TOLERANCES: tuple[tuple[str, float], ...] = (
    ("psnr", 0.05), ("ssim", 0.002), ("lpips", 0.002), ("fpsnr", 0.1), ("bgpsnr", 0.1))

#: Metrics of the default golden: pixel metrics that need no downloaded weights, so a clean CI machine
#: computes all of them (`python -m bench doctor`: LPIPS needs torchvision's AlexNet file, FID and V-MAE
#: their networks; none of those is present on a clean machine, and this project never downloads).
DEFAULT_METRICS: tuple[str, ...] = ("psnr", "ssim", "fpsnr", "bgpsnr")


@dataclass(frozen=True)
class RegressionSpec:
    """What the regression run is. Method arguments are *not* part of it: they come from ``preset`` (the
    lab preset's ``[methods.NAME]`` tables), so the regression always runs what ``bench run`` runs."""

    name: str = "lab"
    methods: tuple[str, ...] = ("everanimate", "wan_animate")
    durations: tuple[float, ...] = (4.0,)
    max_samples: int = 1
    preset: str = "lab"
    metrics: tuple[str, ...] = DEFAULT_METRICS
    tolerances: tuple[tuple[str, float], ...] = DEFAULT_TOLERANCES

    def __post_init__(self):
        missing = [m for m in self.metrics if m not in dict(self.tolerances)]
        if missing:
            raise ConfigError(f"regression spec {self.name!r}: no tolerance for {', '.join(missing)}",
                              fix="add them to RegressionSpec.tolerances")
        if not self.methods or not self.durations or self.max_samples < 1:
            raise ConfigError(f"regression spec {self.name!r} needs methods, durations and max_samples >= 1",
                              fix="e.g. --methods ground_truth --durations 4 --max-samples 1")

    def tolerance(self, metric: str) -> float:
        return dict(self.tolerances)[metric]

    def golden_path(self) -> Path:
        return GOLDEN_DIR / f"{self.name}.json"

    def to_json(self) -> dict:
        d = asdict(self)
        d["methods"], d["durations"], d["metrics"] = list(self.methods), list(self.durations), list(self.metrics)
        d["tolerances"] = dict(self.tolerances)
        return d


DEFAULT_SPEC = RegressionSpec()

CellKey = tuple[str, str, float]  # (metric, method, duration_s)


@dataclass
class FreshRun:
    cells: dict[CellKey, dict]
    samples: list[str]
    provenance: dict
    failures: list[tuple[str, str, str]] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ running
def method_args(spec: RegressionSpec) -> dict[str, dict]:
    from bench.config import build_config

    config = build_config(preset=spec.preset, methods=list(spec.methods))
    return {m: config.args_for(m) for m in spec.methods}


def cells_from_records(records: Sequence[ScoreRecord], metrics: Sequence[str]) -> tuple[dict[CellKey, dict], list[str]]:
    """Per-sample score lines -> one cell per (metric, method, duration): the mean over samples."""
    values: dict[CellKey, list] = {}
    samples = set()
    for r in records:
        if r.sample == ALL_SAMPLES or r.metric not in metrics:
            continue
        samples.add(r.sample)
        values.setdefault((r.metric, r.method, float(r.duration_s)), []).append(r.value)
    cells = {}
    for key, vals in values.items():
        finite = [float(v) for v in vals if v is not None]
        mean = sum(finite) / len(finite) if finite and len(finite) == len(vals) else None
        cells[key] = {"value": mean, "n_samples": len(vals)}
    return cells, sorted(samples)


def run_fresh(spec: RegressionSpec, work: Path, out: TextIO | None = None) -> FreshRun:
    """Run the spec from nothing in ``work`` (render, generate, score) and collect its cells from the scores
    file the run wrote (read back through ``read_records``, as ``bench table`` reads it)."""
    out = out or sys.stdout
    import torch

    from bench.config import build_config
    from bench.metrics.base import PROTOCOL_VERSION
    from bench.provenance import git_state, package_versions
    from bench.records import ExperimentManifest, read_records
    from bench.runner import run_grid

    config = build_config(preset=spec.preset, methods=list(spec.methods), baselines=[], durations=list(spec.durations),
                          max_samples=spec.max_samples, metrics=list(spec.metrics), results=str(work),
                          experiment=f"regress-{spec.name}", progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        outcome = run_grid(config, out=out)
    finally:
        torch.set_num_threads(threads)
    records = read_records(outcome.scores_file)
    cells, samples = cells_from_records(records, spec.metrics)
    run = ExperimentManifest.read(outcome.scores_file.parent) if outcome.scores_file else None
    weights = {}
    untrained = set()
    for r in records:
        if r.method_weights:
            weights.setdefault(r.method, r.method_weights)
        if r.untrained:
            untrained.add(r.method)
    provenance = {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__, "torch_threads": THREADS, "protocol": PROTOCOL_VERSION,
        "git": git_state(), "packages": package_versions(), "device": config.device, "seed": config.seed,
        "dataset": run.dataset if run else config.dataset, "size": run.size if run else config.size,
        "fps": run.fps if run else config.fps,
        "method_args": {m: config.args_for(m) for m in spec.methods},
        "method_weights": weights, "untrained": sorted(untrained)}
    return FreshRun(cells, samples, provenance, outcome.failures)


# ------------------------------------------------------------------------------------------------ golden file
def golden_json(spec: RegressionSpec, fresh: FreshRun) -> dict:
    cells = [{"metric": k[0], "method": k[1], "duration_s": k[2], **v} for k, v in sorted(fresh.cells.items())]
    return {"schema": GOLDEN_SCHEMA, "name": spec.name, "spec": spec.to_json(), "samples": fresh.samples,
            "cells": cells, "provenance": fresh.provenance,
            "refresh": "python -m bench regress --update (after an intended change; review the diff first)"}


def write_golden(path: Path, spec: RegressionSpec, fresh: FreshRun) -> None:
    from bench.store import atomic_write_bytes

    atomic_write_bytes(Path(path), (json.dumps(golden_json(spec, fresh), indent=1, sort_keys=True) + "\n").encode())


def read_golden(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise DataError(f"no golden scores at {path}",
                        fix="create them with `python -m bench regress --update` (same options as this run) "
                            "and commit the file")
    try:
        data = json.loads(path.read_text())
        if data.get("schema") != GOLDEN_SCHEMA or not isinstance(data.get("cells"), list):
            raise ValueError(f"schema {data.get('schema')!r}, expected {GOLDEN_SCHEMA!r} with a cells list")
        cells = {(c["metric"], c["method"], float(c["duration_s"])): c for c in data["cells"]}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"golden file {path} is not valid: {exc}",
                        fix="restore it from git, or rewrite it with `python -m bench regress --update`") from None
    data["cells_by_key"] = cells
    return data


# ------------------------------------------------------------------------------------------------ comparing
@dataclass(frozen=True)
class DiffRow:
    metric: str
    method: str
    duration_s: float
    golden: float | None
    fresh: float | None
    tolerance: float | None
    status: str  # OK | REGRESSION | MISSING (in golden, not in the fresh run) | EXTRA (fresh, not in golden)

    @property
    def diff(self) -> float | None:
        if self.golden is None or self.fresh is None:
            return None
        return abs(self.fresh - self.golden)

    @property
    def ok(self) -> bool:
        return self.status == "OK"


def compare(spec: RegressionSpec, golden: dict[CellKey, dict], fresh: dict[CellKey, dict]) -> list[DiffRow]:
    from bench.tables import COLUMNS

    order = [c.metric for c in COLUMNS]
    rows = []
    for key in sorted(set(golden) | set(fresh),
                      key=lambda k: (order.index(k[0]) if k[0] in order else len(order), k[0], k[1], k[2])):
        metric, method, duration = key
        tol = dict(spec.tolerances).get(metric)
        g = golden[key].get("value") if key in golden else None
        f = fresh[key].get("value") if key in fresh else None
        if key not in fresh:
            status = "MISSING"
        elif key not in golden:
            status = "EXTRA"
        elif g is None or f is None:
            status = "OK" if g is None and f is None else "REGRESSION"
        elif tol is None or not math.isfinite(f) or abs(f - g) > tol:
            status = "REGRESSION"
        else:
            status = "OK"
        rows.append(DiffRow(metric, method, duration, g, f, tol, status))
    return rows


def format_rows(rows: Sequence[DiffRow]) -> str:
    def num(x: float | None, digits: int = 4) -> str:
        return "-" if x is None else f"{x:.{digits}f}"

    head = ("metric", "method", "duration", "golden", "fresh", "|diff|", "tolerance", "result")
    body = [(r.metric, r.method, f"{r.duration_s:g} s", num(r.golden), num(r.fresh), num(r.diff, 5),
             num(r.tolerance, 3), r.status) for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    align = ["<", "<", ">", ">", ">", ">", ">", "<"]
    lines = ["  ".join(f"{v:{a}{w}}" for v, a, w in zip(line, align, widths)).rstrip() for line in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def provenance_notes(golden: dict, fresh: FreshRun) -> list[str]:
    """Differences in what produced the numbers: the first places to look when cells moved."""
    g = golden.get("provenance", {}) or {}
    f = fresh.provenance
    notes = []
    for field_name, what in (("method_args", "method arguments (preset)"), ("method_weights", "method weights"),
                             ("protocol", "metric protocol"), ("torch", "torch version"), ("dataset", "dataset"),
                             ("size", "size")):
        if field_name in g and g.get(field_name) != f.get(field_name):
            notes.append(f"{what} differ: golden {json.dumps(g.get(field_name), sort_keys=True)} "
                         f"vs now {json.dumps(f.get(field_name), sort_keys=True)}")
    if golden.get("samples") and golden["samples"] != fresh.samples:
        notes.append(f"samples differ: golden {golden['samples']} vs now {fresh.samples}")
    return notes


# ------------------------------------------------------------------------------------------------ command
CONSTRAINTS = Path("constraints") / "golden.txt"


def version_lines(fresh: FreshRun, golden: dict | None) -> list[str]:
    """The library versions this run used, and those that differ from the golden file's (numerics move with
    them: e.g. a diffusers release changed Wan-Animate's motion-encoder casting). Packages the golden did not
    record are not compared."""
    now = {k: v for k, v in (fresh.provenance.get("packages") or {}).items() if k != "everanimate-bench"}
    lines = ["versions: " + ", ".join(f"{k} {v}" for k, v in now.items() if v)]
    if golden is None:
        return lines
    recorded = (golden.get("provenance") or {}).get("packages") or {}
    differ = [f"{k} {recorded[k]} -> {now[k]}" for k in now if k in recorded and recorded[k] != now[k]]
    if differ:
        lines.append(f"versions differ from the golden file's (golden -> now): {', '.join(differ)}")
        lines.append(f"  the goldens' environment: pip install -e \".[dev]\" -c {CONSTRAINTS.as_posix()} (numbers may "
                     "move with these libraries alone)")
    elif recorded:
        lines.append("versions: same as the golden file's")
    return lines


def spec_from_args(args) -> RegressionSpec:
    spec = DEFAULT_SPEC
    changes = {}
    if args.methods:
        changes["methods"] = tuple(args.methods)
    if args.durations:
        changes["durations"] = tuple(float(d) for d in args.durations)
    if args.max_samples is not None:
        changes["max_samples"] = int(args.max_samples)
    return replace(spec, **changes) if changes else spec


def _short(x: float | None) -> str:
    return "none" if x is None else f"{x:.4f}"


def regress(spec: RegressionSpec, golden_path: Path, update: bool = False, keep: bool = False,
            out: TextIO | None = None) -> int:
    out = out or sys.stdout
    golden_path = Path(golden_path)
    golden = None if update else read_golden(golden_path)  # a missing golden fails before the run
    work = Path(tempfile.mkdtemp(prefix=f"bench-regress-{spec.name}-"))
    print(f"regress {spec.name}: {', '.join(spec.methods)} x {spec.max_samples} sample(s), "
          f"{', '.join(f'{d:g} s' for d in spec.durations)}, metrics {', '.join(spec.metrics)}, preset "
          f"{spec.preset!r}, fresh run in {work}", file=out, flush=True)
    try:
        fresh = run_fresh(spec, work, out=out)
    finally:
        if keep:
            print(f"kept the regression run's results folder: {work}", file=out)
        else:
            shutil.rmtree(work, ignore_errors=True)
    for line in version_lines(fresh, golden):
        print(line, file=out)
    if fresh.failures:
        print(f"\n{len(fresh.failures)} cell(s) FAILED to run:", file=out)
        for method, sample, message in fresh.failures:
            print(f"  - {method} / {sample}: {message}", file=out)
        print("regression: FAILED (the run itself failed; nothing compared" +
              (", golden not written)" if update else ")"), file=out)
        return 1
    if update:
        write_golden(golden_path, spec, fresh)
        print(f"\nwrote {golden_path} ({len(fresh.cells)} cells); review `git diff {golden_path}` and commit it",
              file=out)
        rows = compare(spec, {}, fresh.cells)
        print(format_rows([replace(r, status="written") for r in rows]), file=out)
        if fresh.provenance.get("untrained"):
            print(f"WARNING: {', '.join(fresh.provenance['untrained'])} ran with randomly initialised (untrained) "
                  "components: this golden file guards the code path only, not trained-model quality", file=out)
        return 0
    assert golden is not None
    rows = compare(spec, golden["cells_by_key"], fresh.cells)
    print(file=out)
    print(format_rows(rows), file=out)
    bad = [r for r in rows if not r.ok]
    if not bad:
        print(f"\nregression: OK ({len(rows)} cells within tolerance of {golden_path})", file=out)
        return 0
    counts = {s: sum(r.status == s for r in bad) for s in ("REGRESSION", "MISSING", "EXTRA")}
    print(f"\nregression: FAILED ({', '.join(f'{n} {s}' for s, n in counts.items() if n)} of {len(rows)} cells "
          f"vs {golden_path})", file=out)
    for r in bad:
        what = {"REGRESSION": f"golden {_short(r.golden)}, now {_short(r.fresh)} (tolerance {r.tolerance})",
                "MISSING": "in the golden file, not produced by this run",
                "EXTRA": "produced by this run, not in the golden file"}[r.status]
        print(f"  - {r.status}: {r.metric} / {r.method} / {r.duration_s:g} s: {what}", file=out)
    for note in provenance_notes(golden, fresh):
        print(f"  note: {note}", file=out)
    print("  fix: find the change that moved these numbers; if it is intended, refresh the golden file with "
          "`python -m bench regress --update` (same options) and commit it", file=out)
    return 1


def regress_main(args) -> int:
    spec = spec_from_args(args)
    golden = Path(args.golden) if args.golden else spec.golden_path()
    return regress(spec, golden, update=args.update, keep=args.keep)
