"""``python -m bench report``: one self-contained HTML page per experiment, built from stored results only.

The page holds the leaderboard (the same cells and bold-best rule as ``bench table``), the drift curves
(the same PNGs ``bench table`` writes, embedded) and frame strips: for each of the first test samples, one
row of ground-truth frames and one row per method at fixed times (0, 10, 30, 60, 90 s by default), read
from each method's stored rollout (the ``rollout_key`` of its score lines names the run-store folder).

Everything is inline (CSS, base64 PNG data URIs): the file can be mailed, archived or opened offline and
refers to nothing outside itself. Nothing is generated or scored here.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.errors import BenchError, DataError
from bench.records import ALL_SAMPLES, ExperimentManifest, ScoreRecord
from bench.store import Rollout
from bench.tables import (
    COLUMNS,
    Leaderboard,
    leaderboards,
    plot_drift,
    read_scores,
    untrained_methods,
)

DEFAULT_TIMES = (0.0, 10.0, 30.0, 60.0, 90.0)
#: frames smaller than this (in height) are enlarged with nearest-neighbour so their pixels stay visible
MIN_DISPLAY_HEIGHT = 128
#: frames taller than this are shrunk (a 480x832 strip of 5 frames is already 4,000 px wide)
MAX_DISPLAY_HEIGHT = 240
#: the strip row read from the dataset (the ``ground_truth`` *method* row, read from its rollout, is separate)
GT_LABEL = "Ground truth (dataset)"

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #1a1a1a;
       background: #ffffff; max-width: 1400px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.sub { color: #555; font-size: 13px; }
table.board { border-collapse: collapse; font-size: 13px; margin-top: 8px; }
table.board th, table.board td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
table.board th { background: #f0f3f7; } table.board td.method { text-align: left; white-space: nowrap; }
table.board td.missing { color: #999; font-style: italic; } table.board tr:nth-child(even) td { background: #fafafa; }
.untrained { color: #b00; font-size: 12px; }
.drift { display: flex; flex-wrap: wrap; gap: 12px; }
.drift img { border: 1px solid #ddd; width: calc(50% - 8px); max-width: 640px; height: auto; }
table.strip { border-collapse: collapse; font-size: 12px; }
table.strip th { font-weight: normal; color: #555; padding: 2px 6px; }
table.strip td { padding: 2px; text-align: center; vertical-align: middle; }
table.strip td.label { text-align: left; padding-right: 10px; white-space: nowrap; font-weight: bold; }
table.strip img { image-rendering: pixelated; display: block; border: 1px solid #ccc; }
td.nodata { color: #999; font-style: italic; min-width: 60px; }
.note { color: #555; font-size: 12px; margin: 4px 0; }
.warn { color: #a15c00; font-size: 12px; margin: 4px 0; }
footer { margin-top: 36px; border-top: 1px solid #ddd; padding-top: 8px; color: #555; font-size: 12px; }
footer code { font-size: 11px; }
"""


