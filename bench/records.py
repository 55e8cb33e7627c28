"""The result schema: one typed score record and the experiment manifest beside it.

``results/scores/<experiment>/``::

    experiment.json   what the run was: dataset, size, fps, window, durations, pose padding, seed,
                      references, methods and their arguments, metrics (``ExperimentManifest``)
    scores.jsonl      one ``ScoreRecord`` per line: (method, sample, duration, metric) with its value and
                      provenance; ``sample == "*"`` for cell records (pooled metrics such as FID, and
                      metrics skipped for want of weights)

Every record also carries the dataset, size, fps and pose padding it was scored with, so records of
different runs are never read as one table: ``split_runs`` separates them (one table per run setting). ``build_record`` is the one place a
score line is made; ``read_records`` / ``write_scores`` the one place they are read and written (tables,
report, regress and the shard merge all read typed records through ``read_records``).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

from bench.errors import BenchError, DataError

SCORE_SCHEMA = "bench.score/2"  # 2: dataset, size, fps and pose_padding in every record
EXPERIMENT_SCHEMA = "bench.experiment/1"
SCORES_FILE = "scores.jsonl"
EXPERIMENT_FILE = "experiment.json"
ALL_SAMPLES = "*"


SHARD_KINDS = {"scores": "jsonl", "pooled": "json", "progress": "json"}


def shard_name(kind: str, rank: int, world: int) -> str:
    """The file one rank of a sharded run writes: ``scores.shard-R-of-N.jsonl`` (its score lines),
    ``pooled.shard-R-of-N.json`` (its pooled-metric states) or ``progress.shard-R-of-N.json`` (its cells done,
    for the combined progress bar of ``--workers``): the only place these names are spelled."""
    return f"{kind}.shard-{rank}-of-{world}.{SHARD_KINDS[kind]}"


def shard_pattern(kind: str) -> str:
    return f"{kind}.shard-*-of-*.{SHARD_KINDS[kind]}"


@dataclass(frozen=True)
class ScoreRecord:
    """One score line. ``value`` is None for a missing cell (``missing`` says why); never 0."""

    experiment: str
    method: str
    sample: str  # a sample id, or "*" for a cell (all samples of a method)
    metric: str
    duration_s: float
    n_frames: int
    value: float | None
    dataset: str
    size: str
    fps: int
    seed: int
    protocol: str
    provenance: dict
    higher_is_better: bool | None = None
    pose_padding: str = "error"
    n_references: int | list | None = None
    missing: str | None = None
    # per-sample records
    method_version: str | None = None
    rollout_key: str | None = None
    coverage: float | None = None
    windows: dict | None = None
    drift_slope_per_min: float | None = None
    prefix_of: dict | None = None
    adaptations: list | None = None
    method_weights: dict | None = None
    untrained: bool | None = None
    metric_info: dict | None = None
    metric_weights: list | None = None
    # cell records of pooled metrics
    pooled: dict | None = None
    schema: str = SCORE_SCHEMA

    def to_json(self) -> dict:
        """The JSON line: fields that do not apply (None) are left out."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, obj: dict) -> "ScoreRecord":
        """A record from its JSON line; keys this schema does not know are ignored, a line that is not a score
        record (not an object, a key missing, a value of the wrong kind) is a ``DataError`` saying which."""
        if not isinstance(obj, dict):
            raise DataError(f"a score record is a JSON object, not {type(obj).__name__}",
                            fix="re-run `python -m bench run` to rewrite it")
        missing = {"experiment", "method", "sample", "metric", "duration_s"} - set(obj)
        if missing:
            raise DataError(f"score record lacks {sorted(missing)}", fix="re-run `python -m bench run` to rewrite it")
        for name in ("experiment", "method", "sample", "metric"):
            if not isinstance(obj[name], str):
                raise DataError(f"score record field {name!r} is {obj[name]!r}, not a string",
                                fix="re-run `python -m bench run` to rewrite it")
        for name in ("duration_s", "value"):
            v = obj.get(name)
            if (v is not None or name == "duration_s") and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise DataError(f"score record field {name!r} is {v!r}, not a number",
                                fix="re-run `python -m bench run` to rewrite it")
        known = {f.name for f in fields(cls)}
        base = {"n_frames": 0, "value": None, "dataset": None, "size": None, "fps": None, "seed": 0, "protocol": "",
                "provenance": {}}
        return cls(**{**base, **{k: v for k, v in obj.items() if k in known}})


def build_record(run: "ExperimentManifest", *, method: str, sample: str, metric: str, duration_s: float,
                 n_frames: int, value: float | None, protocol: str, provenance: dict, **extra: Any) -> ScoreRecord:
    """The one builder of score records: the run's facts (dataset, size, fps, seed, padding) come from
    the experiment manifest, the measurement from the caller."""
    return ScoreRecord(experiment=run.experiment, method=method, sample=sample, metric=metric,
                       duration_s=float(duration_s), n_frames=int(n_frames),
                       value=None if value is None else float(value), dataset=run.dataset, size=run.size,
                       fps=int(run.fps), seed=int(run.seed), pose_padding=run.pose_padding, protocol=protocol,
                       provenance=provenance, **extra)


