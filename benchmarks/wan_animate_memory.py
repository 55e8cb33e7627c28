"""Peak memory and wall time: ``wan_animate`` (this project's streamed segment loop) vs ``diffusers.WanAnimatePipeline``.

Same tiny random components (``bench.models.wan.tiny_components(0)``), same lab clip (lab-64, 64x64, seed 1001),
native sampler settings (77-frame segments, refert_num 1, 20 steps, shift 5, cfg 1), 10 s (250 frames) and 90 s
(2,250 frames) at 25 fps. Each case runs in a fresh subprocess with one torch thread; peak host memory is the
process's peak RSS (``ru_maxrss``), reported also as the rise over the RSS after loading the models. The device
is the CPU here, so device memory is host memory. Our loop reads the sample from its files chunk by chunk and
hands each chunk to a sink that only hashes it (what the run store does, minus the write); the pipeline gets
the pose and face videos as lists of PIL images (its API) and returns the whole video. The two outputs are
compared by sha256 of the uint8 frames.

Consecutive chunks overlap by ``refert_num`` frames; ``bench.video.VideoReader`` serves that small step back
from its last decoded frames, so our loop decodes every frame of the files once, like the pipeline's one read.

    python benchmarks/wan_animate_memory.py            # writes benchmarks/results/wan_animate_memory.txt
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEED, SIZE, FPS = 1001, 64, 25
DURATIONS = (10, 90)


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(method: str, sample_dir: str, steps: int) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from bench.animator import AnimationRequest
    from bench.sample import FileSample

    from baselines.wan_animate import WanAnimate

    sample = FileSample.from_folder(sample_dir)
    n = sample.n_frames
    animator = WanAnimate(components="tiny-random", steps=steps)
    animator.load("cpu")
    request = AnimationRequest(sample=sample, n_frames=n, fps=FPS, height=SIZE, width=SIZE, seed=0,
                               pose_padding="reflect")
    digest = hashlib.sha256()
    if method == "pipeline":
        from diffusers import WanAnimatePipeline
        from PIL import Image

        from bench.models.wan import encode_prompt, make_scheduler, unit_to_uint8

        comps = animator.components
        pipe = WanAnimatePipeline(tokenizer=None, text_encoder=None, vae=comps.vae, scheduler=make_scheduler(comps),
                                  image_processor=comps.image_processor, image_encoder=comps.image_encoder,
                                  transformer=comps.transformer)
        pipe.set_progress_bar_config(disable=True)
    rss_loaded = rss_mb()
    start = time.perf_counter()
    if method == "ours":
        produced = [0]

        def sink(spec, frames, blob):
            keep = frames[: max(0, n - produced[0])]
            digest.update(np.ascontiguousarray(keep).tobytes())
            produced[0] += len(keep)

        animator.generate(request, sink)
        n_out = produced[0]
    else:
        pose = [Image.fromarray(f) for f in sample.pose(0, n)]
        face = [Image.fromarray(f) for f in sample.face(0, n)]
        video = pipe(image=Image.fromarray(sample.references()[0]), pose_video=pose, face_video=face,
                     prompt_embeds=encode_prompt(comps), height=SIZE, width=SIZE, segment_frame_length=77,
                     num_inference_steps=steps, prev_segment_conditioning_frames=1, guidance_scale=1.0,
                     generator=torch.Generator("cpu").manual_seed(0), output_type="np").frames[0]
        frames = unit_to_uint8(video)
        digest.update(np.ascontiguousarray(frames).tobytes())
        n_out = len(frames)
    wall = time.perf_counter() - start
    return {"method": method, "frames": n_out, "wall_s": wall, "rss_loaded_mb": rss_loaded,
            "peak_rss_mb": peak_rss_mb(), "sha256": digest.hexdigest()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", choices=["ours", "pipeline"])
    parser.add_argument("--sample")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--durations", type=int, nargs="+", default=list(DURATIONS))
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per method for durations <= 30 s (interleaved; fastest wall time and largest peak kept)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/wan_animate_memory.txt"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.sample, args.steps)))
        return 0

    import torch

    from bench.lab.render import render_sample
    from bench.lab.spec import LabSpec

    rows, load_before = [], os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.durations:
            sample = render_sample(LabSpec(seed=SEED, size="lab-64", n_frames=seconds * FPS), tmp, progress=False)
            best: dict[str, dict] = {}
            for _ in range(args.repeats if seconds <= 30 else 1):
                for method in ("pipeline", "ours"):
                    out = subprocess.run([sys.executable, __file__, "--worker", method, "--sample", str(sample.base),
                                          "--steps", str(args.steps)], capture_output=True, text=True, cwd=ROOT,
                                         env={**os.environ, "OMP_NUM_THREADS": "1"})
                    if out.returncode:
                        print(out.stderr, file=sys.stderr)
                        return 1
                    row = json.loads(out.stdout.strip().splitlines()[-1])
                    print(f"{seconds:>3d} s {method:<9s} {row['wall_s']:8.1f} s  peak {row['peak_rss_mb']:7.1f} MB",
                          flush=True)
                    if method in best:
                        row = {**row, "wall_s": min(row["wall_s"], best[method]["wall_s"]),
                               "peak_rss_mb": max(row["peak_rss_mb"], best[method]["peak_rss_mb"]),
                               "rss_loaded_mb": min(row["rss_loaded_mb"], best[method]["rss_loaded_mb"]),
                               "runs": best[method]["runs"] + 1}
                    best[method] = {"runs": 1, **row}
            for method in ("pipeline", "ours"):
                rows.append({**best[method], "seconds": seconds})

    lines = [f"wan_animate memory/speed benchmark - {platform.machine()}, torch {torch.__version__}, 1 thread, "
             f"device = CPU (device memory = host memory)",
             f"tiny random components (tiny_components(0)), lab-64 seed {SEED}, 77-frame segments, refert_num 1, "
             f"{args.steps} steps, shift 5, cfg 1",
             f"{os.cpu_count()} CPU cores, 1-minute load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} "
             f"at end (shared machine: wall times carry that noise; memory does not)",
             f"durations <= 30 s: {args.repeats} interleaved runs per method, fastest wall time and largest peak kept", "",
             f"{'duration':>8s} {'method':<22s} {'frames':>6s} {'wall s':>8s} {'peak RSS MB':>12s} "
             f"{'rise over loaded MB':>20s} {'runs':>4s}"]
    for row in rows:
        name = "WanAnimatePipeline" if row["method"] == "pipeline" else "wan_animate (ours)"
        lines.append(f"{row['seconds']:>7d}s {name:<22s} {row['frames']:>6d} {row['wall_s']:>8.1f} "
                     f"{row['peak_rss_mb']:>12.1f} {row['peak_rss_mb'] - row['rss_loaded_mb']:>20.1f} {row['runs']:>4d}")
    lines.append("")
    for seconds in args.durations:
        pipe, ours = (next(r for r in rows if r["seconds"] == seconds and r["method"] == m) for m in ("pipeline", "ours"))
        lines.append(f"{seconds:>3d} s: wall time ratio ours/pipeline = {ours['wall_s'] / pipe['wall_s']:.3f} "
                     f"(target <= 1.05); identical frames: {'yes' if ours['sha256'] == pipe['sha256'] else 'NO'}")
    if len(args.durations) >= 2:
        a, b = args.durations[0], args.durations[-1]
        for m, label in (("pipeline", "WanAnimatePipeline"), ("ours", "wan_animate (ours)")):
            ra, rb = (next(r for r in rows if r["seconds"] == s and r["method"] == m) for s in (a, b))
            lines.append(f"{label}: peak-memory rise {a} s -> {b} s: "
                         f"{(rb['peak_rss_mb'] - rb['rss_loaded_mb']) - (ra['peak_rss_mb'] - ra['rss_loaded_mb']):+.1f} MB")
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