# ------------------------------------------------------------------------------------------------ images
def png_data_uri(image: np.ndarray) -> str:
    """``uint8 (H, W, 3)`` -> ``data:image/png;base64,...``."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def display_frame(frame: np.ndarray) -> np.ndarray:
    """Small frames enlarged by an integer factor (nearest: pixels stay pixels), large ones shrunk."""
    h = frame.shape[0]
    if h < MIN_DISPLAY_HEIGHT:
        k = min(4, math.ceil(MIN_DISPLAY_HEIGHT / h))
        return np.repeat(np.repeat(frame, k, axis=0), k, axis=1)
    if h > MAX_DISPLAY_HEIGHT:
        from PIL import Image

        w = round(frame.shape[1] * MAX_DISPLAY_HEIGHT / h)
        return np.asarray(Image.fromarray(frame).resize((w, MAX_DISPLAY_HEIGHT), Image.LANCZOS))
    return frame


def img_tag(frame: np.ndarray, alt: str) -> str:
    shown = display_frame(frame)
    return (f'<img src="{png_data_uri(shown)}" width="{shown.shape[1]}" height="{shown.shape[0]}" '
            f'alt="{html.escape(alt)}" title="{html.escape(alt)}">')


# ------------------------------------------------------------------------------------------------ rollouts
@dataclass
class StoredRollout:
    """A method's rollout of one sample, located from its score lines."""

    method: str
    sample: str
    key: str
    folder: Path
    n_frames: int
    fps: int
    sample_hash: str | None
    complete: bool
    results: Path  # the results folder whose run store holds it

    def frames_at(self, indices: Sequence[int]) -> dict[int, np.ndarray]:
        """Frames at the given output indices (chunk positions as in ``Rollout.iter_frames``)."""
        from bench.video import VideoReader

        rollout = Rollout(self.results, self.method, self.key, {})
        wanted = sorted({int(i) for i in indices})
        out: dict[int, np.ndarray] = {}
        position = 0
        for record in rollout.chunk_records():
            take = min(record.n_frames, self.n_frames - position)
            here = [i for i in wanted if position <= i < position + take]
            if here:
                with VideoReader(rollout.chunks_dir / f"{record.index:05d}.mp4") as reader:
                    for i in here:
                        out[i] = reader.read(i - position, i - position + 1)[0]
            position += take
            if position >= self.n_frames:
                break
        return out


def find_rollouts(records: list[ScoreRecord], results: Path) -> dict[tuple[str, str], StoredRollout]:
    """(method, sample) -> its stored rollout, from the ``rollout_key`` of the score lines."""
    import json

    best: dict[tuple[str, str], tuple[int, str]] = {}
    for r in records:
        key = r.rollout_key
        if not key or r.sample == ALL_SAMPLES:
            continue
        frames = int((r.prefix_of or {}).get("rollout_frames") or r.n_frames or 0)
        cell = (r.method, r.sample)
        if cell not in best or frames > best[cell][0]:
            best[cell] = (frames, key)
    out = {}
    for (method, sample), (frames, key) in best.items():
        folder = Rollout(results, method, key, {}).folder
        status, payload = {}, {}
        try:
            status = json.loads((folder / "status.json").read_text())
        except (OSError, ValueError):
            pass
        try:
            payload = json.loads((folder / "key.json").read_text()).get("payload", {})
        except (OSError, ValueError):
            pass
        complete = status.get("status") == "complete" and status.get("key") == key
        n = int(status.get("n_frames") or payload.get("frames") or frames)
        fps = payload.get("fps") or next((r.fps for r in records if r.method == method and r.fps), None)
        if fps is None:
            continue  # neither the rollout nor its scores say its frame rate: no strip rather than a guessed one
        out[(method, sample)] = StoredRollout(method, sample, key, folder, n, int(fps), payload.get("sample"),
                                              complete, results)
    return out


# ------------------------------------------------------------------------------------------------ GT
@dataclass
class GroundTruth:
    dataset: str
    size: str
    cache_root: Path
    _loaded: dict[int, dict] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def sample(self, sample_id: str, n_frames: int, content_hash: str | None):
        """The sample rendered/loaded at the rollout's length; ``None`` (with a recorded reason) if it cannot
        be loaded or is not the sample the rollout was generated from."""
        if n_frames not in self._loaded:
            from bench.datasets import load_dataset

            try:
                samples = load_dataset(self.dataset, n_frames=n_frames, size=self.size, cache_root=self.cache_root,
                                       progress=False)
                self._loaded[n_frames] = {s.id: s for s in samples}
            except BenchError as exc:
                self.problems.append(f"dataset {self.dataset!r} ({n_frames} frames) could not be loaded: {exc.message}")
                self._loaded[n_frames] = {}
        sample = self._loaded[n_frames].get(sample_id)
        if sample is None:
            return None, f"sample {sample_id} not found in dataset {self.dataset!r}"
        if content_hash and sample.content_hash != content_hash:
            return None, (f"dataset {self.dataset!r} at size {self.size} is not the data this rollout was generated "
                          f"from (content hash differs): the dataset's cache changed since the run")
        return sample, None