@dataclass(frozen=True)
class ExperimentManifest:
    """What an experiment's scores were made from (``experiment.json`` beside ``scores.jsonl``)."""

    experiment: str
    dataset: str
    size: str
    fps: int
    window_s: float
    durations: tuple[float, ...]
    pose_padding: str
    seed: int
    references: str = "single"
    methods: tuple[str, ...] = ()
    method_args: dict = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    samples: tuple[str, ...] = ()
    schema: str = EXPERIMENT_SCHEMA

    @classmethod
    def from_config(cls, config, samples: Sequence[str] = ()) -> "ExperimentManifest":
        return cls(experiment=config.experiment_name, dataset=str(config.dataset), size=config.size, fps=config.fps,
                   window_s=float(config.window_s), durations=tuple(float(d) for d in config.durations),
                   pose_padding=config.pose_padding, seed=config.seed, references=config.references,
                   methods=tuple(config.methods),
                   method_args={m: config.args_for(m) for m in config.methods if config.args_for(m)},
                   metrics=tuple(config.metrics), samples=tuple(samples))

    def write(self, folder: Path) -> Path:
        from bench.store import atomic_write_json

        path = Path(folder) / EXPERIMENT_FILE
        atomic_write_json(path, asdict(self))
        return path

    @classmethod
    def read(cls, folder: Path) -> "ExperimentManifest | None":
        """The experiment's manifest; None for scores written before manifests existed."""
        path = Path(folder) / EXPERIMENT_FILE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            known = {f.name for f in fields(cls)}
            data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{path} is not a valid experiment manifest ({exc})",
                            fix="re-run `python -m bench run` for this experiment") from None


def sort_key(r: dict) -> tuple:
    return r["method"], r["sample"], r["duration_s"], r["metric"]


def write_scores(path: Path, records: Iterable[ScoreRecord]) -> Path:
    """Score lines sorted by (method, sample, duration, metric), one JSON object per line, written atomically."""
    from bench.store import atomic_write_bytes

    rows = sorted((r.to_json() for r in records), key=sort_key)
    atomic_write_bytes(Path(path), "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())
    return Path(path)


def read_records(path: Path) -> list[ScoreRecord]:
    """The one reader of score files (``scores.jsonl`` and its shards): one ``ScoreRecord`` per non-empty
    line. A line that is not JSON, or not a score record, is a ``DataError`` naming the file and line."""
    path = Path(path)
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(ScoreRecord.from_json(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{n} is not valid JSON (column {exc.colno}: {exc.msg})",
                            fix="delete the file and re-run `bench run`") from None
        except DataError as exc:
            raise DataError(f"{path}:{n}: {exc.message}", fix=exc.fix) from None
        except TypeError as exc:
            raise DataError(f"{path}:{n} is not a score record ({exc})", fix="re-run `python -m bench run` to rewrite it") from None
    return out


def read_scores(folder: Path) -> list[ScoreRecord]:
    """The records of one experiment (its ``scores.jsonl``). Shards of a sharded run that were not merged
    yet are an error that says how to merge them (``bench table`` does), never silently mixed in."""
    folder = Path(folder)
    path = folder / SCORES_FILE
    shards = sorted(folder.glob(shard_pattern("scores")))
    if not path.exists():
        if shards:
            raise BenchError(f"{folder} holds unmerged shard files ({', '.join(p.name for p in shards)})",
                             fix=f"merge them: python -m bench table --experiment {folder.name} --results "
                                 f"{folder.parent.parent}")
        raise BenchError(f"no scores in {folder}", fix="run `python -m bench run ...` first (or pass --experiment)")
    return read_records(path)


#: what makes two records comparable in one table: the run setting they were scored with
RUN_SETTING = ("dataset", "size", "fps", "pose_padding")


def run_facts(r: ScoreRecord) -> tuple:
    return tuple(getattr(r, name) for name in RUN_SETTING)


def split_runs(records: Sequence[ScoreRecord]) -> list[tuple[dict[str, Any], list[ScoreRecord]]]:
    """The records grouped by run setting (dataset, size, fps, pose padding), each group with what
    distinguishes it from the others (``{}`` when all records are of one run). Records written before the
    setting was recorded (dataset, size and fps None) go with the one recorded setting when there is only
    one, else into a group of their own whose setting values are all None."""
    groups: dict[tuple, list[ScoreRecord]] = {}
    for r in records:
        groups.setdefault(run_facts(r), []).append(r)
    unrecorded = [k for k in groups if k[:3] == (None, None, None)]
    recorded = [k for k in groups if k not in unrecorded]
    if len(recorded) == 1 and unrecorded and all(k[3] == recorded[0][3] for k in unrecorded):
        groups[recorded[0]] = [r for k in [*recorded, *unrecorded] for r in groups.pop(k)]
    keys = sorted(groups, key=lambda k: tuple((v is None, str(v)) for v in k))
    basis = [k for k in keys if k[:3] != (None, None, None)]
    basis = basis if len(basis) > 1 else keys
    varying = [i for i, name in enumerate(RUN_SETTING) if len({k[i] for k in basis}) > 1]
    return [({RUN_SETTING[i]: None if k[:3] == (None, None, None) else k[i] for i in varying}, groups[k])
            for k in keys]


def describe_setting(setting: dict[str, Any]) -> str:
    """``{"size": "lab-480p", "fps": 16}`` -> ``"size lab-480p, 16 fps"`` (None: not recorded)."""
    if any(v is None for v in setting.values()):
        return "run setting not recorded (scores from before bench.score/2)"
    words = {"dataset": "dataset {}", "size": "size {}", "fps": "{} fps", "pose_padding": "pose padding {}"}
    return ", ".join(words[k].format(v) for k, v in setting.items()) or "one run"


def check_one_run(records: Sequence[ScoreRecord]) -> None:
    """Records of one table must come from one run setting (``split_runs`` separates them first): a lab-64
    and a lab-480p run are different experiments."""
    groups = split_runs(records)
    if len(groups) > 1:
        listing = "; ".join(describe_setting(setting) for setting, _ in groups)
        raise DataError(f"these scores mix {len(groups)} runs ({listing}): one table would compare them as one",
                        fix="split them with bench.records.split_runs (bench table and report do), or give each "
                            "run its own --experiment NAME")
