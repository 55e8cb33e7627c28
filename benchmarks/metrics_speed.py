"""Speed and memory of the metric protocol at 480x832 (H 832, W 480, portrait), measured side by side.

    python benchmarks/metrics_speed.py [--short-seconds 2] [--long-seconds 6] [--out benchmarks/results/metrics_speed.txt]

What it measures (one run):
  1. peak memory (RSS) scoring a long pair / a short pair with the whole suite (constant in duration);
  2. pixel metrics (PSNR, SSIM, F-PSNR, BG-PSNR) time / bare decode time of the two videos;
  3. our SSIM vs torchmetrics' Gaussian SSIM: speed and agreement;
  4. network metrics (LPIPS, FID-Inception, VideoMAE) time / bare batched forward time of the same networks;
  5. the whole suite vs a naive reference (decode everything, then per-frame library calls in a loop) on a
     protocol-shaped job (one rollout, horizons 1:9 like 10 s / 90 s), for the first prediction of a ground
     truth and for a further one (GT-side features from the cache). The per-frame values agree; FID and
     V-MAE FD differ by definition: the naive pools every frame / clip of a prefix, the protocol the same N
     per horizon (which is also where part of the speed-up comes from).

No real weights can be downloaded here: the networks are the real architectures (torchvision AlexNet under
lpips, pytorch-fid's FID Inception, VideoMAE-base config) with random weights placed where the libraries
look, hashes pinned for this run only. Timing depends on the architecture, not on the weight values.
CPU only unless CUDA is present (then the suite's frames/s on the GPU is added).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

H, W_ = 832, 480
FPS = 25


# ----------------------------------------------------------------------------------------- fixtures
def make_pair(folder: Path, frames: int, tag: str) -> dict:
    """A real photograph (skimage astronaut) as a moving 480x832 video; the prediction is blurred and noisy
    with a slow colour drift; a moving elliptical person mask; a moving face box."""
    import cv2
    from skimage import data

    from bench.video import VideoWriter

    src = cv2.resize(data.astronaut(), (W_ + 200, H + 200), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(0)
    paths = {k: folder / f"{tag}_{k}.mp4" for k in ("gt", "pred", "masks")}
    boxes = np.zeros((frames, 4))
    yy, xx = np.mgrid[:H, :W_]
    with VideoWriter(paths["gt"], FPS) as g, VideoWriter(paths["pred"], FPS) as p, VideoWriter(paths["masks"], FPS) as m:
        for t in range(frames):
            dy, dx = (t * 3) % 200, (t * 2) % 200
            gt = np.ascontiguousarray(src[dy:dy + H, dx:dx + W_])
            pred = cv2.GaussianBlur(gt, (0, 0), 1.0).astype(np.int16) + rng.normal(0, 4, gt.shape).astype(np.int16)
            pred[..., 0] += int(t * 10 / max(frames, 1))
            cx, cy = 240 + 40 * np.sin(t / 20), 450
            mask = ((xx - cx) / 150) ** 2 + ((yy - cy) / 330) ** 2 < 1
            g.write(gt)
            p.write(np.clip(pred, 0, 255).astype(np.uint8))
            m.write(np.repeat((mask * 255).astype(np.uint8)[..., None], 3, axis=2))
            boxes[t] = (cx - 60, 150, cx + 60, 290)
    np.save(folder / f"{tag}_boxes.npy", boxes)
    return {**{k: str(v) for k, v in paths.items()}, "boxes": str(folder / f"{tag}_boxes.npy"), "frames": frames}


def second_prediction(pair: dict, folder: Path) -> str:
    """Another prediction of the pair's GT (the first one with a slight colour change), so that scoring it
    meets the GT cache the first scoring wrote."""
    from bench.video import VideoReader, VideoWriter

    path = folder / f"{Path(pair['pred']).stem}_2.mp4"
    with VideoReader(pair["pred"]) as reader, VideoWriter(path, FPS) as writer:
        for chunk in reader.iter_chunks(0, pair["frames"], 32):
            for frame in chunk:
                writer.write(np.clip(frame.astype(np.int16) + 3, 0, 255).astype(np.uint8))
    return str(path)


def place_random_weights(folder: Path) -> dict:
    """Random-weight files of the real architectures where the libraries look; returns env vars."""
    import torch
    import torchvision
    from pytorch_fid import inception as fi
    from transformers import VideoMAEConfig, VideoMAEModel

    ckpt = folder / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), ckpt / "alexnet-owt-7be5be79.pth")
    net = fi._inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    net.Mixed_5b, net.Mixed_5c, net.Mixed_5d = fi.FIDInceptionA(192, 32), fi.FIDInceptionA(256, 64), fi.FIDInceptionA(288, 64)
    net.Mixed_6b, net.Mixed_6c = fi.FIDInceptionC(768, 128), fi.FIDInceptionC(768, 160)
    net.Mixed_6d, net.Mixed_6e = fi.FIDInceptionC(768, 160), fi.FIDInceptionC(768, 192)
    net.Mixed_7b, net.Mixed_7c = fi.FIDInceptionE_1(1280), fi.FIDInceptionE_2(2048)
    torch.save(net.state_dict(), ckpt / "pt_inception-2015-12-05-6726825d.pth")
    vm = VideoMAEModel(VideoMAEConfig())  # videomae-base geometry: 224, 16 frames, ViT-B
    with torch.no_grad():
        for name, p in vm.named_parameters():
            if name.endswith(("query.bias", "value.bias")):
                p.normal_(0, 0.02)
    vm.save_pretrained(folder / "videomae")
    return {"TORCH_HOME": str(folder / "torch"), "BENCH_VIDEOMAE_PATH": str(folder / "videomae")}


def trust_placed_weights() -> None:
    from bench.metrics import weights as W

    for key in ("alexnet", "fid_inception"):
        path = W.torch_hub_checkpoints_dir() / W.KNOWN_WEIGHTS[key].filename
        W.KNOWN_WEIGHTS[key] = dataclasses.replace(W.KNOWN_WEIGHTS[key], sha256=W.sha256_file(path))


# ----------------------------------------------------------------------------------------- child jobs
def child_score(pair: dict) -> dict:
    """Our scorer, whole suite, in a fresh process: time and peak RSS."""

    trust_placed_weights()
    import lpips  # noqa: F401  -- libraries imported before the clock, as the naive reference does
    import pytorch_fid.inception  # noqa: F401
    from transformers import VideoMAEModel  # noqa: F401

    import bench.metrics.kernels  # noqa: F401
    from bench.metrics.pair import score_pair

    t = time.perf_counter()
    result = score_pair(pair["gt"], pair["pred"], metrics=["psnr", "ssim", "lpips", "fid", "vmae_paired", "fpsnr",
                                                            "bgpsnr", "vmae_fd"],
                        face_boxes=pair["boxes"], masks=pair["masks"], chunk_frames=16, cache_dir=pair["cache"],
                        horizon_seconds=[h / FPS for h in pair.get("horizons") or [pair["frames"]]])
    return {"seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb(),
            "values": {k: v.get("value") for k, v in result["metrics"].items()}}


def child_naive(pair: dict) -> dict:
    """The naive reference: decode everything, then per-frame library calls in a loop."""

    import lpips
    import torch
    import torch.nn.functional as F
    from pytorch_fid.fid_score import calculate_frechet_distance
    from pytorch_fid.inception import InceptionV3
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim
    from transformers import VideoMAEModel

    from bench.video import read_all

    VideoMAEModel.config_class  # resolve transformers' lazy module before the clock, as for ours
    t = time.perf_counter()
    gt, pred, masks = read_all(pair["gt"]), read_all(pair["pred"]), read_all(pair["masks"]) > 127
    boxes = np.load(pair["boxes"])
    boxes = np.concatenate([np.floor(boxes[:, :2]), np.ceil(boxes[:, 2:])], axis=1).astype(int)  # covering window
    lp = lpips.LPIPS(net="alex", verbose=False).eval()
    inc = InceptionV3([3]).eval()
    vm = VideoMAEModel.from_pretrained(os.environ["BENCH_VIDEOMAE_PATH"]).eval()
    to_t = lambda f: torch.from_numpy(f).permute(2, 0, 1)[None].float()
    psnr, ssim, lpv, fps_, bgp, fg, fp = [], [], [], [], [], [], []
    with torch.no_grad():
        for i in range(len(gt)):
            a, b = gt[i].astype(np.float64), pred[i].astype(np.float64)
            psnr.append(10 * np.log10(255**2 / np.mean((a - b) ** 2)))
            ssim.append(tm_ssim(to_t(pred[i]), to_t(gt[i]), data_range=255.0).item())
            lpv.append(lp(to_t(pred[i]) / 127.5 - 1, to_t(gt[i]) / 127.5 - 1).item())
            x0, y0, x1, y1 = boxes[i]
            fps_.append(10 * np.log10(255**2 / np.mean((a[y0:y1, x0:x1] - b[y0:y1, x0:x1]) ** 2)))
            bg = ~masks[i][..., 0]
            bgp.append(10 * np.log10(255**2 / np.mean((a[bg] - b[bg]) ** 2)))
            fg.append(inc(to_t(gt[i]) / 255)[0].reshape(-1).numpy())
            fp.append(inc(to_t(pred[i]) / 255)[0].reshape(-1).numpy())
        fg, fp = np.array(fg, np.float64), np.array(fp, np.float64)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        vg, vp, cos = [], [], []
        for c in range(0, len(gt) - 15, 16):
            clips = []
            for v in (gt, pred):
                x = torch.from_numpy(v[c:c + 16]).permute(0, 3, 1, 2).float() / 255
                x = (F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True) - mean) / std
                clips.append(vm(pixel_values=x[None]).last_hidden_state.mean(1)[0].double().numpy())
            vg.append(clips[0])
            vp.append(clips[1])
            cos.append(1 - clips[0] @ clips[1] / np.linalg.norm(clips[0]) / np.linalg.norm(clips[1]))
        vg, vp = np.array(vg), np.array(vp)

    def frechet(a, b):
        return float(calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)))

    values = {}
    for h in pair.get("horizons") or [len(gt)]:  # every horizon from its own prefix, all frames
        k = h // 16
        values[h] = {"psnr": float(np.mean(psnr[:h])), "ssim": float(np.mean(ssim[:h])), "lpips": float(np.mean(lpv[:h])),
                     "fpsnr": float(np.mean(fps_[:h])), "bgpsnr": float(np.mean(bgp[:h])),
                     "fid": frechet(fg[:h], fp[:h]), "vmae_paired": float(np.mean(cos[:k])),
                     "vmae_fd": frechet(vg[:k], vp[:k]) if k >= 2 else None}
    return {"seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb(), "values": values[max(values)]}


def run_child(job: str, pair: dict, env: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", job, "--pair", json.dumps(pair)],
                         env={**os.environ, **env}, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------- in-process parts
def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Unlike ru_maxrss it starts afresh at exec, so a child
    does not report the benchmark parent's memory."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def timed(fn, *args):
    t = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t, result


def bare_decode(pair: dict, chunk: int = 16) -> float:
    from bench.video import VideoReader

    t = time.perf_counter()
    with VideoReader(pair["gt"]) as g, VideoReader(pair["pred"]) as p:
        for a in range(0, pair["frames"], chunk):
            g.read(a, min(pair["frames"], a + chunk))
            p.read(a, min(pair["frames"], a + chunk))
    return time.perf_counter() - t


def pixel_pass(pair: dict, chunk: int = 16) -> float:
    from bench.metrics.base import FrameBatch
    from bench.metrics.face import BackgroundPSNR, FacePSNR
    from bench.metrics.pixel import PSNR, SSIM
    from bench.video import VideoReader

    boxes = np.load(pair["boxes"])
    metrics = [PSNR(), SSIM(), FacePSNR(), BackgroundPSNR()]
    t = time.perf_counter()
    with VideoReader(pair["gt"]) as g, VideoReader(pair["pred"]) as p, VideoReader(pair["masks"]) as m:
        for a in range(0, pair["frames"], chunk):
            b = min(pair["frames"], a + chunk)
            batch = FrameBatch(a, g.read(a, b), p.read(a, b), boxes[a:b], m.read(a, b)[..., 0] > 127)
            for metric in metrics:
                metric.update(batch)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--short-seconds", type=float, default=2.0)
    ap.add_argument("--long-seconds", type=float, default=6.0)
    ap.add_argument("--protocol-seconds", type=float, default=12.0,
                    help="length of the rollout for the naive comparison (horizons at 1/9 and all of it)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "metrics_speed.txt"))
    ap.add_argument("--child", default=None)
    ap.add_argument("--pair", default=None)
    args = ap.parse_args()
    if args.child:
        pair = json.loads(args.pair)
        print(json.dumps({"score": child_score, "naive": child_naive}[args.child](pair)))
        return

    import torch

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    say("# bench.metrics speed and memory at 480x832 (H x W = 832 x 480), 25 fps")
    say(f"# {time.strftime('%Y-%m-%d %H:%M')}  python {platform.python_version()}  torch {torch.__version__}  "
        f"cpu threads {torch.get_num_threads()}  cores {os.cpu_count()}  cuda {torch.cuda.is_available()}")
    say("# networks: real architectures with RANDOM weights (no real weights on this machine); timing only")
    tmp = Path(tempfile.mkdtemp(prefix="metrics_speed_"))
    env = place_random_weights(tmp)
    os.environ.update(env)
    short = make_pair(tmp, int(args.short_seconds * FPS), "short")
    long = make_pair(tmp, int(args.long_seconds * FPS), "long")
    say(f"# pairs: short {short['frames']} frames ({args.short_seconds:g} s), long {long['frames']} frames "
        f"({args.long_seconds:g} s); the 90 s / 10 s pair is shortened for CPU time (scaling printed below)")
    say()

    # 2. pixel metrics vs bare decode
    decode = min(bare_decode(long) for _ in range(2))
    pixel = min(pixel_pass(long) for _ in range(2))
    n = long["frames"]
    say("## pixel metrics (PSNR, SSIM, F-PSNR, BG-PSNR) vs bare decode of the two videos (long pair)")
    say(f"bare decode: {decode:.2f} s ({decode / n * 1000:.1f} ms/frame pair)")
    say(f"decode + pixel metrics (+ mask video decode): {pixel:.2f} s ({pixel / n * 1000:.1f} ms/frame)")
    say(f"ratio (decode + metrics) / decode = {pixel / decode:.2f}   target <= 5.0   "
        f"{'PASS' if pixel / decode <= 5.0 else 'FAIL'}")
    say(f"90 s pair at this rate: pixel pass {pixel / n * 2250 / 60:.1f} min")
    say()

    # 3. SSIM vs torchmetrics
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    from bench.metrics.pixel import ssim_per_frame
    from bench.video import VideoReader

    with VideoReader(short["gt"]) as g, VideoReader(short["pred"]) as p:
        gt, pred = g.read(0, 8), p.read(0, 8)
    to = lambda v, dt: torch.from_numpy(v).permute(0, 3, 1, 2).to(dt)
    ssim_per_frame(gt, pred)  # warm both sides: thread pool and buffers, torch kernels
    tm_ssim(to(pred[:1], torch.float32), to(gt[:1], torch.float32), data_range=255.0)
    ours_t, ours = min((timed(ssim_per_frame, gt, pred) for _ in range(3)), key=lambda r: r[0])
    tm_t = min(timed(lambda: [tm_ssim(to(pred[i:i + 1], torch.float32), to(gt[i:i + 1], torch.float32),
                                      data_range=255.0).item() for i in range(len(gt))])[0] for _ in range(2))
    ref64 = np.array([tm_ssim(to(pred[i:i + 1], torch.float64), to(gt[i:i + 1], torch.float64), data_range=255.0).item()
                      for i in range(len(gt))])
    say("## SSIM vs torchmetrics Gaussian SSIM (float32 input, 11x11, sigma 1.5), 8 frames, best of 3 / 2 runs")
    say(f"ours {ours_t / len(gt) * 1000:.1f} ms/frame, torchmetrics {tm_t / len(gt) * 1000:.1f} ms/frame: "
        f"{tm_t / ours_t:.1f}x faster   target >= 10x   {'PASS' if tm_t / ours_t >= 10 else 'FAIL'}")
    say(f"max |ours - torchmetrics(float64)| = {np.abs(ours - ref64).max():.2e}")
    say()

    # 4. network metrics vs bare forward
    trust_placed_weights()
    from bench.metrics import get_metric_class
    from bench.metrics.base import FrameBatch

    with VideoReader(long["gt"]) as g, VideoReader(long["pred"]) as p:
        gt, pred = g.read(0, 32), p.read(0, 32)
    per_frame: dict[str, float] = {}
    say("## network metrics vs bare batched forward of the same network on the same 32 frames, best of 3 alternated")
    for name in ("lpips", "fid", "vmae_paired"):
        metric = get_metric_class(name)(horizons=(32,))
        if name == "lpips":
            model = metric._model
            x = torch.from_numpy(gt).permute(0, 3, 1, 2).float() / 127.5 - 1
            y = torch.from_numpy(pred).permute(0, 3, 1, 2).float() / 127.5 - 1

            def bare():
                with torch.inference_mode():
                    for a in range(0, 32, 8):
                        model(y[a:a + 8], x[a:a + 8])
        elif name == "fid":
            model = metric._model
            x = torch.from_numpy(gt).permute(0, 3, 1, 2).float() / 255
            y = torch.from_numpy(pred).permute(0, 3, 1, 2).float() / 255

            def bare():
                with torch.inference_mode():
                    for v in (x, y):
                        for a in range(0, 32, 16):
                            model(v[a:a + 16])
        else:
            import torch.nn.functional as F

            model = metric._clips.model
            clips = []
            for v in (gt, pred):
                t = torch.from_numpy(v).permute(0, 3, 1, 2).float() / 255
                t = F.interpolate(t, size=(224, 224), mode="bilinear", antialias=True)
                clips.append(t.reshape(2, 16, 3, 224, 224))

            def bare():
                with torch.inference_mode():
                    for c in clips:
                        model(pixel_values=c)

        def ours():
            metric.reset()
            for a in range(0, 32, 16):
                metric.update(FrameBatch(a, gt[a:a + 16], pred[a:a + 16]))

        bare()
        ours()
        runs = [(timed(bare)[0], timed(ours)[0]) for _ in range(3)]  # alternated, so drift hits both alike
        bare_t, ours_t = min(r[0] for r in runs), min(r[1] for r in runs)
        per_frame[name] = min(ours_t, bare_t) / 32  # both videos' frames of one frame pair
        say(f"{name:<12} metric {ours_t:.2f} s, bare forward {bare_t:.2f} s, ratio {ours_t / bare_t:.3f}   "
            f"target <= 1.1   {'PASS' if ours_t / bare_t <= 1.1 else 'FAIL'}")
    say()

    # 1. memory constancy (fresh processes)
    s = run_child("score", {**short, "cache": str(tmp / "cache_short")}, env)
    l_ = run_child("score", {**long, "cache": str(tmp / "cache_long")}, env)
    say("## whole suite (psnr, ssim, lpips, fid, vmae_paired, fpsnr, bgpsnr, vmae_fd): memory, fresh process each")
    say(f"ours  short: {s['seconds']:.1f} s ({short['frames'] / s['seconds']:.2f} frames/s), peak RSS {s['peak_rss_mb']:.0f} MB")
    say(f"ours  long : {l_['seconds']:.1f} s ({long['frames'] / l_['seconds']:.2f} frames/s), peak RSS {l_['peak_rss_mb']:.0f} MB")
    ratio = l_["peak_rss_mb"] / s["peak_rss_mb"]
    say(f"peak memory long / short ({long['frames'] / short['frames']:.0f}x the duration) = {ratio:.3f}   "
        f"target <= 1.2   {'PASS' if ratio <= 1.2 else 'FAIL'}")
    say()

    # 5. the naive reference on a protocol-shaped job: one rollout, horizons 1:9 like 10 s / 90 s
    proto = make_pair(tmp, int(args.protocol_seconds * FPS), "proto")
    proto["horizons"] = [proto["frames"] // 9, proto["frames"]]
    first = run_child("score", {**proto, "cache": str(tmp / "cache_proto")}, env)
    again = run_child("score", {**proto, "pred": second_prediction(proto, tmp), "cache": str(tmp / "cache_proto")}, env)
    naive = run_child("naive", proto, env)
    n = proto["frames"]
    say(f"## whole suite vs the naive reference: one {args.protocol_seconds:g} s rollout ({n} frames) scored at "
        f"horizons {proto['horizons']} frames (1:9, like 10 s / 90 s)")
    say("naive: decode all frames, then per-frame library calls (torchmetrics SSIM, lpips, pytorch-fid Inception on "
        "every frame, VideoMAE per clip), float64 NumPy PSNRs, pytorch-fid's Frechet distance per horizon prefix")
    say(f"ours, first prediction of this GT      : {first['seconds']:.1f} s ({n / first['seconds']:.2f} frames/s), "
        f"peak RSS {first['peak_rss_mb']:.0f} MB")
    say(f"ours, another prediction of the same GT: {again['seconds']:.1f} s ({n / again['seconds']:.2f} frames/s), "
        f"peak RSS {again['peak_rss_mb']:.0f} MB  (GT-side Inception / VideoMAE features from the cache)")
    say(f"naive                                  : {naive['seconds']:.1f} s ({n / naive['seconds']:.2f} frames/s), "
        f"peak RSS {naive['peak_rss_mb']:.0f} MB")
    for label, run in (("first prediction of a GT", first), ("further predictions of it", again)):
        speed = naive["seconds"] / run["seconds"]
        say(f"speed-up vs naive, {label:<26}= {speed:.2f}x   target >= 3x   {'PASS' if speed >= 3 else 'FAIL'}")
    say("  (a leaderboard scores every method against the same GT: all but the first method see the cached GT)")
    floor_first = (per_frame["lpips"] + per_frame["vmae_paired"]) * n
    floor_again = (per_frame["lpips"] + per_frame["vmae_paired"] / 2) * n
    say(f"bound: LPIPS on every GT and predicted frame and VideoMAE on every clip are part of the definition; their "
        f"forwards alone take {floor_first:.0f} s here ({floor_again:.0f} s with GT clips cached), so no scorer can beat "
        f"this naive by more than {naive['seconds'] / floor_first:.2f}x ({naive['seconds'] / floor_again:.2f}x) on this CPU")
    per_frame_mb = H * W_ * 3 * 2 / 2**20
    naive_90 = naive["peak_rss_mb"] + per_frame_mb * (2250 - n) * 1.5
    say(f"memory: ours {first['peak_rss_mb']:.0f} MB, flat in duration (above); naive {naive['peak_rss_mb']:.0f} MB at "
        f"{n} frames, growing {per_frame_mb * 1.5:.1f} MB per frame (gt + pred + mask held): ~{naive_90 / 1024:.1f} GB "
        f"at 2250 frames (90 s), {first['peak_rss_mb'] / (naive_90):.2f} of it")
    rounded = lambda values: json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()})
    say(f"values ours  : {rounded(first['values'])}")
    say(f"values naive : {rounded(naive['values'])}")
    say(f"a 90 s pair at the protocol-shaped rate: ours {first['seconds'] / n * 2250 / 60:.1f} min "
        f"({again['seconds'] / n * 2250 / 60:.1f} min with the GT cached), naive {naive['seconds'] / n * 2250 / 60:.1f} min "
        "on this CPU")
    if torch.cuda.is_available():
        say("(GPU present: rerun child 'score' with --device cuda for frames/s)")
    else:
        say("GPU: none on this machine; GPU frames/s not measured")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