# ------------------------------------------------------------------------------------------------ sections
def board_html(board: Leaderboard) -> str:
    start, end = "\x00B\x00", "\x00/B\x00"
    rows = ['<table class="board">', "<tr><th rowspan=\"2\">Method</th>" +
            "".join(f'<th colspan="{len(board.metrics)}">{d:g} s</th>' for d in board.durations) + "</tr>",
            "<tr>" + "".join(f"<th>{html.escape(board.header(m))}</th>" for _ in board.durations
                             for m in board.metrics) + "</tr>"]
    for method in board.methods:
        cells = [f'<td class="method">{html.escape(board.display(method))}</td>']
        for d in board.durations:
            for m in board.metrics:
                text = board.text(method, d, m, bold=(start, end))
                cell = board.cells.get((method, d, m))
                cls = ' class="missing"' if cell is None or cell.mean is None else ""
                text = html.escape(text).replace(html.escape(start), "<b>").replace(html.escape(end), "</b>")
                cells.append(f"<td{cls}>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    rows.append("</table>")
    return "\n".join(rows)


def drift_html(records: list[ScoreRecord]) -> str:
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        order = [c.metric for c in COLUMNS]
        paths = sorted(plot_drift(records, Path(tmp)), key=lambda p: (
            order.index(p.stem.removeprefix("drift_")) if p.stem.removeprefix("drift_") in order else len(order), p.stem))
        images = [(p.stem.removeprefix("drift_"),
                   "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii")) for p in paths]
    if not images:
        return '<p class="note">no per-window values in these scores: no drift curves.</p>'
    return '<div class="drift">' + "".join(
        f'<img src="{uri}" alt="drift curve {html.escape(metric)}" title="{html.escape(metric)}">'
        for metric, uri in images) + "</div>"


def frame_index(t: float, fps: int, n_frames: int) -> int | None:
    """The frame shown at ``t`` seconds; ``t`` equal to the video's end shows its last frame; past it: None."""
    i = round(t * fps)
    if i == n_frames and n_frames > 0:
        return n_frames - 1
    return i if 0 <= i < n_frames else None


