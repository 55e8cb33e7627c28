"""What the four official-code adapters share: locating a checkout, its Python and its weights; writing
prepared inputs; running the official code as a subprocess; collecting, checking and resampling its
output; and the window loop that streams frames into the run store.

The subprocess contract (every adapter follows it; each module documents its own files and command):

1. The adapter writes a *job folder* ``<workdir>/w<window>/`` holding the method's native inputs (reference
   image, pose frames or pose video at the method's native fps), ``job.json`` (every setting it passes) and,
   for the methods whose entry scripts have no command line, ``driver.py`` (see ``DRIVER_SOURCE``).
2. It runs one command with the method's own interpreter (``python``), the checkout as working directory
   unless the module says otherwise, stdout+stderr streamed to ``<job>/official.log``, and a timeout.
3. A non-zero exit, a timeout, a missing output, too few frames or a wrong frame size is a ``MethodError``
   naming the method, the exit code, the last log lines and the fix.
4. Output frames are mapped from the native fps to the benchmark's 25 fps by frame-index mapping (output
   frame ``j`` shows native frame ``round(j * native_fps / 25)``) and resized to the request size; both
   are recorded as adaptations.

Paths come from runtime arguments (never part of the rollout key) or environment variables
``<PREFIX>_HOME`` (checkout), ``<PREFIX>_PYTHON`` (interpreter), ``<PREFIX>_WEIGHTS`` (weights folder).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from bench.animator import (AnimationRequest, Animator, Capabilities, ChunkInput, config_arguments, plan_chunks,
                            pose_indices, runtime)
from bench.errors import ConfigError, MethodError, WeightsError, os_reason
from bench.sample import sha256_file

LOG_TAIL_LINES = 25


@dataclass(frozen=True)
class OfficialCodeConfig:
    """The runtime arguments every adapter takes (paths and a timeout: never part of the rollout key); each
    adapter's ``Config`` extends it with its identity settings, defaulting to the method's native values."""

    checkout: str | None = runtime()  # the official checkout (else $<PREFIX>_HOME)
    python: str | None = runtime()  # its interpreter (else $<PREFIX>_PYTHON, a venv in the checkout, this one)
    weights: str | None = runtime()  # its weights folder (else $<PREFIX>_WEIGHTS, else the checkout)
    workdir: str | None = runtime()  # job folders (else $BENCH_WORK_DIR or the temp folder)
    timeout_s: float | None = runtime()  # per official run


# -- 1. locating the official code ------------------------------------------------------------------
@dataclass(frozen=True)
class Requirement:
    """One thing an adapter needs on disk; ``kind`` is "dir", "file" or "python"."""

    name: str
    path: Path
    kind: str
    fix: str

    def present(self) -> bool:
        if self.kind == "dir":
            return self.path.is_dir()
        if self.kind == "python":
            return self.path.is_file() and os.access(self.path, os.X_OK)
        return self.path.is_file()


def resolve_path(given: str | os.PathLike | None, env: str, default: Path | None = None) -> tuple[Path | None, str]:
    """``given`` argument > environment variable ``env`` > ``default``; returns the path and where it came from."""
    if given:
        return Path(given).expanduser(), "argument"
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser(), f"${env}"
    return default, "default"


def default_python(checkout: Path | None) -> Path:
    """A virtual environment inside the checkout (``.venv`` / ``venv``), else the harness interpreter."""
    if checkout is not None:
        for name in (".venv", "venv", "env"):
            candidate = checkout / name / "bin" / "python"
            if candidate.is_file():
                return candidate
    return Path(sys.executable)


def sha256_cached(path: Path) -> str:
    """sha256 of a (possibly multi-GB) weight file, cached by path, size and mtime so it is read once."""
    stat = path.stat()
    cache_file = Path(os.environ.get("BENCH_CACHE_DIR", Path.home() / ".cache" / "everanimate-bench")) / "sha256.json"
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]
    cache[key] = sha256_file(path)
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=0))
        os.replace(tmp, cache_file)
    except OSError:
        pass
    return cache[key]


# -- 2. writing inputs --------------------------------------------------------------------------------
def write_image(path: Path, image: np.ndarray, quality: int = 95) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image)).save(path, quality=quality)
    return path


def write_frame_folder(folder: Path, frames: np.ndarray, pattern: str) -> list[Path]:
    """Write frames as numbered images (``pattern`` like ``"{:04d}.jpg"``)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [write_image(folder / pattern.format(i), frame) for i, frame in enumerate(frames)]


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize of ``(T, H, W, 3) uint8`` frames; returns the input unchanged when the size matches."""
    if frames.shape[1:3] == (height, width):
        return frames
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.BICUBIC))
                     for f in frames])


# -- 3. fps mapping -------------------------------------------------------------------------------------
def native_to_output_index(n_out: int, native_fps: float, out_fps: float, start: int = 0) -> np.ndarray:
    """Native frame shown by output frames ``start .. start + n_out`` (nearest frame in time)."""
    j = np.arange(start, start + n_out, dtype=np.float64)
    return np.floor(j * native_fps / out_fps + 0.5).astype(np.int64)


def native_pose_index(n_native: int, native_fps: float, sample_fps: float, start: int = 0) -> np.ndarray:
    """Sample frame that native frame ``start + i`` shows (nearest frame in time)."""
    i = np.arange(start, start + n_native, dtype=np.float64)
    return np.floor(i * sample_fps / native_fps + 0.5).astype(np.int64)


def native_poses(animator: Animator, request: AnimationRequest, start: int, count: int, native_fps: float) -> np.ndarray:
    """Pose maps for native frames ``[start, start + count)``, padded past the sample end as the request says."""
    sample = request.sample
    idx = native_pose_index(count, native_fps, sample.fps, start)
    mode = "reflect" if request.pose_padding == "error" else request.pose_padding
    if idx.max() >= sample.n_frames:
        idx = pose_indices(0, int(idx.max()) + 1, sample.n_frames, mode)[idx]
        animator.record("pad", f"pose frames past the end of the sample padded ({mode}) to fill the last window",
                        mode=mode, sample_frames=sample.n_frames)
    if native_fps != sample.fps:
        animator.record("resample", f"pose sequence resampled from {sample.fps} fps to the method's native "
                        f"{native_fps:g} fps by frame-index mapping (nearest frame in time)",
                        stage="input", from_fps=sample.fps, to_fps=native_fps)
    lo, hi = int(idx.min()), int(idx.max()) + 1
    return sample.pose(lo, hi)[idx - lo]


# -- 4. running the official code --------------------------------------------------------------------------
def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


def run_official(method: str, command: Sequence[str], cwd: Path, log_path: Path, *, env: dict | None = None,
                 stdin_text: str | None = None, timeout_s: float | None = None, fix: str) -> None:
    """Run ``command``; its stdout and stderr go to ``log_path``. Raise ``MethodError`` on failure."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    (log_path.parent / "command.json").write_text(json.dumps(
        {"command": [str(c) for c in command], "cwd": str(cwd), "env": env or {}, "stdin": stdin_text}, indent=1))
    full_env = {**os.environ, **(env or {})}
    started = time.time()
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.run([str(c) for c in command], cwd=str(cwd), env=full_env, stdout=log,
                                  stderr=subprocess.STDOUT, input=(stdin_text or "").encode(), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise MethodError(f"{method}: the official code ran past the {timeout_s:g} s timeout "
                              f"(log {log_path}):\n{tail(log_path)}",
                              fix="raise timeout_s, or check that the job is not stuck waiting for input") from None
        except OSError as exc:
            raise MethodError(f"{method}: cannot start {command[0]} ({os_reason(exc)})", fix=fix) from exc
    if proc.returncode != 0:
        raise MethodError(f"{method}: the official code exited with code {proc.returncode} after "
                          f"{time.time() - started:.0f} s (log {log_path}); last lines:\n{tail(log_path)}", fix=fix)


def read_video_checked(method: str, path: Path, need: int, sizes: Sequence[tuple[int, int]] | None, fix: str,
                       crop: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, float]:
    """Read an output video; check frame count (at least ``need``) and size (one of ``sizes``, as (H, W))."""
    from bench.video import probe, read_all

    if not path.is_file():
        raise MethodError(f"{method}: the official code finished but wrote no video at {path}", fix=fix)
    info = probe(path)
    frames = read_all(path)
    if crop is not None:
        frames = crop(frames)
    return check_native_frames(method, frames, need, sizes, str(path), fix), info.fps


def check_native_frames(method: str, frames: np.ndarray, need: int, sizes: Sequence[tuple[int, int]] | None,
                        where: str, fix: str) -> np.ndarray:
    if len(frames) < need:
        raise MethodError(f"{method}: {where} has {len(frames)} frames, expected at least {need}",
                          fix=f"the official run stopped early or used other settings; see the log. {fix}")
    if sizes is not None and tuple(frames.shape[1:3]) not in {tuple(s) for s in sizes}:
        raise MethodError(f"{method}: {where} frames are {frames.shape[2]}x{frames.shape[1]} (WxH), expected "
                          + " or ".join(f"{w}x{h}" for h, w in sizes),
                          fix=f"the official code ran with another resolution than the adapter asked for. {fix}")
    return frames


# -- 5. the driver for entry scripts without a command line --------------------------------------------------
DRIVER_SOURCE = r'''"""Runs an official entry script with the settings in job.json (written by bench's adapter).

mode "script": parse the script, replace the top-level assignments named in job["settings"] with the given
values (the edits its README asks users to make by hand), then execute it as __main__ in job["cwd"].
mode "call": import job["module"] from job["module_dir"], set the module globals in job["settings"], and
call job["function"](*job["args"]).
A setting that the script does not assign is an error (exit code 3): the checkout is another version.
"""
import ast, importlib, json, os, sys

job = json.load(open(sys.argv[1]))
for p in reversed(job.get("sys_path", [])):
    sys.path.insert(0, p)
os.chdir(job["cwd"])
if job["mode"] == "script":
    source = open(job["script"]).read()
    tree = ast.parse(source, job["script"])
    missing = set(job["settings"])
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in job["settings"]:
                node.value = ast.parse(repr(job["settings"][name]), mode="eval").body
                missing.discard(name)
    if missing:
        print(f"bench driver: {job['script']} has no top-level setting(s) {sorted(missing)}", file=sys.stderr)
        sys.exit(3)
    ast.fix_missing_locations(tree)
    sys.argv = [job["script"]]
    exec(compile(tree, job["script"], "exec"), {"__name__": "__main__", "__file__": job["script"]})
else:
    sys.path.insert(0, job["module_dir"])
    module = importlib.import_module(job["module"])
    for name, value in job["settings"].items():
        if not hasattr(module, name):
            print(f"bench driver: module {job['module']} has no setting {name!r}", file=sys.stderr)
            sys.exit(3)
        setattr(module, name, value)
    getattr(module, job["function"])(*job["args"])
'''


def write_driver_job(job_dir: Path, job: dict) -> Path:
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "driver.py").write_text(DRIVER_SOURCE)
    path = job_dir / "job.json"
    path.write_text(json.dumps(job, indent=1))
    return path


