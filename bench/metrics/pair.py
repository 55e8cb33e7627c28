"""Score one (ground truth, prediction) video pair: ``python -m bench score --gt GT.mp4 --pred PRED.mp4``.

The protocol without the rest of the harness: both videos are streamed in chunks (constant memory), their
fps / size / frame count are checked (a mismatch is an error unless ``--truncate`` / ``--resize`` /
``--allow-fps-mismatch`` is given, and then it is recorded), every selected metric is updated per chunk,
and a short table is printed (one row per metric: value, direction, first and last window, drift slope); the
full JSON document -- protocol version, per-metric value, per-window curve, drift slope, per-horizon prefix
values, weight hashes, adaptations, and the metrics that were skipped and why -- with ``--json`` (stdout)
or ``--output FILE``.

Metric selection: ``--metrics a,b`` asks for metrics by name -- a missing weight file or missing face
boxes / masks is then an error before any scoring. Without ``--metrics`` the default set is used and a
metric that cannot run is skipped with a loud notice on stderr and ``"n/a (...)"`` in the output.

F-PSNR's GT face boxes come from ``--face-boxes`` or, without it, from the insightface detector
(``buffalo_l/det_10g.onnx``) run once over the GT video and cached under ``--cache-dir``; the result records
which, with the detector's sha256, settings and coverage.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from bench.errors import BenchError, ConfigError, DataError, WeightsError
from bench.metrics import DEFAULT_METRICS, METRICS, get_metric_class
from bench.metrics.base import PROTOCOL_VERSION, FrameBatch
from bench.metrics.drift import DEFAULT_WINDOW_SECONDS, summarize_series
from bench.metrics.weights import resolve_insightface_detector

DEFAULT_HORIZON_SECONDS = (10.0, 90.0)
RESIZE_FILTER = "bilinear, antialias (torch.nn.functional.interpolate, align_corners=False), rounded to uint8"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``bench score --gt/--pred`` (added to the caller's parser)."""
    parser.add_argument("--gt", required=True, help="ground-truth video")
    parser.add_argument("--pred", required=True, help="generated video")
    parser.add_argument("--metrics", nargs="+", default=None,
                        help=f"metric names, as in `bench run` (default: all: {' '.join(DEFAULT_METRICS)}); named "
                             "metrics must be runnable, defaults that cannot run are skipped with a notice")
    parser.add_argument("--face-boxes", default=None,
                        help="GT face boxes: .npy (T,4) / .npz (key face_boxes) / .json; NaN or null = no face "
                             "(default: the insightface detector det_10g.onnx on the GT frames, cached)")
    parser.add_argument("--cache-dir", default=None,
                        help="cache folder (default: $BENCH_CACHE or ~/.cache/bench): detected GT face boxes go to "
                             "<cache-dir>/face_boxes, GT-side FID / V-MAE features to <cache-dir>/gt_features "
                             "(keyed by the GT video's sha256), so scoring more predictions of one GT is faster")
    parser.add_argument("--masks", default=None, help="GT person-mask video (white = person), same size/length as GT")
    parser.add_argument("--truncate", action="store_true", help="score the common prefix when frame counts differ")
    parser.add_argument("--resize", action="store_true", help="resize the prediction to the GT size (recorded)")
    parser.add_argument("--allow-fps-mismatch", action="store_true", help="align by frame index despite fps differing")
    parser.add_argument("--horizons", default=",".join(f"{h:g}" for h in DEFAULT_HORIZON_SECONDS),
                        help="horizons in seconds (prefixes; those longer than the video are dropped; the full "
                             "length is always added)")
    parser.add_argument("--window-seconds", type=float, default=DEFAULT_WINDOW_SECONDS, help="drift-curve window")
    parser.add_argument("--chunk-frames", type=int, default=32, help="frames decoded per step")
    parser.add_argument("--device", default="cpu", help="torch device for network metrics")
    parser.add_argument("--videomae-path", default=None,
                        help="explicit VideoMAE weights: a folder (config.json + weights) for videomae-base, the .pth "
                             "file or its folder for videomae-v2-g")
    parser.add_argument("--videomae-backbone", default=None, choices=("videomae-base", "videomae-v2-g"),
                        help="V-MAE features: videomae-base (default, or $BENCH_VIDEOMAE_BACKBONE) or videomae-v2-g "
                             "(CD-FVD's VideoMAE-v2 ViT-g, vit_g_hybrid_pt_1200e_ssv2_ft.pth)")
    parser.add_argument("--seam-chunk", type=int, default=None, metavar="FRAMES",
                        help="seam metric: frames per generated chunk of the prediction (default 77)")
    parser.add_argument("--seam-overlap", type=int, default=None, metavar="FRAMES",
                        help="seam metric: frames each chunk overlaps the previous one (default 4: joins at frames "
                             "77, 150, 223, ...)")
    parser.add_argument("--json", action="store_true", help="print the full JSON document instead of the summary table")
    parser.add_argument("--output", default=None, help="write the full JSON document here (the summary table is "
                                                       "still printed)")


