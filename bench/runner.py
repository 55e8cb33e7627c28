"""The run grid: one rollout per (method, sample) at the longest duration, stored chunk by chunk,
resumed after any interruption, scored, and written to ``scores.jsonl``.

Sharding: with ``RANK`` / ``WORLD_SIZE`` in the environment (``torchrun``, ``accelerate launch``), cell ``i``
of the deterministic grid order belongs to rank ``i % WORLD_SIZE``; each rank writes its own shard file and
``bench table`` merges them.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from bench.animator import AnimationRequest, Animator, adaptations_to_list, check_frames, plan_chunks
from bench.config import RunConfig, duration_frames
from bench.errors import BenchError, ConfigError, DataError, MethodError
from bench.metrics.base import PROTOCOL_VERSION
from bench.provenance import provenance
from bench.records import (ALL_SAMPLES, SCORES_FILE, ExperimentManifest, ScoreRecord, build_record, read_records,
                           shard_name, shard_pattern, write_scores)
from bench.sample import FileSample, Sample
from bench.scoring import MetricPlan, plan_metrics, pooled_records, score_rollout
from bench.store import Rollout, atomic_write_json, check_writable, rollout_key


@dataclass
class Cell:
    method: str
    sample: Sample
    index: int


@dataclass
class RunOutcome:
    records: list[ScoreRecord] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (method, sample, message)
    scores_file: Path | None = None
    generated_chunks: int = 0
    scored_cells: int = 0  # (method, sample) cells scored; 0 = every cell failed: there is no table to print


def shard_from_env() -> tuple[int, int]:
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"bad shard RANK={rank} WORLD_SIZE={world}", fix="launch with torchrun or accelerate launch")
    return rank, world


def check_run(config: RunConfig) -> list[tuple[str, int, int]]:
    """Check every argument of a run before anything starts (no rendering, no worker, no generation):
    the results folder, dataset, size, sample ids, fps and durations against each sample's length, the
    metric names and weights, the method names and every method argument (through each method's torch-free
    ``Config``). The cheap checks come first, so a dataset / size / samples / durations / method-argument
    mistake is answered in well under a second, with no torch imported. Returns the
    ``(id, frames, fps)`` of the samples the run uses."""
    from bench.datasets import describe_dataset
    from bench.metrics import METRICS
    from bench.registry import method_base, methods, unknown

    check_writable(Path(config.results))
    samples = describe_dataset(config.dataset, size=config.size, n_frames=config.max_frames)
    if config.samples:
        missing = set(config.samples) - {sid for sid, _, _ in samples}
        if missing:
            raise ConfigError(f"samples {sorted(missing)} are not in dataset {config.dataset}",
                              fix=f"known ids: {', '.join(sid for sid, _, _ in samples)}")
        samples = [s for s in samples if s[0] in set(config.samples)]
    if config.max_samples:
        samples = samples[: config.max_samples]
    needed = config.max_frames
    for sid, n_frames, fps in samples:
        if fps != config.fps:
            raise DataError(f"sample {sid} is {fps} fps, the run is {config.fps} fps",
                            fix="resample the data to the protocol fps or pass --fps to match")
        if n_frames < needed and config.pose_padding == "error":
            raise DataError(
                f"sample {sid} is {n_frames} frames long ({n_frames / fps:g} s) but the longest duration needs "
                f"{needed} ({needed / config.fps:g} s)",
                fix=f"ask for --durations up to {n_frames / fps:g}, or pass --pose-padding reflect|hold to extend the "
                    "pose sequence (recorded in every score and in the rollout key)")
    table = methods()
    for name in config.methods:
        if method_base(name) not in table:
            raise unknown("method", method_base(name), table)
    for name in config.metrics:
        if name not in METRICS:
            raise unknown("metric", name, METRICS)
    for name in config.methods:
        check_method_arguments(name, config)
    plan_metrics(config.metrics, quiet=True)  # explicit metrics: their weights must be present (imports them)
    return samples


def load_samples(config: RunConfig) -> list[Sample]:
    """Samples of the configured dataset: a folder of sample folders, a manifest, or a registered name."""
    path = Path(config.dataset)
    if path.is_dir():
        folders = sorted(p.parent for p in path.glob("*/sample.json"))
        if not folders:
            raise DataError(f"{path} holds no sample folders (*/sample.json)", fix="point --dataset at rendered samples")
        samples: list[Sample] = [FileSample.from_folder(f) for f in folders]
    else:
        from bench.datasets import load_dataset

        samples = load_dataset(config.dataset, n_frames=config.max_frames, size=config.size,
                               cache_root=Path(config.results) / "cache", progress=config.progress,
                               allow_short=config.pose_padding != "error")
    if config.samples:
        samples = [s for s in samples if s.id in set(config.samples)]
    if config.max_samples:
        samples = samples[: config.max_samples]
    return samples


def reference_count(protocol: str, max_references: int, sample: Sample) -> int:
    """Reference views a method is given: ``single`` = the user reference only (the paper's protocol);
    ``multi`` = every view the sample ships. Never more than the method can use (0 for methods that read
    no reference, such as the ground truth)."""
    if max_references <= 0:
        return 0
    if protocol == "single":
        return 1
    return max(1, min(len(sample.references()), max_references))


def check_method_arguments(name: str, config: RunConfig) -> None:
    """Every argument of method ``name`` checked through its ``Config`` alone, which imports no torch; a
    plugin that names no config is instantiated instead."""
    from bench.animator import make_config
    from bench.registry import method_config

    config_cls = method_config(name)
    if config_cls is None:
        instantiate(name, config)
    else:
        make_config(name, config_cls, config.args_for(name))


def instantiate(name: str, config: RunConfig) -> Animator:
    from bench.registry import method_class

    cls = method_class(name)
    try:
        return cls(**config.args_for(name))
    except TypeError as exc:
        raise ConfigError(f"method {name!r} does not accept arguments {config.args_for(name)}: {exc}",
                          fix="see `python -m bench ls --methods` and the method's docs for its arguments") from None


class GridRunner:
    """Runs a ``RunConfig``: generate what is missing, score, write the experiment's scores."""

    def __init__(self, config: RunConfig, out=sys.stdout, score_only: bool = False):
        self.config = config
        self.score_only = score_only
        self.root = Path(config.results)
        self.out = out
        self.rank, self.world = shard_from_env()
        self.animators: dict[str, Animator] = {}
        self.loaded: set[str] = set()
        self.readiness: dict[str, BenchError | None] = {}
        self.n_references: dict[str, set[int]] = {}  # per method: reference views its rollouts were given

    def log(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    # -- setup -------------------------------------------------------------------------------------
    def prepare(self) -> tuple[list[Cell], MetricPlan]:
        config = self.config
        check_run(config)  # every argument, before anything is rendered or generated
        for name in config.methods:
            self.animators[name] = instantiate(name, config)
        plan = plan_metrics(config.metrics, quiet=os.environ.get("BENCH_WORKER", "0") != "0")  # notices once
        samples = load_samples(config)
        self.sample_ids = [s.id for s in samples]
        for sample in samples:  # what was described is what was loaded
            if sample.fps != config.fps or (sample.n_frames < config.max_frames and config.pose_padding == "error"):
                raise DataError(f"sample {sample.id} loaded as {sample.n_frames} frames at {sample.fps} fps, the run "
                                f"needs {config.max_frames} at {config.fps}", fix="rebuild the dataset's cache")
        cells = [Cell(m, s, i) for i, (m, s) in enumerate((m, s) for m in config.methods for s in samples)]
        return [c for c in cells if c.index % self.world == self.rank], plan

    def ready(self, name: str) -> Animator:
        """``check_ready`` once per method; a method that is not ready fails its cells only."""
        if name not in self.readiness:
            try:
                self.animators[name].check_ready()
                self.readiness[name] = None
            except BenchError as exc:
                self.readiness[name] = exc
        if self.readiness[name] is not None:
            raise self.readiness[name]
        return self.animators[name]

    def animator_for(self, name: str) -> Animator:
        animator = self.ready(name)
        if name not in self.loaded:
            animator.load(self.config.device)
            self.loaded.add(name)
        return animator

    def rollout_for(self, cell: Cell) -> tuple[Rollout, AnimationRequest]:
        config = self.config
        animator = self.ready(cell.method)
        n_frames = min(config.max_frames, cell.sample.n_frames) if config.pose_padding == "error" else config.max_frames
        n_refs = reference_count(config.references, animator.capabilities().max_references, cell.sample)
        key, payload = rollout_key(animator.name, animator.version, animator.identity(),
                                   animator.weight_fingerprints(), cell.sample.content_hash, n_frames, config.fps,
                                   cell.sample.height, cell.sample.width, config.seed, n_references=n_refs,
                                   pose_padding=config.pose_padding)
        request = AnimationRequest(sample=cell.sample, n_frames=n_frames, fps=config.fps, height=cell.sample.height,
                                   width=cell.sample.width, seed=config.seed, pose_padding=config.pose_padding,
                                   n_references=n_refs, rollout_key=key)
        return Rollout(self.root, cell.method, key, payload), request

    # -- generation ---------------------------------------------------------------------------------
    def generate(self, cell: Cell, rollout: Rollout, request: AnimationRequest) -> int:
        """Generate the missing chunks of one rollout; returns how many chunks were generated."""
        animator = self.animator_for(cell.method)
        caps = animator.capabilities()
        specs = plan_chunks(request.n_frames, caps.chunk_frames, caps.overlap_frames)
        rollout.ensure_key()
        done = rollout.chunk_records(verify=True)
        if done and (not caps.can_resume or caps.end_to_end) and len(done) < len(specs):
            done = []  # cannot continue mid-rollout: start over
        rollout.discard_after(len(done))
        resume = None
        if done:
            last = done[-1]
            resume = (len(done), rollout.load_state(last.index) if last.state_sha256 else None)
        animator.adaptations = []
        generated = 0
        bar = None
        if self.config.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(specs), initial=len(done), desc=f"{cell.method} / {cell.sample.id}", unit="chunk",
                       leave=False)

        def sink(spec, frames, state):
            nonlocal generated
            frames = check_frames(cell.method, spec, frames, request.height, request.width)
            rollout.write_chunk(spec.index, spec.out_start, frames, request.fps, state,
                                adaptations_to_list(animator.adaptations))
            generated += 1
            if bar:
                bar.update(1)

        if len(done) < len(specs):
            animator.generate(request, sink, resume=resume)
        if bar:
            bar.close()
        records = rollout.chunk_records()
        produced = sum(r.n_frames for r in records)
        if len(records) != len(specs) or produced < request.n_frames:
            raise MethodError(f"{cell.method}: produced {len(records)} of {len(specs)} chunks ({produced} of "
                              f"{request.n_frames} frames)", fix="the method stopped early; see its log")
        adaptations: list[dict] = []
        for item in [a for r in records for a in r.adaptations] + adaptations_to_list(animator.adaptations):
            if item not in adaptations:
                adaptations.append(item)
        if produced > request.n_frames:
            adaptations.append({"kind": "truncate", "detail": f"last chunk overshoots; video truncated to "
                                f"{request.n_frames} of {produced} generated frames", "generated": produced})
        if request.n_frames > cell.sample.n_frames:
            adaptations.append({"kind": "extend", "detail": f"pose sequence of {cell.sample.n_frames} frames padded "
                                f"({request.pose_padding}) to {request.n_frames}"})
        rollout.mark_complete(request.n_frames, {"adaptations": adaptations, "model_info": animator.model_info()})
        return generated

    # -- the whole grid -----------------------------------------------------------------------------
    def run(self) -> RunOutcome:
        config = self.config
        cells, plan = self.prepare()
        outcome = RunOutcome()
        prov = provenance(config.device, PROTOCOL_VERSION)
        self.manifest = ExperimentManifest.from_config(config, self.sample_ids)
        self.log(f"bench run: {len(config.methods)} method(s) x {len({c.sample.id for c in cells})} sample(s), "
                 f"durations {', '.join(f'{d:g}s' for d in config.durations)}, rank {self.rank}/{self.world}, "
                 f"metrics {', '.join(plan.names) or '-'}" +
                 (f" (skipped: {', '.join(n for n, _ in plan.skipped)})" if plan.skipped else ""))
        pending = list(cells)
        pooled: dict[str, dict[str, list[Path]]] = {}
        started = time.time()
        deferred = 0
        grid_bar = None
        if config.progress:
            from tqdm.auto import tqdm

            grid_bar = tqdm(total=len(cells), desc="rollouts", unit="rollout")
        while pending:
            self.report_progress(len(cells) - len(pending), len(cells))
            if grid_bar is not None:
                grid_bar.n = len(cells) - len(pending)
                grid_bar.refresh()
            cell = pending.pop(0)
            try:
                rollout, request = self.rollout_for(cell)
                with rollout.lock(timeout=0 if deferred < len(cells) else -1):
                    if not rollout.is_complete():
                        if self.score_only:
                            raise BenchError(f"no complete rollout stored for {cell.method} / {cell.sample.id}",
                                             fix="`bench score` only re-scores; run `python -m bench run` first")
                        outcome.generated_chunks += self.generate(cell, rollout, request)
                    scores = score_rollout(rollout, cell.sample, plan, config.durations, config.fps, config.window_s,
                                           device=config.device, progress=config.progress, force=self.score_only,
                                           pose_padding=config.pose_padding,
                                           gt_cache_dir=self.root / "cache" / "gt_features")
            except BenchError as exc:
                self.fail(outcome, cell, exc)
                continue
            except Exception as exc:  # noqa: BLE001 - keep going past a failed cell, list it at the end
                if type(exc).__name__ == "Timeout":  # filelock: another process works on this rollout
                    pending.append(cell)
                    deferred += 1
                    continue
                self.fail(outcome, cell, exc, trace=True)
                continue
            status = rollout.status() or {}
            model_info = status.get("model_info", {})
            self.n_references.setdefault(cell.method, set()).add(request.n_references)
            outcome.scored_cells += 1
            for record in scores.records:
                outcome.records.append(self.score_line(cell, rollout, record, status, model_info, prov,
                                                       request.n_references))
            for name, path in scores.pooled.items():
                pooled.setdefault(cell.method, {}).setdefault(name, []).append(path)
        self.report_progress(len(cells), len(cells))
        if grid_bar is not None:
            grid_bar.n = len(cells)
            grid_bar.close()
        for name, reason in plan.skipped:
            for method in config.methods:
                for duration in config.durations:
                    outcome.records.append(build_record(
                        self.manifest, method=method, sample=ALL_SAMPLES, metric=name, duration_s=duration,
                        n_frames=duration_frames(duration, config.fps), value=None, missing=reason,
                        n_references=cell_references(self.n_references.get(method, ())),
                        protocol=PROTOCOL_VERSION, provenance=prov))
        if self.world == 1:
            weights = {name: plan.weight_records(name) for name in plan.names}
            outcome.records += merge_pooled(self.manifest, pooled, outcome.records, prov, weights)
            outcome.scores_file = write_scores(self.scores_dir() / SCORES_FILE, outcome.records)
            self.manifest.write(self.scores_dir())
            for stale in [p for kind in ("scores", "pooled", "progress") for p in self.scores_dir().glob(shard_pattern(kind))]:
                stale.unlink()  # shards of an earlier sharded run of this experiment: never merged into this one
        else:
            outcome.scores_file = write_scores(self.scores_dir() / shard_name("scores", self.rank, self.world),
                                               outcome.records)
            atomic_write_json(self.scores_dir() / shard_name("pooled", self.rank, self.world),
                              {"states": {m: {k: sorted(map(str, v)) for k, v in per.items()} for m, per in pooled.items()},
                               "weights": {name: plan.weight_records(name) for name in plan.names},
                               "failures": [list(f) for f in outcome.failures],
                               "scored_cells": outcome.scored_cells})
            self.manifest.write(self.scores_dir())  # every rank writes the same manifest
        self.log(f"scores: {outcome.scores_file} ({len(outcome.records)} lines, {time.time() - started:.1f} s)")
        return outcome

    def report_progress(self, done: int, total: int) -> None:
        """A ``--workers`` child writes its cells done (scored or failed) for the parent's combined bar."""
        if os.environ.get("BENCH_WORKER") is not None and self.world > 1:
            atomic_write_json(self.scores_dir() / shard_name("progress", self.rank, self.world),
                              {"done": done, "total": total})

    def fail(self, outcome: RunOutcome, cell: Cell, exc: BaseException, trace: bool = False) -> None:
        message = str(exc)
        if trace:
            message = f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exception(exc)[-3:])
        outcome.failures.append((cell.method, cell.sample.id, message))
        self.log(f"FAILED {cell.method} / {cell.sample.id}: {message.splitlines()[0]}")

    def score_line(self, cell: Cell, rollout: Rollout, record: dict, status: dict, model_info: dict,
                   prov: dict, n_references: int) -> ScoreRecord:
        untrained = True if is_untrained(model_info) else None
        return build_record(self.manifest, method=cell.method, sample=cell.sample.id, protocol=PROTOCOL_VERSION,
                            provenance=prov, method_version=rollout.payload["version"], rollout_key=rollout.key,
                            n_references=int(n_references), adaptations=status.get("adaptations", []),
                            method_weights=dict(model_info.get("weights", {})), untrained=untrained, **record)

    def scores_dir(self) -> Path:
        return self.root / "scores" / self.config.experiment_name