# -- 6. the shared adapter base --------------------------------------------------------------------------
@dataclass
class WindowContext:
    """Everything one official run needs: the request, its job folder, and the frame carried in."""

    request: AnimationRequest
    index: int
    start: int  # first native frame of this window
    count: int  # native frames this window must produce
    job_dir: Path
    carry: np.ndarray | None  # last native frame of the previous window (None for window 0)
    extra: dict = field(default_factory=dict)


class OfficialCodeAnimator(Animator):
    """Base of the adapters that run an official checkout as a subprocess.

    Subclasses set ``env_prefix``, ``native_fps``, ``native_window`` (native frames per official run; 0:
    the whole video in one run), ``Config`` (an ``OfficialCodeConfig`` with the identity settings and their
    native values, in the adapter's torch-free module) and implement
    ``requirements()`` and ``run_window(ctx) -> native frames``. Windowed methods (``native_window > 0``)
    run window ``k`` on native frames ``[k * (W - 1), k * (W - 1) + W)`` with the previous window's last
    frame as first frame, so every window adds ``W - 1`` native frames; the harness chunk is the same
    span at the output fps and is resumable (state: next window index + carried frame).
    """

    env_prefix: ClassVar[str]
    native_fps: ClassVar[float]
    native_window: ClassVar[int] = 0
    native_settings: ClassVar[dict[str, Any]] = {}
    output_chunk_frames: ClassVar[int] = 125  # harness chunk for whole-video methods (5 s at 25 fps)

    Config: ClassVar[type] = OfficialCodeConfig

    def __init__(self, **args: Any):
        super().__init__(**args)
        cfg = self.config
        self.checkout, self.checkout_source = resolve_path(cfg.checkout, f"{self.env_prefix}_HOME")
        py, self.python_source = resolve_path(cfg.python, f"{self.env_prefix}_PYTHON")
        self.python = py or default_python(self.checkout)
        if py is None:
            self.python_source = "checkout venv" if self.python != Path(sys.executable) else "harness interpreter"
        self.weights, self.weights_source = resolve_path(cfg.weights, f"{self.env_prefix}_WEIGHTS", self.checkout)
        self.workdir = Path(cfg.workdir) if cfg.workdir else None
        self.timeout_s = cfg.timeout_s
        self.last_commands: list[list[str]] = []

    # -- readiness --------------------------------------------------------------------------------------
    def requirements(self) -> list[Requirement]:
        raise NotImplementedError

    def base_requirements(self, entry: str) -> list[Requirement]:
        env = self.env_prefix
        if self.checkout is None:
            return [Requirement("checkout", Path(f"${env}_HOME (unset)"), "dir",
                                f"clone {self.repo_url} and pass checkout=PATH or set {env}_HOME")]
        return [Requirement("checkout", self.checkout, "dir", f"clone {self.repo_url} there, or set {env}_HOME"),
                Requirement("entry script", self.checkout / entry, "file",
                            f"{self.checkout} is not a checkout of {self.repo_url} (no {entry})"),
                Requirement("python", self.python, "python",
                            f"create the method's environment (see docs/baselines.md) and pass "
                            f"python=PATH or set {env}_PYTHON")]

    repo_url: ClassVar[str] = ""

    def check_ready(self) -> None:
        missing = [r for r in self.requirements() if not r.present()]
        if missing:
            first = missing[0]
            cls = WeightsError if first.name.startswith("weights") else ConfigError
            lines = "; ".join(f"{r.name}: {r.path}" for r in missing)
            raise cls(f"{self.name}: missing {lines}", fix=first.fix)

    @classmethod
    def doctor_status(cls, **kwargs: Any) -> dict[str, Any]:
        """For ``bench doctor``: each requirement present or missing with its fix; never raises."""
        try:
            adapter = cls(**kwargs)
            reqs = adapter.requirements()
        except Exception as exc:  # a doctor reports, it does not fail
            return {"method": cls.name, "status": "error", "ready": False, "problem": str(exc), "requirements": []}
        items = [{"what": r.name, "name": r.name, "path": str(r.path), "present": r.present(), "fix": r.fix}
                 for r in reqs]
        missing = [i for i in items if not i["present"]]
        report = {"method": cls.name, "status": "missing" if missing else "ready", "ready": not missing,
                  "requirements": items, "python_source": adapter.python_source,
                  "checkout_source": adapter.checkout_source}
        if missing:
            report.update(problem="missing " + ", ".join(f"{i['name']} ({i['path']})" for i in missing),
                          fix=missing[0]["fix"])
        return report

    def weight_fingerprints(self) -> dict[str, str]:
        out = {}
        for r in self.requirements():
            if r.kind == "file" and (r.name.startswith("weights") or r.name == "entry script"):
                key = "code" if r.name == "entry script" else r.name.removeprefix("weights").strip(": ") or "weights"
                out[key] = sha256_cached(r.path) if r.path.is_file() else "missing"
        return out

    # -- capabilities and info -------------------------------------------------------------------------
    def output_window_frames(self, out_fps: float = 25) -> int:
        span = (self.native_window - 1) / self.native_fps * out_fps
        if abs(span - round(span)) > 1e-6:
            raise ConfigError(f"{self.name}: a window of {self.native_window} frames at {self.native_fps:g} fps is "
                              f"not a whole number of frames at {out_fps:g} fps")
        return int(round(span))

    def capabilities(self) -> Capabilities:
        windowed = self.native_window > 0
        return Capabilities(native_fps=self.native_fps,
                            chunk_frames=self.output_window_frames() if windowed else self.output_chunk_frames,
                            overlap_frames=0, can_resume=windowed,
                            end_to_end=not windowed)

    def model_info(self) -> dict[str, Any]:
        info = super().model_info()
        defaults = dict(config_arguments(self.Config))
        info.update({"runs": "official code as a subprocess", "repository": self.repo_url,
                     "checkout": str(self.checkout), "python": str(self.python),
                     "native_settings": dict(self.native_settings),
                     "overrides": {k: v for k, v in self.identity_args.items() if defaults.get(k) != v},
                     "adaptations": [a.to_dict() for a in self.adaptations],
                     "last_commands": self.last_commands[-2:]})
        return info

    # -- not chunk-steppable: generate() drives official runs ---------------------------------------------
    def start(self, request: AnimationRequest) -> Any:
        raise MethodError(f"{self.name} runs the official code window by window; call generate()")

    def step(self, state: Any, chunk: ChunkInput) -> tuple[np.ndarray, Any]:
        raise MethodError(f"{self.name} runs the official code window by window; call generate()")

    def job_root(self, request: AnimationRequest) -> Path:
        base = self.workdir or Path(os.environ.get("BENCH_WORK_DIR", Path(tempfile.gettempdir()) / "bench-external"))
        return base / self.name / f"{request.sample.id}-n{request.n_frames}-s{request.seed}"

    def run(self, command: Sequence[str], ctx: WindowContext, cwd: Path, *, env: dict | None = None,
            stdin_text: str | None = None) -> None:
        self.last_commands.append([str(c) for c in command])
        run_official(self.name, command, cwd, ctx.job_dir / "official.log", env=env, stdin_text=stdin_text,
                     timeout_s=self.timeout_s, fix=self.failure_fix)

    failure_fix: ClassVar[str] = "run the logged command by hand in the method's environment to see the problem"

    def run_window(self, ctx: WindowContext) -> np.ndarray:
        raise NotImplementedError

    def to_output(self, native: np.ndarray, request: AnimationRequest, out_start: int, n_out: int,
                  native_offset: int) -> np.ndarray:
        """Output frames ``[out_start, out_start + n_out)`` at the request fps and size from native frames
        that begin at native index ``native_offset``."""
        idx = native_to_output_index(n_out, self.native_fps, request.fps, out_start) - native_offset
        if idx.max() >= len(native) or idx.min() < 0:
            raise MethodError(f"{self.name}: output frames {out_start}..{out_start + n_out} need native frames "
                              f"{idx.min() + native_offset}..{idx.max() + native_offset}, have "
                              f"{native_offset}..{native_offset + len(native) - 1}",
                              fix="report this: the window plan and the fps mapping disagree")
        if self.native_fps != request.fps:
            self.record("resample", f"output resampled from the native {self.native_fps:g} fps to {request.fps} fps "
                        f"by frame-index mapping (output frame j shows native frame round(j * "
                        f"{self.native_fps:g} / {request.fps}))", stage="output", from_fps=self.native_fps,
                        to_fps=request.fps)
        frames = native[idx]
        if frames.shape[1:3] != (request.height, request.width):
            self.record("resize", f"output resized (bicubic) from {frames.shape[2]}x{frames.shape[1]} to "
                        f"{request.width}x{request.height}", from_hw=list(frames.shape[1:3]),
                        to_hw=[request.height, request.width])
        return np.ascontiguousarray(resize_frames(frames, request.height, request.width))

    def generate(self, request: AnimationRequest, sink, resume=None, progress=None) -> None:
        caps = self.capabilities()
        specs = plan_chunks(request.n_frames, caps.chunk_frames, caps.overlap_frames)
        root = self.job_root(request)
        if self.native_window <= 0:  # 1. whole video in one official run, then streamed chunk by chunk
            n_native = int(native_to_output_index(1, self.native_fps, request.fps, specs[-1].out_start
                                                  + specs[-1].n_new - 1)[0]) + 1
            ctx = WindowContext(request, 0, 0, n_native, root / "w0000", None)
            native = self.run_window(ctx)
            first = resume[0] if resume else 0
            for spec in specs[first:]:
                sink(spec, self.to_output(native, request, spec.out_start, spec.n_new, 0), None)
                if progress:
                    progress(1)
            return
        # 2. windowed: window k = harness chunk k; the last native frame is carried into window k + 1
        stride = self.native_window - 1
        first, carry = 0, None
        if resume is not None and resume[0] > 0:
            first, blob = resume
            if not blob or int(blob.get("next_window", -1)) != first:
                raise MethodError(f"{self.name}: resume state does not match chunk {first}",
                                  fix="delete the rollout folder to start it over")
            carry = np.asarray(blob["carry"], dtype=np.uint8)
        if len(specs) > 1:
            self.record("extend", f"no long-video mode in the released model: run window by window on "
                        f"{self.native_window}-frame windows at {self.native_fps:g} fps, the last decoded frame of "
                        f"each window is the first frame (reference) of the next", window=self.native_window,
                        stride=stride, windows=len(specs))
        for spec in specs[first:]:
            ctx = WindowContext(request, spec.index, spec.index * stride, self.native_window,
                                root / f"w{spec.index:04d}", carry)
            native = self.run_window(ctx)
            frames = self.to_output(native, request, spec.out_start, spec.n_new, ctx.start)
            carry = native[-1]
            sink(spec, frames, {"next_window": spec.index + 1, "carry": carry})
            if progress:
                progress(1)

    def load_state_dict(self, request: AnimationRequest, blob: dict) -> Any:
        return blob