def _load_face_boxes(path: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"face-box file not found: {p}", fix="check the path")
    try:
        if p.suffix == ".npy":
            boxes = np.load(p)
        elif p.suffix == ".npz":
            with np.load(p) as z:
                if "face_boxes" not in z:
                    raise DataError(f"{p} has no 'face_boxes' array (has {list(z.keys())})",
                                    fix="save the boxes under the key face_boxes")
                boxes = z["face_boxes"]
        elif p.suffix == ".json":
            data = json.loads(p.read_text())
            data = data["face_boxes"] if isinstance(data, dict) else data
            boxes = np.array([[np.nan] * 4 if b is None else b for b in data], dtype=np.float64)
        else:
            raise DataError(f"unknown face-box format {p.suffix!r}", fix="use .npy, .npz or .json")
    except (ValueError, OSError, KeyError) as exc:
        raise DataError(f"cannot read face boxes from {p}: {exc}", fix="re-create the file") from exc
    boxes = np.asarray(boxes, np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise DataError(f"face boxes in {p} have shape {boxes.shape}, expected (T, 4)",
                        fix="one [x0, y0, x1, y1] row per GT frame, NaN where there is no face")
    if np.isinf(boxes).any():
        raise DataError(f"face boxes in {p} contain inf", fix="use NaN rows for frames without a face")
    return boxes


def _resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _json_float(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def _clean(obj):
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return _json_float(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def notice(message: str) -> None:
    print(f"\n!!! {message}\n", file=sys.stderr, flush=True)


def _detected_face_boxes(gt_path: str, gt_sha256: str, n: int, cache_root: Path, active: dict, skipped: dict,
                         explicit: bool) -> tuple[np.ndarray | None, dict | None]:
    """GT face boxes of the first ``n`` frames from the cached detector, and its record. If the detector
    fails or finds no face: an error when the metrics were named, else the face metrics leave ``active``
    for ``skipped`` with a loud notice."""
    from bench.metrics.face import detect_face_boxes_cached

    print(f"GT face boxes: insightface detector on {gt_path} (cached in {cache_root / 'face_boxes'})",
          file=sys.stderr, flush=True)
    try:
        boxes, record = detect_face_boxes_cached(gt_path, cache_root / "face_boxes", gt_sha256=gt_sha256)
        boxes = boxes[:n]
        if np.isfinite(boxes).all(axis=1).any():
            return boxes, record
        problem, reason = DataError(
            f"the face detector found no face in any scored GT frame of {gt_path}: F-PSNR is undefined",
            fix="pass --face-boxes from the GT face keypoints, or leave out fpsnr"), "n/a (no face found)"
    except WeightsError as exc:
        problem, reason = exc, "n/a (no weights)"
    if explicit:
        raise problem
    for name in [k for k, m in active.items() if "face_boxes" in type(m).needs]:
        del active[name]
        skipped[name] = reason
        notice(f"{name} SKIPPED: {problem}")
    if not active:
        raise ConfigError("no metric can run", fix="see the notices above")
    return None, None


def score_pair(gt_path: str, pred_path: str, *, metrics: list[str] | None = None, face_boxes: str | None = None,
               masks: str | None = None, truncate: bool = False, resize: bool = False,
               allow_fps_mismatch: bool = False, horizon_seconds=DEFAULT_HORIZON_SECONDS,
               window_seconds: float = DEFAULT_WINDOW_SECONDS, chunk_frames: int = 32, device: str = "cpu",
               videomae_path: str | None = None, videomae_backbone: str | None = None,
               cache_dir: str | None = None, seam_chunk: int | None = None, seam_overlap: int | None = None) -> dict:
    """Score one pair; returns the JSON-ready result. Raises ``BenchError`` subclasses on bad input.
    Without ``face_boxes``, face metrics use the GT boxes of the cached insightface detector."""
    from bench.video import VideoReader, probe
    from bench.sample import sha256_file

    started = time.perf_counter()
    # 1. inputs and alignment ------------------------------------------------------------------------
    gt_info, pred_info = probe(gt_path), probe(pred_path)
    adaptations: list[dict] = []
    if gt_info.n_frames == 0 or pred_info.n_frames == 0:
        raise DataError(f"empty video: {gt_path if gt_info.n_frames == 0 else pred_path}", fix="re-create it")
    if abs(gt_info.fps - pred_info.fps) > 1e-3:
        if not allow_fps_mismatch:
            raise DataError(f"fps differ: GT {gt_info.fps:g}, prediction {pred_info.fps:g}",
                            fix="re-encode at the GT rate, or pass --allow-fps-mismatch to align by frame index")
        adaptations.append({"kind": "fps_mismatch", "gt_fps": gt_info.fps, "pred_fps": pred_info.fps,
                            "handling": "aligned by frame index"})
    n = gt_info.n_frames
    if gt_info.n_frames != pred_info.n_frames:
        if not truncate:
            raise DataError(f"frame counts differ: GT {gt_info.n_frames}, prediction {pred_info.n_frames}",
                            fix="generate the full length, or pass --truncate to score the common prefix")
        n = min(gt_info.n_frames, pred_info.n_frames)
        adaptations.append({"kind": "truncate", "gt_frames": gt_info.n_frames, "pred_frames": pred_info.n_frames,
                            "scored_frames": n})
    H, Wd = gt_info.height, gt_info.width
    need_resize = (pred_info.height, pred_info.width) != (H, Wd)
    if need_resize:
        if not resize:
            raise DataError(f"sizes differ: GT {Wd}x{H}, prediction {pred_info.width}x{pred_info.height}",
                            fix="generate at the GT size, or pass --resize to resize the prediction (recorded)")
        adaptations.append({"kind": "resize", "from": [pred_info.height, pred_info.width], "to": [H, Wd],
                            "filter": RESIZE_FILTER})
    fps = gt_info.fps or 25.0
    horizons = sorted({int(round(s * fps)) for s in horizon_seconds if 0 < round(s * fps) <= n} | {n})

    boxes = None
    if face_boxes is not None:
        boxes = _load_face_boxes(face_boxes)
        if len(boxes) < n:
            raise DataError(f"{len(boxes)} face boxes for {n} frames", fix="give one row per GT frame")
        if len(boxes) > n:
            if not truncate:
                raise DataError(f"{len(boxes)} face boxes for {n} frames",
                                fix="give one row per GT frame, or --truncate")
            adaptations.append({"kind": "truncate_face_boxes", "from": len(boxes), "to": n})
            boxes = boxes[:n]
        if not np.isfinite(boxes).all(axis=1).any():
            raise DataError("the face boxes cover no frame (every row is NaN): F-PSNR is undefined",
                            fix="pass boxes from the GT face keypoints or a detector, or leave out fpsnr")
    mask_info = None
    if masks is not None:
        mask_info = probe(masks)
        if (mask_info.height, mask_info.width) != (H, Wd) or mask_info.n_frames < n:
            raise DataError(f"mask video {masks} is {mask_info.width}x{mask_info.height} with {mask_info.n_frames} "
                            f"frames; the GT is {Wd}x{H} with {n} scored frames", fix="render masks at the GT geometry")

    # 2. metric selection: named metrics must run, defaults may be skipped loudly -----------------------
    from bench.datasets import default_cache_root

    cache_root = Path(cache_dir) if cache_dir else default_cache_root()
    gt_cache_dir = cache_root / "gt_features"
    gt_sha256 = sha256_file(gt_path)
    explicit = metrics is not None
    names = list(metrics) if explicit else list(DEFAULT_METRICS)
    for name in names:
        if name not in METRICS:
            get_metric_class(name)  # raises ConfigError with a suggestion
    detector_problem = None  # why GT face boxes cannot come from the detector
    if boxes is None and any("face_boxes" in get_metric_class(name).needs for name in names):
        try:
            resolve_insightface_detector()
        except WeightsError as exc:
            detector_problem = exc
    available = {"face_boxes": boxes is not None or detector_problem is None, "masks": masks is not None}
    skipped: dict[str, str] = {}
    active = {}
    for name in names:
        cls = get_metric_class(name)
        lacking = [need for need in cls.needs if not available[need]]
        if lacking:
            what = {"face_boxes": "--face-boxes", "masks": "--masks"}
            if explicit and "face_boxes" in lacking:
                raise WeightsError(f"metric {name} needs GT face boxes: no --face-boxes given, and the face "
                                   f"detector cannot run: {detector_problem.message}",
                                   fix=f"pass --face-boxes, or {detector_problem.fix}; `python -m bench doctor` "
                                       "checks the file")
            if explicit:
                raise DataError(f"metric {name} needs {', '.join(what[x] for x in lacking)}",
                                fix=f"pass {' and '.join(what[x] for x in lacking)}, or leave {name} out")
            skipped[name] = f"n/a (no {lacking[0].replace('_', ' ')})"
            if "face_boxes" in lacking:
                notice(f"{name} SKIPPED: no --face-boxes and no face detector: {detector_problem}")
            continue
        try:
            kwargs = {"device": device, "horizons": horizons, "gt_cache_dir": str(gt_cache_dir)}
            if name.startswith("vmae") and videomae_path:
                kwargs["model_path"] = videomae_path
            if name.startswith("vmae") and videomae_backbone:
                kwargs["backbone"] = videomae_backbone
            active[name] = cls(**kwargs)
        except WeightsError as exc:
            if explicit:
                raise
            skipped[name] = "n/a (no weights)"
            notice(f"{name} SKIPPED: {exc}")
    if not active:
        raise ConfigError("no metric can run", fix="see the notices above; `bench doctor` lists missing weights")
    face_record = None
    if boxes is None and any("face_boxes" in type(m).needs for m in active.values()):
        boxes, face_record = _detected_face_boxes(gt_path, gt_sha256, n, cache_root, active, skipped, explicit)
    for metric in active.values():  # GT-side features (FID, V-MAE) are reused when this GT is scored again
        metric.set_gt_key(f"{gt_sha256}:{n}")
        if seam_chunk is not None or seam_overlap is not None:
            from bench.metrics.seam import DEFAULT_CHUNK_FRAMES, DEFAULT_OVERLAP_FRAMES

            metric.set_chunk_geometry(DEFAULT_CHUNK_FRAMES if seam_chunk is None else seam_chunk,
                                      DEFAULT_OVERLAP_FRAMES if seam_overlap is None else seam_overlap,
                                      "given (--seam-chunk / --seam-overlap)")

    # 3. stream ---------------------------------------------------------------------------------------
    mask_reader = VideoReader(masks) if masks is not None else None
    with VideoReader(gt_path) as gt_reader, VideoReader(pred_path) as pred_reader:
        for start in range(0, n, chunk_frames):
            stop = min(n, start + chunk_frames)
            gt, pred = gt_reader.read(start, stop), pred_reader.read(start, stop)
            if need_resize:
                pred = _resize(pred, H, Wd)
            chunk_masks = None
            if mask_reader is not None:
                chunk_masks = mask_reader.read(start, stop)[..., 0] > 127  # white = person
            batch = FrameBatch(start, gt, pred, None if boxes is None else boxes[start:stop], chunk_masks)
            for metric in active.values():
                metric.update(batch)
    if mask_reader is not None:
        mask_reader.close()

    # 4. results --------------------------------------------------------------------------------------
    results, weights = {}, {}
    for name, metric in active.items():
        cls = type(metric)
        entry = {"display": cls.display, "higher_is_better": cls.higher_is_better, "description": cls.description}
        if cls.pooled:
            per_h = cls.pooled_compute([metric.pooled_state()])
            entry["value"] = per_h[n][0]
            entry.update({k: v for k, v in per_h[n][1].items()})
            entry["horizons"] = {str(h): {"value": v, **extra} for h, (v, extra) in per_h.items()}
        else:
            entry.update(summarize_series(metric.series(), fps=fps, n_frames=n, window_seconds=window_seconds,
                                          horizons=horizons))
        entry.update(metric.info())
        weights[name] = [{"name": r.name, "path": r.path, "sha256": r.sha256} for r in metric.weights()]
        if "face_boxes" in cls.needs:
            entry["face_boxes"] = "file" if face_record is None else "detector"
            if face_record is not None:
                weights[name].append({k: face_record[k] for k in ("name", "path", "sha256")})
        results[name] = entry
    for name, reason in skipped.items():
        results[name] = {"display": get_metric_class(name).display, "value": reason}
    ordered = {name: results[name] for name in names if name in results}
    out = {
        "protocol": PROTOCOL_VERSION,
        "gt": {"path": str(gt_path), "sha256": gt_sha256, "fps": gt_info.fps,
               "width": Wd, "height": H, "frames": gt_info.n_frames},
        "pred": {"path": str(pred_path), "sha256": sha256_file(pred_path), "fps": pred_info.fps,
                 "width": pred_info.width, "height": pred_info.height, "frames": pred_info.n_frames},
        "frames_scored": n, "fps": fps, "horizons_frames": horizons,
        "horizons_note": "horizons are prefixes of this one video",
        "adaptations": adaptations,
        "face_boxes": face_record if face_boxes is None else {
            "path": str(face_boxes), "sha256": sha256_file(face_boxes), "source": "file (ground truth)"},
        "masks": None if masks is None else {"path": str(masks), "sha256": sha256_file(masks)},
        "metrics": ordered, "skipped": skipped, "weights": weights, "gt_feature_cache": str(gt_cache_dir),
        "seconds": time.perf_counter() - started,
    }
    return _clean(out)


def main(args: argparse.Namespace) -> int:
    """Entry point for ``bench score --gt/--pred``: prints a summary table (the JSON with ``--json``; ``--output``
    writes it to a file); returns the exit code."""
    try:
        # space-separated as in `bench run`; the older comma form (psnr,ssim) still reads the same
        given = [args.metrics] if isinstance(args.metrics, str) else (args.metrics or [])
        metrics = [m.strip() for item in given for m in item.split(",") if m.strip()] or None
        try:
            horizon_seconds = [float(s) for s in str(args.horizons).split(",") if s.strip()]
        except ValueError as exc:
            raise ConfigError(f"bad --horizons {args.horizons!r}", fix="seconds, comma-separated, e.g. 10,90") from exc
        result = score_pair(args.gt, args.pred, metrics=metrics, face_boxes=args.face_boxes, masks=args.masks,
                            truncate=args.truncate, resize=args.resize, allow_fps_mismatch=args.allow_fps_mismatch,
                            horizon_seconds=horizon_seconds, window_seconds=args.window_seconds,
                            chunk_frames=args.chunk_frames, device=args.device, videomae_path=args.videomae_path,
                            videomae_backbone=getattr(args, "videomae_backbone", None),
                            cache_dir=getattr(args, "cache_dir", None),
                            seam_chunk=getattr(args, "seam_chunk", None), seam_overlap=getattr(args, "seam_overlap", None))
    except BenchError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.fix:
            print(f"  fix: {exc.fix}", file=sys.stderr)
        return exc.exit_code
    text = json.dumps(result, indent=2, allow_nan=False)
    if args.output:
        from bench.store import atomic_write_bytes

        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(Path(args.output), (text + "\n").encode())
    print(text if getattr(args, "json", False) else summary_table(result, args.output))
    return 0


def _fmt(value) -> str:
    return value if isinstance(value, str) else "-" if value is None else f"{value:.4g}" if abs(value) < 1e-3 \
        else f"{value:.3f}"


def summary_table(result: dict, output: str | None = None) -> str:
    """A short human summary of a ``score_pair`` result: one row per metric (value, direction, first and
    last window, drift per minute, notes), the adaptations, and where the full JSON is."""
    gt, pred = result["gt"], result["pred"]
    lines = [f"GT   {gt['path']} ({gt['width']}x{gt['height']}, {gt['frames']} frames, {gt['fps']:g} fps)",
             f"pred {pred['path']} ({pred['width']}x{pred['height']}, {pred['frames']} frames)",
             f"{result['frames_scored']} frames scored ({result['frames_scored'] / result['fps']:.1f} s), protocol "
             f"{result['protocol']}", ""]
    head = ("metric", "value", "better", "first window", "last window", "drift/min", "note")
    rows = []
    for name, entry in result["metrics"].items():
        value = entry.get("value")
        if isinstance(value, str):
            rows.append((entry.get("display", name), value, "", "", "", "", ""))
            continue
        windows = [w["value"] for w in entry.get("windows", []) if w.get("value") is not None]
        note = ""
        if name == "seam":
            note = (f"{entry.get('joins', 0)} joins, {entry.get('joins_flagged', 0)} flagged (> "
                    f"{entry.get('flag_threshold', 1.0):g}); chunks {entry.get('chunk_frames')}/"
                    f"{entry.get('overlap_frames')} ({entry.get('geometry', '')})")
        elif entry.get("coverage") is not None and entry["coverage"] < 1:
            note = f"coverage {entry['coverage']:.0%}"
        rows.append((entry.get("display", name), _fmt(value), "higher" if entry.get("higher_is_better") else "lower",
                     _fmt(windows[0]) if windows else "", _fmt(windows[-1]) if windows else "",
                     _fmt(entry.get("drift_slope_per_min")), note))
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, tuple("-" * w for w in widths), *rows]:
        lines.append("  ".join(f"{str(v):<{w}}" for v, w in zip(row, widths)).rstrip())
    lines.append("")
    adaptations = result.get("adaptations") or []
    lines.append("adaptations: " + ("; ".join(a.get("kind", "?") for a in adaptations) if adaptations else "none"))
    lines.append(f"full JSON (windows, horizons, weights): {output}" if output else
                 "full JSON (windows, horizons, weights): add --json, or --output FILE")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.metrics.pair", description=__doc__.split("\n")[0])
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
