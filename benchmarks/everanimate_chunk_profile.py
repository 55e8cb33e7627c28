"""Per-chunk time split and host-memory growth: EverAnimate vs the Wan-Animate carry-over loop.

Same tiny random components (``bench.models.wan.tiny_components(seed=0)``), same 64x64 input, the spec's
chunk geometry (77 frames, 4-frame overlap for EverAnimate / 1 carried frame for Wan-Animate, 20 Euler
steps, shift 5). Parts of a chunk:

- dit: transformer forward passes (20 per chunk);
- vae_decode: decoding the chunk;
- vae_encode: encoding *generated or reference pixels* (EverAnimate: memory anchors, chunk 0 only;
  Wan-Animate: the carried decoded frame + zeros, re-encoded every chunk);
- conditioning: the chunk's pose video through the VAE, face-motion and CLIP features (both methods);
- other: everything else (noise, scheduler steps, concatenations, uint8 conversion, bookkeeping).

Host memory: peak RSS of a fresh process running a 90 s rollout vs a 10 s rollout (frames streamed to a
sink that drops them, as the harness streams them to disk). Usage::

    python benchmarks/everanimate_chunk_profile.py [--chunks 6] [--out benchmarks/results/everanimate_chunk_profile.txt]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

PARTS = ("dit", "vae_decode", "vae_encode", "conditioning", "other")


def request(n_frames: int):
    from bench.animator import AnimationRequest
    from everanimate_helpers import MovingSquareSample

    return AnimationRequest(MovingSquareSample(max(n_frames, 80)), n_frames, 25, 64, 64, seed=42,
                            pose_padding="reflect")


def profile_everanimate(n_chunks: int) -> list[dict]:
    from everanimate.animator import EverAnimate

    a = EverAnimate(components="tiny-random")
    a.load("cpu")
    a.generate(request(77 + 73 * (n_chunks - 1)), lambda spec, frames, blob: None)
    return a.sampler.profiler.chunks


def profile_wan_animate(n_chunks: int) -> list[dict]:
    from baselines.wan_animate import WanAnimate
    from bench.models import wan

    a = WanAnimate(components="tiny-random", solver="euler", dtype="float32")
    a.load("cpu")
    parts: dict[str, float] = {}

    def timed(name, fn):
        def wrapper(*args, **kw):
            t = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                parts[name] = parts.get(name, 0.0) + time.perf_counter() - t
        return wrapper

    wan.vae_decode = timed("vae_decode", wan.vae_decode)
    wan.carry_condition = timed("vae_encode", wan.carry_condition)
    wan.pose_latents = timed("conditioning", wan.pose_latents)
    wan.face_motion_features = timed("conditioning", wan.face_motion_features)
    wan.clip_image_features = timed("conditioning", wan.clip_image_features)
    tr = a.components.transformer
    tr.forward = timed("dit", tr.forward)
    chunks = []
    state = a.start(request(77 + 76 * (n_chunks - 1)))
    from bench.animator import plan_chunks

    caps = a.capabilities()
    req = request(77 + 76 * (n_chunks - 1))
    for spec in plan_chunks(req.n_frames, caps.chunk_frames, caps.overlap_frames):
        parts.clear()
        t = time.perf_counter()
        _, state = a.step(state, a.chunk_input(req, spec))
        total = time.perf_counter() - t
        row = {p: parts.get(p, 0.0) for p in PARTS[:-1]}
        row["other"] = max(0.0, total - sum(row.values()))
        row["total"] = total
        chunks.append(row)
    return chunks


def rss_child(seconds: int) -> None:
    """Child process: one rollout of ``seconds`` at 25 fps, prints peak RSS (MiB) as JSON."""
    from everanimate.animator import EverAnimate

    a = EverAnimate(components="tiny-random", steps=2)
    a.load("cpu")
    n = {"chunks": 0}
    a.generate(request(25 * seconds), lambda spec, frames, blob: n.__setitem__("chunks", n["chunks"] + 1))
    print(json.dumps({"seconds": seconds, "chunks": n["chunks"],
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure_rss(seconds: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--rss-child", str(seconds)], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(name: str, chunks: list[dict]) -> list[str]:
    lines = [f"{name}: per-chunk seconds (chunk 0 includes one-time setup)",
             "  chunk " + "".join(f"{p:>14}" for p in (*PARTS, "total")) + "   other %"]
    for i, row in enumerate(chunks):
        lines.append(f"  {i:5d} " + "".join(f"{row[p]:14.3f}" for p in (*PARTS, "total"))
                     + f"   {100 * row['other'] / row['total']:6.2f}")
    later = chunks[1:] or chunks
    mean = {p: float(np.mean([r[p] for r in later])) for p in (*PARTS, "total")}
    lines.append("  mean>0" + "".join(f"{mean[p]:14.3f}" for p in (*PARTS, "total"))
                 + f"   {100 * mean['other'] / mean['total']:6.2f}")
    return lines, mean


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=5)
    ap.add_argument("--rss-child", type=int)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/everanimate_chunk_profile.txt"))
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    import torch

    torch.set_num_threads(2)
    lines = ["EverAnimate chunk profile (tiny random components, 64x64, 77-frame chunks, 20 Euler steps, shift 5, CPU)",
             f"torch {torch.__version__}, {torch.get_num_threads()} threads; shared 2-core machine: absolute times are noisy", ""]
    ea, ea_mean = table("EverAnimate", profile_everanimate(args.chunks))
    try:
        wa, wa_mean = table("Wan-Animate carry-over loop (baselines.wan_animate, Euler)", profile_wan_animate(args.chunks))
    except Exception as exc:  # the baseline module is developed separately
        wa, wa_mean = [f"Wan-Animate carry-over loop: unavailable ({type(exc).__name__}: {exc})"], \
            {p: float("nan") for p in (*PARTS, "total")}
    lines += ea + [""] + wa + [""]
    lines.append("Side by side, mean over chunks >= 1 (seconds):")
    lines.append(f"  {'part':14}{'EverAnimate':>14}{'Wan-Animate':>14}")
    for p in (*PARTS, "total"):
        lines.append(f"  {p:14}{ea_mean[p]:14.3f}{wa_mean[p]:14.3f}")
    other_pct = 100 * ea_mean["other"] / ea_mean["total"]
    lines.append(f"Targets: EverAnimate VAE encode per chunk after chunk 0 = {ea_mean['vae_encode']:.3f} s "
                 f"({'PASS' if ea_mean['vae_encode'] == 0 else 'FAIL'}); 'other' = {other_pct:.2f} % of chunk time "
                 f"({'PASS' if other_pct < 5 else 'FAIL'} < 5 %)")
    r10, r90 = measure_rss(10), measure_rss(90)
    ratio = r90["peak_rss_mib"] / r10["peak_rss_mib"]
    lines += ["", "Host peak memory (fresh process per rollout, steps=2 to keep the 90 s run short):",
              f"  10 s: {r10['chunks']} chunks, peak RSS {r10['peak_rss_mib']:.1f} MiB",
              f"  90 s: {r90['chunks']} chunks, peak RSS {r90['peak_rss_mib']:.1f} MiB",
              f"  ratio 90 s / 10 s = {ratio:.3f} ({'PASS' if ratio <= 1.2 else 'FAIL'} <= 1.2)"]
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