def merge_pooled(manifest: ExperimentManifest, states: dict[str, dict[str, list[Path]]],
                 records: list[ScoreRecord], prov: dict, weights: dict[str, list]) -> list[ScoreRecord]:
    """Cell records of the pooled metrics (FID, V-MAE FD) from the per-rollout states of a whole run:
    the one place they are computed, for one process and for merged shards alike."""
    out = []
    for record in pooled_records(states, manifest.durations, manifest.fps, weights):
        counts = [r.n_references for r in records if r.method == record["method"] and r.sample != ALL_SAMPLES]
        out.append(build_record(manifest, protocol=PROTOCOL_VERSION, provenance=prov,
                                n_references=cell_references(c for c in counts if c is not None), **record))
    return out


def merge_shards(folder: Path) -> RunOutcome:
    """Merge the shard files of a sharded run (``--workers`` or torchrun) into one ``scores.jsonl``: the
    shards of one world size, all present, the pooled metrics computed once over every shard's states;
    then the shard files go. Raises when shards are missing or from runs of different sizes. Returns the
    merged run's outcome: its scores file, scored cells and every rank's failures."""
    import re

    folder = Path(folder)
    shards = sorted(folder.glob(shard_pattern("scores")))
    if not shards:
        raise BenchError(f"no shard files in {folder}", fix="run `python -m bench run` with --workers N or torchrun")
    worlds = {int(re.search(r"-of-(\d+)", p.name).group(1)) for p in shards}
    if len(worlds) != 1:
        raise BenchError(f"{folder} holds shards of runs with {sorted(worlds)} workers", fix="delete the stale shard "
                         "files (keep one run's) and run `python -m bench table` again")
    world = worlds.pop()
    expected = [folder / shard_name("scores", r, world) for r in range(world)]
    absent = [p.name for p in expected if not p.exists()]
    if absent:
        raise BenchError(f"{folder}: shard(s) {', '.join(absent)} missing: not every rank finished",
                         fix="re-run the same command (finished rollouts are reused)")
    manifest = ExperimentManifest.read(folder)
    if manifest is None:
        raise BenchError(f"{folder} has no experiment.json", fix="re-run the same `python -m bench run` command")
    records = [r for p in expected for r in read_records(p)]
    states: dict[str, dict[str, list[Path]]] = {}
    weights: dict[str, list] = {}
    outcome = RunOutcome()
    for r in range(world):
        index = folder / shard_name("pooled", r, world)
        if index.exists():
            data = json.loads(index.read_text())
            weights.update(data.get("weights", {}))
            outcome.failures += [tuple(f) for f in data.get("failures", [])]
            outcome.scored_cells += int(data.get("scored_cells", 0))
            for method, per in data.get("states", {}).items():
                for metric, paths in per.items():
                    states.setdefault(method, {}).setdefault(metric, []).extend(Path(p) for p in paths)
    prov = records[0].provenance if records else provenance("cpu", PROTOCOL_VERSION)
    records += merge_pooled(manifest, states, records, prov, weights)
    outcome.scores_file = write_scores(folder / SCORES_FILE, records)
    for p in [*expected, *(folder / shard_name("pooled", r, world) for r in range(world))]:
        p.unlink(missing_ok=True)
    return outcome


def workers_done(folder: Path, world: int) -> int:
    """Cells done so far by the ``world`` workers of a ``--workers`` run, from their progress shard files."""
    done = 0
    for rank in range(world):
        try:
            done += int(json.loads((Path(folder) / shard_name("progress", rank, world)).read_text())["done"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # not written yet (or being replaced): counts as 0 until the next poll
    return done


def cell_references(counts) -> int | list[int] | None:
    """``n_references`` of a cell (all samples of a method): the count when every rollout got the same,
    the sorted distinct counts otherwise (a multi-view run over samples with different numbers of views),
    None when no rollout of the method was scored."""
    counts = sorted({int(c) for c in counts})
    if not counts:
        return None
    return counts[0] if len(counts) == 1 else counts


def is_untrained(model_info: dict) -> bool:
    """Random-weight (smoke-test) components: tables label such rows so nobody reads them as results."""
    return model_info.get("trained") is False or bool(model_info.get("untrained")) or any(isinstance(v, dict) and v.get("trained") is False
                                                     for v in model_info.values())


def run_grid(config: RunConfig, out=sys.stdout, score_only: bool = False) -> RunOutcome:
    return GridRunner(config, out=out, score_only=score_only).run()
