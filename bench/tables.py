"""Leaderboards and drift curves from stored scores only (never from a model run).

Input: typed ``ScoreRecord``s (``bench.records.read_scores`` / ``read_records``). Records of different run
settings (dataset, size, fps, pose padding) are never one table: ``leaderboards`` makes one per setting,
each headed by what distinguishes it, and says so. Presentation is data:
``COLUMNS`` holds display names, direction and format for every metric; rows are methods, column groups are
durations, the best value per column is bold and a missing cell stays missing ("-", or the recorded reason
such as "n/a (no weights)"), never 0.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from bench.errors import BenchError
from bench.metrics import METRICS
from bench.records import (RUN_SETTING, ScoreRecord, check_one_run, describe_setting,  # noqa: F401
                           read_scores, split_runs)


@dataclass(frozen=True)
class Column:
    metric: str
    display: str
    higher_is_better: bool
    digits: int


#: one column per registered metric, in registry order (display, direction, digits: ``bench.metrics.METRICS``)
COLUMNS = tuple(Column(name, info.display, info.higher_is_better, info.digits) for name, info in METRICS.items())
ABLATION_METRICS = ("psnr", "ssim", "lpips")
DISPLAY_NAMES = {"everanimate": "EverAnimate", "wan_animate": "Wan-Animate", "vae_roundtrip": "VAE round trip",
                 "ground_truth": "Ground truth", "static_reference": "Static reference", "precomputed": "Precomputed",
                 "unianimate_dit": "UniAnimate-DiT", "one_to_all": "One-to-All", "scail": "SCAIL",
                 "steadydancer": "SteadyDancer", "oracle_pixel_carry": "Oracle: pixel carry (Wan-Animate path)",
                 "oracle_latent_carry": "Oracle: latent carry (PLP path)",
                 # the lab-ablation preset's variants (Table 2 rows)
                 "wan_animate@no_plp": "w/o PLP (RFM, pixel carry-over)", "everanimate@no_rfm": "w/o RFM (stage 1)"}


def display_name(method: str, untrained: frozenset = frozenset()) -> str:
    name = DISPLAY_NAMES.get(method, method)
    return f"{name} (untrained)" if method in untrained else name


def untrained_methods(records: Iterable[ScoreRecord]) -> frozenset:
    """Methods whose rollouts used random-weight components (score lines flagged ``untrained``)."""
    return frozenset(r.method for r in records if r.untrained)


def column_for(metric: str, higher_is_better: bool | None = None) -> Column:
    """The column of a registered metric (read from the registry now, so a metric added at run time has
    one too); for any other metric, its name and the direction its records give (``higher_is_better``),
    never a guessed one."""
    info = METRICS.get(metric)
    if info is not None:
        return Column(metric, info.display, info.higher_is_better, info.digits)
    if higher_is_better is None:
        raise BenchError(f"metric {metric!r} is not registered and its records give no direction",
                         fix="register the metric (docs/adding_a_metric.md) or record higher_is_better")
    return Column(metric, metric, bool(higher_is_better), 3)


def directions(records: Iterable[ScoreRecord]) -> dict[str, bool]:
    """metric -> higher_is_better, as the records give it."""
    return {r.metric: bool(r.higher_is_better) for r in records if r.higher_is_better is not None}


@dataclass
class Cell:
    mean: float | None
    std: float | None
    n: int
    missing: str | None = None


def aggregate(records: Iterable[ScoreRecord]) -> tuple[dict[tuple[str, float, str], Cell], list[str], list[float],
                                                       list[str]]:
    """Mean (and std) over samples per (method, duration, metric)."""
    values: dict[tuple, list] = defaultdict(list)
    missing: dict[tuple, str] = {}
    methods, durations, metrics = [], set(), []
    for r in records:
        key = (r.method, r.duration_s, r.metric)
        if r.method not in methods:
            methods.append(r.method)
        if r.metric not in metrics:
            metrics.append(r.metric)
        durations.add(r.duration_s)
        if r.missing:
            missing[key] = r.missing
        elif r.value is not None:
            values[key].append(float(r.value))
    cells = {}
    for key in set(values) | set(missing):
        v = values.get(key, [])
        if v:
            mean = sum(v) / len(v)
            std = math.sqrt(sum((x - mean) ** 2 for x in v) / len(v))
            cells[key] = Cell(mean, std, len(v))
        else:
            cells[key] = Cell(None, None, 0, missing.get(key))
    order = list(METRICS)
    metrics.sort(key=lambda m: order.index(m) if m in order else len(order))
    return cells, methods, sorted(durations), metrics


@dataclass
class Leaderboard:
    methods: list[str]
    durations: list[float]
    metrics: list[str]
    cells: dict
    untrained: frozenset = frozenset()
    directions: dict = field(default_factory=dict)  # metric -> higher_is_better, from the records

    def display(self, method: str) -> str:
        return display_name(method, self.untrained)

    def column(self, metric: str) -> Column:
        return column_for(metric, self.directions.get(metric))

    def best(self, duration: float, metric: str) -> float | None:
        col = self.column(metric)
        vals = [c.mean for m in self.methods if (c := self.cells.get((m, duration, metric))) and c.mean is not None
                and m != "ground_truth"]
        if not vals:
            return None
        return max(vals) if col.higher_is_better else min(vals)

    def text(self, method: str, duration: float, metric: str, bold=("**", "**")) -> str:
        cell = self.cells.get((method, duration, metric))
        if cell is None:
            return "-"
        if cell.mean is None:
            return cell.missing or "-"
        s = f"{cell.mean:.{self.column(metric).digits}f}"
        best = self.best(duration, metric)
        if best is not None and cell.mean == best and method != "ground_truth":
            s = f"{bold[0]}{s}{bold[1]}"
        return s

    def header(self, metric: str) -> str:
        col = self.column(metric)
        return f"{col.display} {'↑' if col.higher_is_better else '↓'}"

    def markdown(self) -> str:
        lines = []
        head = ["Method"] + [f"{d:g}s {self.header(m)}" for d in self.durations for m in self.metrics]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for method in self.methods:
            row = [self.display(method)] + [self.text(method, d, m) for d in self.durations for m in self.metrics]
            lines.append("| " + " | ".join(row) + " |")
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["method", "duration_s", "metric", "higher_is_better", "mean", "std", "n_samples", "missing"])
        for method in self.methods:
            for d in self.durations:
                for m in self.metrics:
                    cell = self.cells.get((method, d, m))
                    if cell is None:
                        writer.writerow([method, d, m, self.column(m).higher_is_better, "", "", 0, "missing"])
                    else:
                        writer.writerow([method, d, m, self.column(m).higher_is_better,
                                         "" if cell.mean is None else repr(cell.mean),
                                         "" if cell.std is None else repr(cell.std), cell.n, cell.missing or ""])
        return buffer.getvalue()

    def latex(self) -> str:
        cols = len(self.metrics)
        lines = [r"\begin{tabular}{l" + ("|" + "c" * cols) * len(self.durations) + "}", r"\toprule"]
        lines.append(" & ".join(["Method"] + [rf"\multicolumn{{{cols}}}{{c}}{{{d:g} s}}" for d in self.durations]) + r" \\")
        heads = []
        for m in self.metrics:
            col = self.column(m)
            arrow = r"$\uparrow$" if col.higher_is_better else r"$\downarrow$"
            heads.append(f"{col.display} {arrow}")
        lines.append(" & ".join([""] + heads * len(self.durations)) + r" \\")
        lines.append(r"\midrule")
        for method in self.methods:
            row = [self.display(method)]
            for d in self.durations:
                for m in self.metrics:
                    row.append(self.text(method, d, m, bold=(r"\textbf{", "}")).replace("_", r"\_"))
            lines.append(" & ".join(row) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"


def leaderboard(records: list[ScoreRecord], layout: str = "leaderboard", methods: list[str] | None = None) -> Leaderboard:
    check_one_run(records)
    cells, found_methods, durations, metrics = aggregate(records)
    if layout == "ablation":
        metrics = [m for m in metrics if m in ABLATION_METRICS]
    if methods:
        found_methods = [m for m in methods if m in found_methods] + [m for m in found_methods if m not in methods]
    return Leaderboard(found_methods, durations, metrics, cells, untrained_methods(records), directions(records))


@dataclass
class RunBoard:
    """The leaderboard of one run setting; ``setting`` holds what distinguishes it from the other runs in
    the same scores (empty when they are all one run)."""

    setting: dict
    board: Leaderboard
    records: list[ScoreRecord]

    @property
    def title(self) -> str:
        return describe_setting(self.setting)

    @property
    def slug(self) -> str:
        """A file-name suffix for this run's files ("" for a single run)."""
        import re

        return re.sub(r"[^A-Za-z0-9.-]+", "_", "-".join(f"{k}-{v}" for k, v in self.setting.items())).strip("_")


