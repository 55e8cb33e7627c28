"""The Animator contract: what every method (EverAnimate, baselines, adapters) implements.

Lifecycle::

    animator = Method(**identity_args)        # cheap: records configuration only
    animator.load("cpu")                      # loads / verifies weights
    state = animator.start(request)           # per rollout
    for chunk in plan_chunks(...):            # the default generate() does this loop
        frames, state = animator.step(state, chunk_input)

``step`` returns exactly ``chunk.n_new`` frames (``uint8 (T, H, W, 3)``): the frames this chunk adds to
the video, overlap already dropped. Methods that can resume mid-rollout serialise their state with
``state_dict`` / ``load_state_dict``; the harness stores it next to each chunk. Methods that can only run
end to end override ``generate``.

Every rounding, padding, resampling or truncation is returned as an ``Adaptation`` and recorded in the
result: nothing is adapted silently.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from bench.errors import ConfigError, MethodError
from bench.sample import Sample


@dataclass(frozen=True)
class Capabilities:
    """What a method natively does; the harness plans chunks and records adaptations from this."""

    native_fps: float  # recorded in model_info (the harness runs at the protocol fps; methods adapt and record)
    chunk_frames: int  # frames each chunk reads (the harness plans chunks with these two)
    overlap_frames: int = 0  # frames each chunk after the first shares with the previous one
    can_resume: bool = False  # state_dict / load_state_dict work: an interrupted rollout continues mid-way
    end_to_end: bool = False  # overrides generate(); never resumed mid-rollout (restarts from chunk 0)
    max_references: int = 1  # reference views it can use (0: it reads no reference, e.g. the ground truth)


@dataclass(frozen=True)
class Adaptation:
    """One recorded change to inputs or outputs (resize, pad, resample, truncate, extend, ...)."""

    kind: str
    detail: str
    data: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict:
        return {"kind": self.kind, "detail": self.detail, **dict(self.data)}


@dataclass(frozen=True)
class AnimationRequest:
    """One rollout: animate ``sample``'s reference along its first ``n_frames`` poses.

    ``n_references``: how many of the sample's reference views the method is given (``references()``).
    The protocol default is 1, the user's reference only (single-reference protocol, as the paper); a run
    with ``--references multi`` gives every view the sample ships, up to the method's ``max_references``.
    """

    sample: Sample
    n_frames: int
    fps: int
    height: int
    width: int
    seed: int
    pose_padding: str = "error"  # "error" | "reflect" | "hold": what to do past the end of the pose sequence
    n_references: int = 1  # reference views the method is given: references()[0] is the canonical one
    rollout_key: str = ""  # the harness's content address of this rollout ("" outside the harness)

    def references(self) -> list[np.ndarray]:
        """The reference views this request gives the method: the sample's first ``n_references``."""
        return list(self.sample.references()[: max(self.n_references, 0)])


@dataclass(frozen=True)
class ChunkSpec:
    """Chunk ``index`` reads pose frames ``[src_start, src_start + chunk_frames)`` (indices past the end
    of the request are padded, see ``ChunkInput.pose_index``) and adds ``n_new`` frames to the video at
    ``out_start``; the first ``drop`` generated frames overlap the previous chunk and are not output."""

    index: int
    src_start: int
    chunk_frames: int
    drop: int
    out_start: int

    @property
    def n_new(self) -> int:
        return self.chunk_frames - self.drop


@dataclass(frozen=True)
class ChunkInput:
    spec: ChunkSpec
    pose_index: np.ndarray  # int (chunk_frames,): which sample frame each pose frame is
    pose: np.ndarray  # uint8 (chunk_frames, H, W, 3)
    face: np.ndarray  # uint8 (chunk_frames, S, S, 3)


def plan_chunks(n_frames: int, chunk_frames: int, overlap_frames: int) -> list[ChunkSpec]:
    """Chunk ``c`` reads ``[c * (chunk - overlap), + chunk)``; after ``N`` chunks the video has
    ``chunk + (chunk - overlap) * (N - 1)`` frames, the first ``N`` with at least ``n_frames``."""
    if chunk_frames <= overlap_frames or overlap_frames < 0:
        raise ConfigError(f"chunk of {chunk_frames} frames with overlap {overlap_frames} is impossible")
    stride = chunk_frames - overlap_frames
    specs, produced, c = [], 0, 0
    while produced < n_frames:
        drop = 0 if c == 0 else overlap_frames
        specs.append(ChunkSpec(index=c, src_start=c * stride, chunk_frames=chunk_frames, drop=drop, out_start=produced))
        produced += chunk_frames - drop
        c += 1
    return specs