def strips_html(records: list[ScoreRecord], board: Leaderboard, results: Path, times: Sequence[float], max_samples: int,
                gt: GroundTruth) -> str:
    rollouts = find_rollouts(records, results)
    samples = sorted({s for (_, s) in rollouts})
    if not samples:
        return ('<p class="note">the score lines name no stored rollouts (e.g. scores of `bench score --gt --pred`): '
                'no frame strips.</p>')
    parts = []
    shown = samples[:max_samples] if max_samples > 0 else samples
    if len(shown) < len(samples):
        parts.append(f'<p class="note">showing {len(shown)} of {len(samples)} samples (--max-samples).</p>')
    for sample_id in shown:
        per_method = [(m, rollouts.get((m, sample_id))) for m in board.methods]
        found = [r for _, r in per_method if r is not None]
        length = max(r.n_frames for r in found)
        fps = found[0].fps
        sample_hash = next((r.sample_hash for r in found if r.sample_hash), None)
        cols = [(t, frame_index(t, fps, length)) for t in times]
        kept = [(t, i) for t, i in cols if i is not None]
        skipped = [t for t, i in cols if i is None]
        parts.append(f"<h3>{html.escape(sample_id)}</h3>")
        if skipped:
            parts.append(f'<p class="note">not shown: {", ".join(f"{t:g} s" for t in skipped)} '
                         f'(beyond the {length / fps:g} s rollout).</p>')
        head = "".join(f"<th>{t:g} s" + (" (last frame)" if i == length - 1 and round(t * fps) == length else "")
                       + "</th>" for t, i in kept)
        rows = [f'<table class="strip"><tr><th></th><th>reference</th>{head}</tr>']
        sample, problem = gt.sample(sample_id, length, sample_hash)
        if sample is not None:
            ref = sample.references()[0]
            frames = {i: sample.gt(i, i + 1)[0] for _, i in kept}
            cells = "".join(f"<td>{img_tag(frames[i], f'{sample_id} ground truth {t:g} s')}</td>" for t, i in kept)
            rows.append(f'<tr><td class="label">{GT_LABEL}</td><td>{img_tag(ref, f"{sample_id} reference image")}'
                        f'</td>{cells}</tr>')
        else:
            rows.append(f'<tr><td class="label">{GT_LABEL}</td><td></td><td class="nodata" colspan="{len(kept)}">'
                        f'{html.escape(problem or "unavailable")}</td></tr>')
        for method, rollout in per_method:
            label = html.escape(board.display(method))
            if rollout is None:
                rows.append(f'<tr><td class="label">{label}</td><td></td><td class="nodata" colspan="{len(kept)}">'
                            f"no rollout of this sample in the scores</td></tr>")
                continue
            if not rollout.folder.exists():
                rows.append(f'<tr><td class="label">{label}</td><td></td><td class="nodata" colspan="{len(kept)}">'
                            f"rollout {html.escape(str(rollout.folder))} not found (run store deleted?)</td></tr>")
                continue
            try:
                frames = rollout.frames_at([i for _, i in kept if i < rollout.n_frames])
            except BenchError as exc:
                rows.append(f'<tr><td class="label">{label}</td><td></td><td class="nodata" colspan="{len(kept)}">'
                            f"{html.escape(exc.message)}</td></tr>")
                continue
            cells = "".join(
                f"<td>{img_tag(frames[i], f'{sample_id} {method} {t:g} s')}</td>" if i in frames
                else '<td class="nodata">-</td>' for t, i in kept)
            note = "" if rollout.complete else '<br><span class="warn">incomplete rollout</span>'
            rows.append(f'<tr><td class="label">{label}{note}</td><td></td>{cells}</tr>')
        rows.append("</table>")
        parts.extend(rows)
    for problem in gt.problems:
        parts.append(f'<p class="warn">{html.escape(problem)}</p>')
    return "\n".join(parts)


def provenance_html(records: list[ScoreRecord]) -> str:
    protocols = sorted({str(r.protocol) for r in records if r.protocol})
    commits = sorted({(g.get("commit") or "unknown", bool(g.get("dirty")))
                      for r in records if (g := (r.provenance or {}).get("git"))})
    torch_versions = sorted({str(v) for r in records if (v := ((r.provenance or {}).get("packages") or {}).get("torch"))})
    devices = sorted({str(d) for r in records if (d := (r.provenance or {}).get("device"))})
    seeds = sorted({r.seed for r in records if r.seed is not None})
    weights: dict[str, set] = defaultdict(set)
    for r in records:
        for name, fingerprint in (r.method_weights or {}).items():
            weights[r.method].add(f"{name}={str(fingerprint)[:12]}")
    items = [f"protocol: {', '.join(protocols) or 'unknown'}",
             f"report generated: {_dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
             "git: " + (", ".join(f"<code>{html.escape(c[:12])}</code>{' (dirty)' if d else ''}" for c, d in commits)
                        or "not recorded"),
             f"torch: {', '.join(torch_versions) or 'not recorded'}", f"device: {', '.join(devices) or 'not recorded'}",
             f"seed: {', '.join(str(s) for s in seeds) or 'not recorded'}"]
    if weights:
        items.append("method weights: " + "; ".join(
            f"{html.escape(m)}: " + ", ".join(f"<code>{html.escape(w)}</code>" for w in sorted(ws))
            for m, ws in sorted(weights.items())))
    return "<footer>" + " &middot; ".join(items[:6]) + ("<br>" + items[6] if len(items) > 6 else "") + "</footer>"