@dataclass
class Leaderboards:
    """One leaderboard per run setting in the scores; a single run prints exactly as its ``Leaderboard``."""

    runs: list[RunBoard]

    @property
    def split(self) -> bool:
        return len(self.runs) > 1

    def note(self) -> str:
        differ = [name.replace("_", " ") for name in RUN_SETTING if name in self.runs[0].setting]
        return (f"These scores come from {len(self.runs)} runs that differ in {', '.join(differ)}: one table per run "
                "setting (never one table across them).")

    def markdown(self) -> str:
        if not self.split:
            return self.runs[0].board.markdown()
        return self.note() + "\n" + "".join(f"\n### {run.title}\n\n{run.board.markdown()}" for run in self.runs)

    def csv(self) -> str:
        """Split runs: every row led by the setting columns that tell the runs apart."""
        if not self.split:
            return self.runs[0].board.csv()
        import csv
        import io

        def encoded(values: list) -> str:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="").writerow(values)
            return buffer.getvalue()

        names = list(self.runs[0].setting)
        out = []
        for i, run in enumerate(self.runs):
            head, *rows = run.board.csv().splitlines()
            if i == 0:
                out.append(f"{encoded(names)},{head}")
            values = encoded(["" if run.setting[n] is None else run.setting[n] for n in names])
            out += [f"{values},{row}" for row in rows]
        return "\n".join(out) + "\n"

    def latex(self) -> str:
        if not self.split:
            return self.runs[0].board.latex()
        parts = [f"% {self.note()}\n"]
        for run in self.runs:
            title = run.title.replace("_", r"\_")
            parts.append(f"\\paragraph{{{title}}}\n{run.board.latex()}")
        return "".join(parts)