def pose_indices(start: int, count: int, available: int, padding: str) -> np.ndarray:
    """Sample frame index for each of ``count`` pose frames from ``start``; past ``available`` frames the
    sequence is reflected ("ping-pong", as Wan-Animate pads) or the last pose held."""
    idx = np.arange(start, start + count)
    if available <= 0:
        raise ConfigError("empty pose sequence")
    over = idx >= available
    if over.any():
        if padding == "reflect" and available > 1:
            period = 2 * (available - 1)
            m = idx % period
            idx = np.where(m < available, m, period - m)
        elif padding in ("reflect", "hold"):
            idx = np.minimum(idx, available - 1)
        else:
            raise ConfigError(f"pose frames up to {start + count} needed but only {available} exist",
                              fix="ask for a shorter duration or pass --pose-padding reflect|hold (recorded)")
    return idx


ChunkSink = Callable[[ChunkSpec, np.ndarray, "dict | None"], None]


@dataclass(frozen=True)
class NoArguments:
    """The arguments of a method that takes none."""


def runtime(default: Any = None) -> Any:
    """A ``Config`` field that does not change pixels (a path to a checkout, a timeout): an argument like
    any other, but left out of the identity and so of the rollout key."""
    return field(default=default, metadata={"runtime": True})


def is_runtime(f) -> bool:
    return bool(f.metadata.get("runtime"))


def config_arguments(config_cls: type) -> list[tuple[str, Any]]:
    """``(name, default)`` of every field of a method's config dataclass (``MISSING``: required)."""
    out = []
    for f in fields(config_cls):
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else MISSING)
        out.append((f.name, default))
    return out


def make_config(method: str, config_cls: type, args: dict[str, Any]) -> Any:
    """``config_cls(**args)``: every check of a method's arguments, with no model code imported. An unknown
    or missing argument, or a value the config's ``__post_init__`` refuses, is a ``ConfigError`` that names
    ``method`` (and, for unknown or missing ones, every argument the method takes)."""
    known = config_arguments(config_cls)
    listing = ", ".join(n if d is MISSING else f"{n}={d!r}" for n, d in known) or "none"
    unknown = sorted(set(args) - {n for n, _ in known})
    if unknown:
        raise ConfigError(f"{method}: unknown arguments {unknown}", fix=f"{method} takes: {listing}")
    try:
        return config_cls(**args)
    except TypeError as exc:
        raise ConfigError(f"{method}: bad arguments {args}: {exc}", fix=f"{method} takes: {listing}") from None
    except ConfigError as exc:
        if exc.message.startswith(f"{method}:"):
            raise
        raise ConfigError(f"{method}: {exc.message}", fix=exc.fix) from None


