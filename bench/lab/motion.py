"""Procedural dance: a deterministic schedule of moves (dance in place, walk, turn) -> per-frame joint angles.

Everything is a closed-form function of time plus a move schedule drawn move by move from its own random
stream, so a clip of N frames is exactly the first N frames of any longer clip with the same seed.
Angles are radians; lengths are in frame heights; ``root_x`` is the horizontal position with 0.5 = the frame
centre, in frame heights, so every size (square or portrait) shows the same continuous pose.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Columns of the joint-angle table. Arms: abduction (0 = hanging, pi/2 = sideways, pi = up; negative crosses
# the body) and forward flexion, for the upper arm and (absolute) for the forearm. Legs: abduction, flexion,
# knee bend.
ANGLE_NAMES = (
    "lean", "head_roll", "head_yaw",
    "r_sho_abd", "r_sho_flex", "r_elb_abd", "r_elb_flex",
    "l_sho_abd", "l_sho_flex", "l_elb_abd", "l_elb_flex",
    "r_hip_abd", "r_hip_flex", "r_knee",
    "l_hip_abd", "l_hip_flex", "l_knee",
)
A = {name: i for i, name in enumerate(ANGLE_NAMES)}
N_ANGLES = len(ANGLE_NAMES)

FRONT, BACK, SIDE_R, SIDE_L = 0.0, np.pi, np.pi / 2, -np.pi / 2
VIEWS = np.array([0.0, 0.0, np.pi, np.pi / 2, -np.pi / 2, np.pi / 4, -np.pi / 4, 3 * np.pi / 4, -3 * np.pi / 4])

# Dance moves: (base, amplitude) per angle; every angle oscillates at a multiple of the clip's beat.
_REST = np.array([0, 0, 0, 0.15, 0, 0.15, 0.1, 0.15, 0, 0.15, 0.1, 0.05, 0, 0, 0.05, 0, 0], float)
_MOVES: dict[str, tuple[dict[str, float], dict[str, float]]] = {
    "sway": ({"r_sho_abd": 0.3, "l_sho_abd": 0.3, "r_elb_flex": 0.4, "l_elb_flex": 0.4},
             {"lean": 0.12, "r_sho_flex": 0.6, "l_sho_flex": 0.6, "r_elb_flex": 0.3, "l_elb_flex": 0.3,
              "r_knee": 0.25, "l_knee": 0.25, "head_roll": 0.12}),
    "wave": ({"r_sho_abd": 2.3, "r_elb_abd": 2.6, "l_sho_abd": 0.4, "l_elb_abd": 0.3},
             {"r_elb_abd": 0.6, "r_sho_abd": 0.25, "l_sho_flex": 0.4, "lean": 0.08, "r_knee": 0.15, "l_knee": 0.15}),
    "pump": ({"r_sho_abd": 1.4, "l_sho_abd": 1.4, "r_elb_abd": 2.4, "l_elb_abd": 2.4},
             {"r_sho_abd": 0.35, "l_sho_abd": 0.35, "r_elb_abd": 0.5, "l_elb_abd": 0.5, "r_knee": 0.35,
              "l_knee": 0.35}),
    "cross": ({"r_sho_abd": -0.35, "l_sho_abd": -0.35, "r_sho_flex": 0.9, "l_sho_flex": 0.9,
               "r_elb_abd": -1.3, "l_elb_abd": -1.3, "r_elb_flex": 1.2, "l_elb_flex": 1.2},
              {"r_elb_abd": 0.5, "l_elb_abd": 0.5, "r_sho_flex": 0.3, "l_sho_flex": 0.3, "head_yaw": 0.3}),
    "step": ({"r_sho_abd": 0.6, "l_sho_abd": 0.6, "r_elb_abd": 1.0, "l_elb_abd": 1.0},
             {"r_hip_abd": 0.25, "l_hip_abd": 0.25, "r_knee": 0.5, "l_knee": 0.5, "r_sho_abd": 0.4,
              "l_sho_abd": 0.4, "lean": 0.15}),
    "squat": ({"r_knee": 0.7, "l_knee": 0.7, "r_hip_flex": 0.5, "l_hip_flex": 0.5, "r_sho_flex": 1.3,
               "l_sho_flex": 1.3},
              {"r_knee": 0.5, "l_knee": 0.5, "r_hip_flex": 0.35, "l_hip_flex": 0.35, "r_sho_flex": 0.3,
               "l_sho_flex": 0.3}),
    "reach": ({"l_sho_abd": 2.6, "l_elb_abd": 2.8, "r_sho_abd": 2.6, "r_elb_abd": 2.8},
              {"lean": 0.3, "l_sho_abd": 0.3, "r_sho_abd": 0.3, "r_knee": 0.2, "l_knee": 0.2}),
}
MOVE_NAMES = tuple(_MOVES)
_MOVE_TABLE = {
    name: (_REST + np.array([base.get(n, 0.0) for n in ANGLE_NAMES]), np.array([amp.get(n, 0.0) for n in ANGLE_NAMES]))
    for name, (base, amp) in _MOVES.items()
}
_BASE_REPLACES = {"r_sho_abd", "l_sho_abd", "r_elb_abd", "l_elb_abd"}  # these bases are absolute, not offsets
for _name, (_base, _amp) in _MOVE_TABLE.items():
    for _n in _BASE_REPLACES:
        if _n in _MOVES[_name][0]:
            _base[A[_n]] = _MOVES[_name][0][_n]


@dataclass(frozen=True)
class Move:
    kind: str  # "dance" or "walk"
    start: float  # seconds
    duration: float
    yaw: float  # target body yaw (unwrapped radians)
    x_to: float  # root x at the end of the move (fraction of width)
    dance: str  # dance move name (arms while walking come from the gait)


@dataclass(frozen=True)
class Motion:
    """Per-frame motion of one clip: ``angles (T, N_ANGLES)``, ``yaw (T,)``, ``root_x (T,)``, ``gait (T,)``."""

    angles: np.ndarray
    yaw: np.ndarray
    root_x: np.ndarray
    walk_weight: np.ndarray
    moves: tuple[Move, ...]

    @property
    def n_frames(self) -> int:
        return len(self.yaw)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def plan_moves(rng: np.random.Generator, duration_s: float, x_range: float) -> list[Move]:
    """Moves drawn one at a time until ``duration_s`` is covered (so the plan of a shorter clip is a prefix)."""
    moves: list[Move] = []
    t, x, yaw = 0.0, 0.5, 0.0
    while t < duration_s:
        first = not moves
        if not first and rng.random() < 0.3:
            target = float(np.clip(x + rng.choice([-1, 1]) * rng.uniform(0.5, 1.0) * x_range, 0.5 - x_range,
                                   0.5 + x_range))
            if abs(target - x) < 0.3 * x_range:
                target = 0.5 - x_range if x > 0.5 else 0.5 + x_range
            walk_yaw = SIDE_R if target > x else SIDE_L
            walk_yaw = yaw + (walk_yaw - yaw + np.pi) % (2 * np.pi) - np.pi
            dur = 1.0 + abs(target - x) * 6.0
            moves.append(Move("walk", t, dur, float(walk_yaw), target, "sway"))
            x, yaw = target, walk_yaw
        else:
            view = 0.0 if first else float(rng.choice(VIEWS))
            delta = (view - yaw + np.pi) % (2 * np.pi) - np.pi
            if not first and rng.random() < 0.15:  # a full spin now and then
                delta += rng.choice([-2, 2]) * np.pi
            dur = float(rng.uniform(2.5, 6.0))
            moves.append(Move("dance", t, dur, float(yaw + delta), x, str(rng.choice(MOVE_NAMES))))
            yaw = yaw + delta
        t += moves[-1].duration
    return moves


def generate_motion(seed_sequence: np.random.SeedSequence, n_frames: int, fps: int, x_range: float) -> Motion:
    """Joint angles, yaw and root position for ``n_frames`` frames; prefix-stable in ``n_frames``."""
    plan_seq, style_seq = seed_sequence.spawn(2)
    style = np.random.default_rng(style_seq)
    beat = style.uniform(0.8, 1.3)  # Hz
    multiples = style.choice([0.5, 1.0, 1.0, 2.0], size=N_ANGLES)
    phases = style.uniform(0, 2 * np.pi, size=N_ANGLES)
    for left, right in ((3, 7), (4, 8), (5, 9), (6, 10), (11, 14), (12, 15), (13, 16)):
        multiples[right] = multiples[left]
        phases[right] = phases[left] + (np.pi if style.random() < 0.6 else 0.0)
    amp_scale = style.uniform(0.7, 1.2, size=N_ANGLES)
    stride = style.uniform(0.22, 0.3)  # frame heights per gait cycle

    duration = (n_frames + 1) / fps
    moves = plan_moves(np.random.default_rng(plan_seq), duration, x_range)
    t = np.arange(n_frames) / fps

    base = np.zeros((n_frames, N_ANGLES))
    amp = np.zeros((n_frames, N_ANGLES))
    yaw = np.zeros(n_frames)
    root_x = np.zeros(n_frames)
    walk = np.zeros(n_frames)
    prev_base, prev_amp = _REST.copy(), np.zeros(N_ANGLES)
    prev_yaw, prev_x, prev_walk = 0.0, 0.5, 0.0
    for move in moves:
        sel = (t >= move.start) & (t < move.start + move.duration)
        ts = t[sel] - move.start
        ramp = _smoothstep(ts / min(0.8, move.duration))[:, None]
        mb, ma = _MOVE_TABLE[move.dance]
        base[sel] = prev_base + (mb - prev_base) * ramp
        amp[sel] = prev_amp + (ma - prev_amp) * ramp
        turn = _smoothstep(ts / min(1.2, move.duration))
        yaw[sel] = prev_yaw + (move.yaw - prev_yaw) * turn
        w_target = 1.0 if move.kind == "walk" else 0.0
        walk[sel] = prev_walk + (w_target - prev_walk) * _smoothstep(ts / 0.4)
        if move.kind == "walk":
            root_x[sel] = prev_x + (move.x_to - prev_x) * _smoothstep(ts / move.duration)
        else:
            root_x[sel] = prev_x
        prev_base, prev_amp, prev_yaw, prev_x, prev_walk = mb, ma, move.yaw, move.x_to, w_target

    osc = np.sin(2 * np.pi * beat * multiples[None] * t[:, None] + phases[None])
    dance = base + amp * amp_scale[None] * osc

    # Gait from distance travelled: legs and arms swing in opposition, knees bend in the swing phase.
    dist = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(root_x)))])
    phi = 2 * np.pi * dist / stride
    gait = np.zeros_like(dance)
    gait[:, A["r_hip_flex"]], gait[:, A["l_hip_flex"]] = 0.45 * np.sin(phi), -0.45 * np.sin(phi)
    gait[:, A["r_knee"]] = 0.7 * np.clip(np.sin(phi - 1.3), 0, None)
    gait[:, A["l_knee"]] = 0.7 * np.clip(-np.sin(phi - 1.3), 0, None)
    gait[:, A["r_sho_flex"]], gait[:, A["l_sho_flex"]] = -0.4 * np.sin(phi), 0.4 * np.sin(phi)
    gait[:, A["r_elb_flex"]], gait[:, A["l_elb_flex"]] = -0.2 * np.sin(phi) + 0.3, 0.2 * np.sin(phi) + 0.3
    for name in ("r_sho_abd", "l_sho_abd", "r_elb_abd", "l_elb_abd"):
        gait[:, A[name]] = 0.12
    gait[:, A["r_hip_abd"]] = gait[:, A["l_hip_abd"]] = 0.04
    w = walk[:, None]
    angles = dance * (1 - w) + gait * w
    return Motion(angles, yaw, root_x, walk, tuple(moves))
