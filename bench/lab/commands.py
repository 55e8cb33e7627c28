"""``python -m bench lab ...``: render splits, regenerate the test manifest, draw the README frame strip."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.lab.spec import LAB_VERSION, SIZES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lab_command", required=True)
    render = sub.add_parser("render", help="render a lab split to disk (mp4 + JSON), cached by content hash")
    render.add_argument("--split", choices=("test", "train"), default="test")
    render.add_argument("--size", choices=tuple(SIZES), default="lab-64")
    render.add_argument("--frames", type=int, default=None, help="frames per clip (default: the split's length)")
    render.add_argument("--clips", type=int, default=None, help="train split: number of clips (default 256)")
    render.add_argument("--out", type=Path, default=None, help="cache root (default $BENCH_CACHE or ~/.cache/bench)")
    render.add_argument("--no-progress", action="store_true")
    strip = sub.add_parser("strip", help="draw the frame strip image shown in docs/lab.md")
    strip.add_argument("--out", type=Path, default=Path("docs/images/lab_strip.png"))
    strip.add_argument("--size", choices=tuple(SIZES), default="lab-128")
    strip.add_argument("--seed", type=int, default=None, help="default: the first test subject")
    train = sub.add_parser("train", help="train a lab base model (vae, then base); resumable",
                           description="Train the lab AutoencoderKLWan ('vae') or the Wan-Animate-style base DiT "
                                       "('base', needs the VAE). The EverAnimate LoRAs: python -m everanimate train.")
    train.add_argument("model", choices=("vae", "base"))
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a training setting (see bench/lab/training.py: VaeTrainConfig, BaseTrainConfig)")
    train.add_argument("--no-progress", action="store_true")
    ship = sub.add_parser("ship", help="write models/lab/MANIFEST.json (sha256 of every shipped lab model file)")
    ship.add_argument("--root", type=Path, default=None, help="default: $BENCH_LAB_MODELS or models/lab")
    verify = sub.add_parser("verify", help="check the shipped lab models against models/lab/MANIFEST.json")
    verify.add_argument("--root", type=Path, default=None)
    manifest = sub.add_parser("manifest", help="regenerate data_manifests/lab_test.jsonl (expected lab-64 hashes)")
    manifest.add_argument("--out", type=Path, default=None)


def main(args: argparse.Namespace) -> int:
    if args.lab_command == "render":
        return _render(args)
    if args.lab_command == "strip":
        path = write_strip(args.out, size=args.size, seed=args.seed)
        print(f"wrote {path}")
        return 0
    if args.lab_command == "train":
        from bench.lab import training

        if args.model == "vae":
            training.train_vae(training.config_with(training.VaeTrainConfig, args.set), progress=not args.no_progress)
        else:
            training.train_base(training.config_with(training.BaseTrainConfig, args.set), progress=not args.no_progress)
        return 0
    if args.lab_command in ("ship", "verify"):
        from bench.lab import shipped

        if args.lab_command == "ship":
            path = shipped.write_manifest(args.root)
            print(f"wrote {path} ({shipped.read_manifest(args.root)['total_bytes'] / 2**20:.1f} MiB in all)")
        else:
            manifest = shipped.read_manifest(args.root)
            names = sorted({rel.rsplit("/", 1)[0] for rel in manifest["files"] if "/" in rel})
            shipped.verify_lab_models(names, root=args.root)
            print(f"{len(manifest['files'])} files verified ({manifest['total_bytes'] / 2**20:.1f} MiB)")
        return 0
    if args.lab_command == "manifest":
        path = write_test_manifest(args.out)
        print(f"wrote {path}")
        return 0
    raise SystemExit(f"unknown lab command {args.lab_command!r}")


def _render(args) -> int:
    from bench.datasets import _render_lab, default_cache_root, load_dataset
    from bench.lab.splits import TRAIN_CLIPS, TRAIN_FRAMES, train_specs

    root = args.out if args.out is not None else default_cache_root()
    progress = not args.no_progress
    if args.split == "test":
        samples = load_dataset("lab-test", n_frames=args.frames, cache_root=root, size=args.size, progress=progress)
    else:
        specs = train_specs(n_clips=args.clips or TRAIN_CLIPS, size=args.size, n_frames=args.frames or TRAIN_FRAMES)
        samples = _render_lab([(sid, spec, None) for sid, spec in specs], root, progress)
    for s in samples:
        print(f"{s.id}\t{s.n_frames} frames\t{s.width}x{s.height}\t{s.base}")
    return 0


def write_test_manifest(out: Path | None = None, progress: bool = True) -> Path:
    """The lab test split with the expected pixel hash of each full-length lab-64 render."""
    from bench.lab.render import pixel_sha256
    from bench.lab.splits import TEST_FRAMES, test_specs
    from bench.manifest import write_manifest
    from data_manifests import LAB_TEST

    records = []
    for sid, spec in test_specs("lab-64", TEST_FRAMES):
        records.append({"id": sid, "spec": spec.to_dict(),
                        "expected": {"lab-64": {"n_frames": spec.n_frames, "pixel_sha256": pixel_sha256(spec, progress)}}})
    return write_manifest(out or LAB_TEST, records, kind="lab", split="test", lab_version=LAB_VERSION,
                          created_by="python -m bench lab manifest")


def strip_image(size: str = "lab-128", seed: int | None = None, times_s=(0, 30, 60, 90)) -> np.ndarray:
    """Rows: ground truth, pose map, face crop at each time; first column: the front / back / side references."""
    import cv2

    from bench.lab.render import LabClip
    from bench.lab.spec import LabSpec
    from bench.lab.splits import TEST_SEEDS

    fps = 25
    frames = [min(int(t * fps), int(max(times_s) * fps)) for t in times_s]
    spec = LabSpec(seed=TEST_SEEDS[0] if seed is None else seed, size=size, n_frames=frames[-1] + 1)
    clip = LabClip(spec)
    chunk = clip.chunk(0, spec.n_frames)
    h, w = clip.height, clip.width
    refs = [img for _, img in clip.references()]
    band = max(14, h // 8)

    def labelled(img, text):
        canvas = np.full((h + band, w, 3), 255, np.uint8)
        canvas[band:] = img
        cv2.putText(canvas, text, (2, band - 4), cv2.FONT_HERSHEY_SIMPLEX, band / 40, (0, 0, 0), 1, cv2.LINE_AA)
        return canvas

    def face_tile(img):
        tile = np.zeros((h, w, 3), np.uint8)
        side = min(h, w)
        tile[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side] = cv2.resize(
            img, (side, side), interpolation=cv2.INTER_NEAREST)
        return tile

    rows = []
    names = ("reference", "back view", "side view")
    for r, (kind, stack) in enumerate((("GT", chunk.gt), ("pose", chunk.pose), ("face crop", chunk.face))):
        tiles = [labelled(refs[r], names[r])]
        for t, f in zip(times_s, frames):
            img = stack[f] if kind != "face crop" else face_tile(stack[f])
            tiles.append(labelled(img, f"{kind} {t}s"))
        rows.append(np.concatenate(tiles, 1))
    return np.concatenate(rows, 0)


def write_strip(out: Path, size: str = "lab-128", seed: int | None = None) -> Path:
    from PIL import Image

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    img = strip_image(size, seed)
    scale = max(1, 256 // img.shape[0] * 3) if img.shape[0] < 256 else 1
    if scale > 1:
        img = np.repeat(np.repeat(img, scale, 0), scale, 1)
    Image.fromarray(img).save(out)
    return out