class Animator(ABC):
    """Base class of every method. Subclasses set ``name`` and ``version`` (bump it whenever outputs
    change for the same inputs) and implement ``capabilities``, ``start``, ``step``.

    Arguments are declared once, as the frozen dataclass ``Config`` (field = argument, default = its
    default; ``runtime()`` fields stay out of the identity): the base ``__init__`` rejects unknown arguments
    with the list of known ones, builds ``self.config`` and the identity (every other field, defaults
    included, so changing a default changes the rollout key). Every check of an argument's value belongs in
    the config's ``__post_init__``, and the config in a module that imports no torch: ``bench run`` checks
    the arguments of every registered method through it (``registry.Entry.config``) before anything loads.
    A method with no arguments keeps ``NoArguments``. ``Config = None`` is for classes (plugins) that
    validate their own keyword arguments in their ``__init__`` signature."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    Config: ClassVar[type | None] = NoArguments

    def __init__(self, **identity_args: Any):
        if self.Config is not None:
            self.config = self.make_config(identity_args)
            runtime_names = {f.name for f in fields(self.Config) if is_runtime(f)}
            identity_args = {k: v for k, v in asdict(self.config).items() if k not in runtime_names}
        self.identity_args = dict(sorted(identity_args.items()))
        self.device = "cpu"
        self.adaptations: list[Adaptation] = []

    @classmethod
    def arguments(cls) -> list[tuple[str, Any]]:
        """``(name, default)`` of every argument the method takes (``MISSING``: required), for
        ``bench ls --methods``: the ``Config`` fields, or the ``__init__`` keywords of a ``Config = None`` class."""
        if cls.Config is not None:
            return config_arguments(cls.Config)
        import inspect

        out = []
        for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                out.append((p.name, MISSING if p.default is p.empty else p.default))
        return out

    @classmethod
    def make_config(cls, args: dict[str, Any]) -> Any:
        """``cls.Config(**args)``, checked by ``make_config``."""
        return make_config(cls.name, cls.Config, args)

    # -- identity -----------------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """Gets nothing; returns the arguments that change pixels (JSON-serialisable), which enter the
        rollout key. Default: every ``Config`` field, defaults included. Runtime options stay out."""
        return dict(self.identity_args)

    def weight_fingerprints(self) -> dict[str, str]:
        """Gets nothing; returns the sha256 of every weight file that shapes the output, by role
        (``{"checkpoint": ..., "lora": ...}``); they enter the rollout key. Default: none."""
        return {}

    def check_ready(self) -> None:
        """Gets nothing, returns nothing; raises a ``BenchError`` (``WeightsError`` ...) with a ``fix=``
        naming what is missing (weights, checkout) before anything is generated. Cheap: no loading."""

    @abstractmethod
    def capabilities(self) -> Capabilities:
        """Gets nothing; returns the ``Capabilities`` the harness plans chunks and resumes with. Required."""

    def load(self, device: str = "cpu") -> None:
        """Gets the device (``cpu``, ``cuda:0`` ...); loads and verifies weights there. Called once per run,
        after ``check_ready`` and before the first ``start``/``generate``; ``__init__`` stays cheap."""
        self.device = device

    def model_info(self) -> dict[str, Any]:
        """Gets nothing; returns what the rollout's ``status.json`` and score lines record about the model:
        name, version, identity, weight hashes, capabilities and ``trained`` (False: random-weight
        components, flagged "(untrained)" in every table; None: no learned model, e.g. the ground truth).
        Extend it with ``{**super().model_info(), ...}``."""
        caps = self.capabilities()
        return {"name": self.name, "version": self.version, "identity": self.identity(),
                "weights": self.weight_fingerprints(), "capabilities": caps.__dict__,
                "description": self.description, "trained": self.is_trained()}

    def is_trained(self) -> bool | None:
        """Are the generator's weights trained? None (the default) for methods without a learned model."""
        return None

    # -- chunk primitives ----------------------------------------------------------------------------
    def start(self, request: AnimationRequest) -> Any:
        """Gets one ``AnimationRequest``; returns the rollout's initial state (anything ``step`` accepts).
        Chunk-wise methods implement ``start`` and ``step``; end-to-end methods override ``generate``."""
        raise MethodError(f"{self.name} implements neither start/step nor generate",
                          fix="implement start() and step(), or override generate() (end-to-end methods)")

    def step(self, state: Any, chunk: ChunkInput) -> tuple[np.ndarray, Any]:
        """Gets the state and one ``ChunkInput`` (its poses, face crops and ``ChunkSpec``); returns exactly
        ``chunk.spec.n_new`` new frames ``uint8 (T, H, W, 3)`` at the request's size, overlap already
        dropped, and the next state."""
        raise MethodError(f"{self.name} implements neither start/step nor generate",
                          fix="implement start() and step(), or override generate() (end-to-end methods)")

    def state_dict(self, state: Any) -> dict | None:
        """Gets a state; returns it serialisable (tensors, arrays, numbers, strings) with
        ``"rollout_key": self.resume_key(request)`` in it, or None if not resumable. Stored after each chunk."""
        return None

    def load_state_dict(self, request: AnimationRequest, blob: dict) -> Any:
        """Gets the request and a stored ``state_dict``; returns the state to continue from. Call
        ``self.check_resume(request, blob)`` first: a state of another rollout is refused."""
        raise MethodError(f"{self.name} cannot resume mid-rollout")

    def rollout_key(self, request: AnimationRequest) -> tuple[str, dict]:
        """The rollout key of ``request`` for this method and its payload (``bench.store.rollout_key``):
        the one hash of everything that changes a rollout's pixels."""
        from bench.store import rollout_key

        return rollout_key(self.name, self.version, self.identity(), self.weight_fingerprints(),
                           request.sample.content_hash, request.n_frames, request.fps, request.height, request.width,
                           request.seed, n_references=request.n_references, pose_padding=request.pose_padding)

    def resume_key(self, request: AnimationRequest) -> str:
        """What a resume state is checked against: the harness's key, or (outside the harness) the key
        computed the same way. Store it in ``state_dict`` and check it with ``check_resume``."""
        return request.rollout_key or self.rollout_key(request)[0]

    def check_resume(self, request: AnimationRequest, blob: Any) -> None:
        """Refuse a resume state written for another rollout (other arguments, weights, sample, seed,
        size, frames, padding ...): one check, against the rollout key."""
        stored = blob.get("rollout_key") if isinstance(blob, dict) else None
        expected = self.resume_key(request)
        if stored != expected:
            raise MethodError(f"{self.name}: the stored resume state belongs to another rollout "
                              f"(key {str(stored)[:16]}, this rollout is {expected[:16]})",
                              fix="resume with the same arguments, weights, sample and request, or delete the "
                                  "stored rollout to start over")

    def record(self, kind: str, detail: str, **data: Any) -> None:
        adaptation = Adaptation(kind, detail, tuple(sorted(data.items())))
        if adaptation not in self.adaptations:
            self.adaptations.append(adaptation)

    # -- the default loop ---------------------------------------------------------------------------
    def chunk_input(self, request: AnimationRequest, spec: ChunkSpec) -> ChunkInput:
        # like WanAnimatePipeline: the pose sequence is the request's n_frames poses, reflected past its end
        mode = "reflect" if request.pose_padding == "error" else request.pose_padding
        available = min(request.sample.n_frames, request.n_frames)
        idx = pose_indices(spec.src_start, spec.chunk_frames, available, mode)
        if idx[-1] != spec.src_start + spec.chunk_frames - 1:
            self.record("pad", f"pose frames past frame {available} padded ({mode}) to fill the last chunk",
                        mode=mode, pose_frames=available)
        lo, hi = int(idx.min()), int(idx.max()) + 1
        pose = request.sample.pose(lo, hi)[idx - lo]
        face = request.sample.face(lo, hi)[idx - lo]
        return ChunkInput(spec=spec, pose_index=idx, pose=pose, face=face)

    def generate(self, request: AnimationRequest, sink: ChunkSink, resume: tuple[int, dict | None] | None = None,
                 progress: Callable[[int], None] | None = None) -> None:
        """Gets a request and a ``sink(spec, frames, state_blob)``; returns nothing. Produces the whole
        rollout, handing each chunk of ``plan_chunks(request.n_frames, chunk_frames, overlap_frames)`` to
        ``sink`` in order (frames as ``step`` returns them; ``state_blob`` None unless resumable).
        ``resume=(next_chunk, state_blob)`` continues after the last stored chunk. The default loops
        ``start`` / ``step``; end-to-end methods override this alone (``Capabilities(end_to_end=True)``)."""
        caps = self.capabilities()
        specs = plan_chunks(request.n_frames, caps.chunk_frames, caps.overlap_frames)
        first = 0
        if resume is not None and resume[0] > 0:
            first, blob = resume
            state = self.load_state_dict(request, blob)
        else:
            state = self.start(request)
        for spec in specs[first:]:
            frames, state = self.step(state, self.chunk_input(request, spec))
            sink(spec, frames, self.state_dict(state) if caps.can_resume else None)
            if progress:
                progress(1)


def check_frames(name: str, spec: ChunkSpec, frames: Any, height: int, width: int) -> np.ndarray:
    """Validate a chunk's output: exact count, size, dtype uint8, finite. Raise ``MethodError`` otherwise."""
    if hasattr(frames, "detach"):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        if np.issubdtype(frames.dtype, np.floating) and not np.isfinite(frames).all():
            raise MethodError(f"{name}: chunk {spec.index} contains NaN/inf values",
                              fix="the model diverged; check weights, dtype (bf16 overflow?) and inputs")
        raise MethodError(f"{name}: chunk {spec.index} has dtype {frames.dtype}, expected uint8",
                          fix="convert frames to uint8 RGB in [0, 255] inside the method")
    expected = (spec.n_new, height, width, 3)
    if frames.shape != expected:
        raise MethodError(f"{name}: chunk {spec.index} has shape {frames.shape}, expected {expected}",
                          fix="the method must return exactly chunk.n_new frames at the requested size")
    return frames


def adaptations_to_list(items: Sequence[Adaptation]) -> list[dict]:
    return [a.to_dict() for a in items]