# ------------------------------------------------------------------------------------------------ page
def build_report(experiment: str, results: Path, times: Sequence[float] = DEFAULT_TIMES, max_samples: int = 2,
                 layout: str = "leaderboard") -> str:
    results = Path(results)
    folder = results / "scores" / experiment
    try:
        records = read_scores(folder)
    except BenchError as exc:
        if not folder.is_dir() or "no scores" in exc.message:
            known = sorted(p.name for p in (results / "scores").glob("*") if p.is_dir())
            raise DataError(f"no scores for experiment {experiment!r} in {folder}",
                            fix=(f"run `python -m bench run ... --experiment {experiment}` first, or pick one of: "
                                 f"{', '.join(known)}" if known else
                                 "run `python -m bench run ...` first (or pass --results / --experiment)")) from None
        raise
    if not records:
        raise DataError(f"no scores for experiment {experiment!r} in {folder} (the files are empty)",
                        fix="run `python -m bench run ...` again")
    run = ExperimentManifest.read(folder)  # the dataset, size and method order of the run
    boards = leaderboards(records, layout, list(run.methods) if run else None)
    untrained = untrained_methods(records)
    dataset = run.dataset if run else next((r.dataset for r in records if r.dataset), "lab-test")
    size = run.size if run else next((r.size for r in records if r.size), "lab-64")
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    methods = {m for r in boards.runs for m in r.board.methods}
    durations = sorted({d for r in boards.runs for d in r.board.durations})
    body = [f"<h1>Benchmark report: {html.escape(experiment)}</h1>",
            (f'<p class="sub">{len(methods)} method(s), durations '
             f"{', '.join(f'{d:g} s' for d in durations)}; scores from {html.escape(str(folder))}; {now}</p>")]
    if boards.split:
        body.append(f'<p class="warn">{html.escape(boards.note())} Each section below is one run.</p>')
    for board_run in boards.runs:
        board = board_run.board
        heading = f": {html.escape(board_run.title)}" if boards.split else ""
        gt = GroundTruth(board_run.setting.get("dataset") or dataset, board_run.setting.get("size") or size,
                         results / "cache")
        body += [f"<h2>Leaderboard{heading}</h2>", board_html(board),
                 ('<p class="note">mean over samples; best value per column (ground truth excluded) in bold; arrows '
                  "give the better direction; missing cells keep their reason.</p>")]
        if untrained & set(board.methods):
            body.append('<p class="untrained">(untrained) rows used randomly initialised components: their numbers '
                        "say nothing about the method.</p>")
        body += [f"<h2>Drift curves{heading}</h2>",
                 '<p class="note">per-window means over time (longest duration), averaged over samples.</p>',
                 drift_html(board_run.records),
                 f"<h2>Frame strips{heading}</h2>",
                 (f'<p class="note">ground truth and each method\'s stored rollout at '
                  f'{", ".join(f"{t:g} s" for t in times)}; small frames enlarged (nearest neighbour).</p>'),
                 strips_html(board_run.records, board, results, times, max_samples, gt)]
    body.append(provenance_html(records))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>bench report: {html.escape(experiment)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def report_main(args) -> int:
    from bench.store import atomic_write_bytes

    results = Path(args.results or "results")
    experiment = args.experiment or "lab"
    out = Path(args.out) if args.out else results / "report" / f"{experiment}.html"
    page = build_report(experiment, results, times=args.times, max_samples=args.max_samples, layout=args.layout)
    atomic_write_bytes(out, page.encode("utf-8"))
    out.chmod(0o644)  # a page to share, not a private temporary file
    print(f"report: {out} ({len(page) / 1024:.0f} KiB, self-contained)")
    return 0