def leaderboards(records: list[ScoreRecord], layout: str = "leaderboard",
                 methods: list[str] | None = None) -> Leaderboards:
    """One leaderboard per run setting (``bench.records.split_runs``)."""
    groups = split_runs(records) or [({}, [])]
    return Leaderboards([RunBoard(setting, leaderboard(group, layout, methods), group) for setting, group in groups])


def drift_curves(records: list[ScoreRecord]) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """metric -> method -> (window centre seconds, mean over samples) from the longest duration's windows."""
    longest: dict[tuple[str, str], float] = {}
    for r in records:
        if r.windows and r.value is not None:
            key = (r.method, r.metric)
            longest[key] = max(longest.get(key, 0), r.duration_s)
    sums: dict[tuple[str, str], list[list[float]]] = defaultdict(list)
    window_s: dict[tuple[str, str], float] = {}
    for r in records:
        key = (r.method, r.metric)
        if r.windows and longest.get(key) == r.duration_s:
            sums[key].append(r.windows["values"])
            window_s[key] = r.windows["window_s"]
    out: dict[str, dict] = defaultdict(dict)
    for (method, metric), rows in sums.items():
        n = max(len(row) for row in rows)
        xs, ys = [], []
        for i in range(n):
            vals = [row[i] for row in rows if i < len(row) and row[i] is not None]
            if vals:
                xs.append((i + 0.5) * window_s[(method, metric)])
                ys.append(sum(vals) / len(vals))
        out[metric][method] = (xs, ys)
    return out


def plot_drift(records: list[ScoreRecord], folder: Path, suffix: str = "", title: str = "") -> list[Path]:
    """One PNG per metric, ``drift_<metric>[-<suffix>].png``; ``title`` is added to each plot's title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    untrained = untrained_methods(records)
    given = directions(records)
    for metric, per_method in sorted(drift_curves(records).items()):
        col = column_for(metric, given.get(metric))
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
        for method, (xs, ys) in sorted(per_method.items()):
            finite = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y)]
            if finite:
                ax.plot(*zip(*finite), marker="o", markersize=3, label=display_name(method, untrained))
        ax.set_xlabel("time in video (s)")
        ax.set_ylabel(f"{col.display} ({'higher' if col.higher_is_better else 'lower'} is better)")
        ax.set_title(f"{col.display} over time (window means)" + (f"\n{title}" if title else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = folder / (f"drift_{metric}-{suffix}.png" if suffix else f"drift_{metric}.png")
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def write_tables(records: list[ScoreRecord], folder: Path, layout: str = "leaderboard",
                 methods: list[str] | None = None) -> tuple[Leaderboards, dict[str, Path]]:
    """``<layout>.md/.csv/.tex`` (every run setting's table in each) and the drift plots, one set per run
    setting (``drift_<metric>-<setting>.png`` when the scores hold several)."""
    from bench.store import atomic_write_bytes

    boards = leaderboards(records, layout, methods)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for fmt, text in (("md", boards.markdown()), ("csv", boards.csv()), ("tex", boards.latex())):
        path = folder / f"{layout}.{fmt}"
        atomic_write_bytes(path, text.encode())
        paths[fmt] = path
    for run in boards.runs:
        for p in plot_drift(run.records, folder, suffix=run.slug, title=run.title if boards.split else ""):
            paths[p.stem] = p
    return boards, paths
