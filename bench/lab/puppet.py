"""The lab character: appearance (identity), 3D-ish forward kinematics on the real keypoint layout, and drawing.

Keypoints: 18 body points in OpenPose COCO-18 order plus 68 face points in iBUG order, in pixels of the
rendered size. The skeleton is posed in a body frame (x to the character's left, y down, z forward, in
frame heights), turned by the body yaw and projected orthographically, so front / side / back views and
self-occlusion follow from depth order. Parts are rasterised into a label map (no anti-aliasing, integer
fixed-point coordinates: identical pixels on every OpenCV build) and coloured from per-identity textures
that move with the body. The whole frame is then imaged through a lens: a Gaussian point-spread function of
``LENS_SIGMA`` pixels per 64 px of frame height (deterministic OpenCV filtering), so person and room have the
soft edges of a camera image rather than edges at the pixel grid.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from bench.lab.background import FLOOR_Y
from bench.lab.motion import A

BODY_NAMES = ("nose", "neck", "r_sho", "r_elb", "r_wri", "l_sho", "l_elb", "l_wri", "r_hip", "r_knee", "r_ank",
              "l_hip", "l_knee", "l_ank", "r_eye", "l_eye", "r_ear", "l_ear")
N_BODY, N_FACE = 18, 68
SHIFT = 4  # cv2 fixed-point bits
ONE = 1 << SHIFT
LENS_SIGMA = 0.8
"""The lens blur (Gaussian sigma, pixels at lab-64; scaled with the frame height). Chosen by measurement: it
raises a 4x bicubic down / up round trip of lab/2 frames from about 20.5 to 25 dB (2x: 24.7 to 34.6 dB), i.e.
detail a 4x VAE can represent, while a 64-px person keeps face, hands and clothing patterns."""

# Part groups: the depth-sorted drawing units.
(G_TORSO, G_NECK, G_HEAD, G_RUA, G_LUA, G_RFA, G_LFA, G_RHAND, G_LHAND, G_RTH, G_LTH, G_RSH, G_LSH, G_RFOOT,
 G_LFOOT, G_HAIR) = range(16)
N_GROUPS = 16
# Labels in the label map (0 = background); each belongs to a group, or to none (-1: never hides a keypoint).
LABELS = ("bg", "torso", "neck", "r_uarm", "l_uarm", "r_farm", "l_farm", "r_hand", "l_hand", "r_thigh", "l_thigh",
          "r_shin", "l_shin", "r_foot", "l_foot", "hair_back", "head_skin", "hair_cap", "eye", "brow", "mouth",
          "glasses", "hair_long")
L = {name: i for i, name in enumerate(LABELS)}
LABEL_GROUP = np.array([-1, G_TORSO, G_NECK, G_RUA, G_LUA, G_RFA, G_LFA, G_RHAND, G_LHAND, G_RTH, G_LTH, G_RSH,
                        G_LSH, G_RFOOT, G_LFOOT, G_HEAD, G_HEAD, G_HEAD, G_HEAD, G_HEAD, G_HEAD, G_HEAD, -1])
_OWN = [[G_HEAD], [G_TORSO, G_NECK, G_HEAD], [G_TORSO, G_RUA], [G_RUA, G_RFA], [G_RFA, G_RHAND], [G_TORSO, G_LUA],
        [G_LUA, G_LFA], [G_LFA, G_LHAND], [G_TORSO, G_RTH], [G_RTH, G_RSH], [G_RSH, G_RFOOT], [G_TORSO, G_LTH],
        [G_LTH, G_LSH], [G_LSH, G_LFOOT], [G_HEAD], [G_HEAD], [G_HEAD], [G_HEAD]] + [[G_HEAD]] * N_FACE
OWN_GROUPS = np.full((N_BODY + N_FACE, 3), N_GROUPS, np.int64)  # index N_GROUPS = padding (rank -1)
for _k, _groups in enumerate(_OWN):
    OWN_GROUPS[_k, :len(_groups)] = _groups

# Textures
TEXTURES = ("bg", "shirt_front", "shirt_back", "sleeve", "sleeve_far", "pants", "pants_far", "skin", "skin_far",
            "hair", "shoe", "eye", "brow", "lip", "glasses")
TX = {name: i for i, name in enumerate(TEXTURES)}
ANCHOR_NONE, ANCHOR_TORSO, ANCHOR_PELVIS, ANCHOR_HEAD = 0, 1, 2, 3
TEXTURE_ANCHOR = np.array([ANCHOR_NONE, ANCHOR_TORSO, ANCHOR_TORSO, ANCHOR_TORSO, ANCHOR_TORSO, ANCHOR_PELVIS,
                           ANCHOR_PELVIS, ANCHOR_NONE, ANCHOR_NONE, ANCHOR_HEAD, ANCHOR_NONE, ANCHOR_NONE, ANCHOR_NONE,
                           ANCHOR_NONE, ANCHOR_NONE])

# Body proportions in frame heights (scaled per identity).
SHOULDER_HALF, HIP_HALF, CHEST_HALF_DEPTH, HIP_HALF_DEPTH = 0.085, 0.055, 0.05, 0.045
TORSO, NECK_TO_HEAD, HEAD_R = 0.25, 0.085, 0.055
UPPER_ARM, FOREARM, THIGH, SHIN, FOOT_DROP = 0.14, 0.13, 0.19, 0.18, 0.015
WIDTH = {"uarm": 0.05, "farm": 0.042, "thigh": 0.07, "shin": 0.058, "neck": 0.04, "hand": 0.024, "foot": 0.032}


def _face_template() -> np.ndarray:
    """68 iBUG points on the front of a unit head sphere: (u right-of-image, v down, z toward the viewer)."""
    pts = []
    for i in range(17):  # jaw, subject's right (image left) to left
        a = np.pi * i / 16
        pts.append((-0.86 * np.cos(a), -0.1 + 0.98 * np.sin(a)))
    for side in (-1, 1):  # brows: right then left, outer to inner for the right brow
        xs = np.linspace(-0.62, -0.14, 5) if side < 0 else np.linspace(0.14, 0.62, 5)
        for x in xs:
            pts.append((x, -0.4 - 0.06 * np.cos((abs(x) - 0.38) * 4)))
    for v in np.linspace(-0.24, 0.2, 4):  # nose bridge
        pts.append((0.0, v))
    for u in np.linspace(-0.18, 0.18, 5):  # nostrils
        pts.append((u, 0.3 - 0.04 * np.cos(u * 8)))
    for cx in (-0.34, 0.34):  # eyes: outer/inner corner convention of iBUG (clockwise from the left corner)
        for a in (np.pi, 2 * np.pi / 3 + np.pi, 4 * np.pi / 3 + np.pi, 0.0, np.pi / 3, 2 * np.pi / 3):
            pts.append((cx + 0.15 * np.cos(a), -0.18 + 0.07 * np.sin(a)))
    for i in range(12):  # outer lip from the right corner, over the top
        a = np.pi + 2 * np.pi * i / 12
        pts.append((0.3 * np.cos(a), 0.55 + 0.13 * np.sin(a)))
    for i in range(8):  # inner lip
        a = np.pi + 2 * np.pi * i / 8
        pts.append((0.2 * np.cos(a), 0.55 + 0.05 * np.sin(a)))
    uv = np.array(pts)
    z = np.sqrt(np.clip(1.0 - 0.75 * uv[:, 0] ** 2 - 0.55 * uv[:, 1] ** 2, 0.05, None))
    return np.concatenate([uv, z[:, None]], 1)


FACE_TEMPLATE = _face_template()
FACE_NORMALS = FACE_TEMPLATE / np.linalg.norm(FACE_TEMPLATE, axis=1, keepdims=True)
EYES = (slice(36, 42), slice(42, 48))
BROWS = (slice(17, 22), slice(22, 27))
OUTER_LIP = slice(48, 60)


@dataclass(frozen=True)
class Appearance:
    """Identity: everything about how one subject looks, drawn from the subject's seed."""

    scale: float
    shoulders: float
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    long_hair: bool
    shirt: tuple[int, int, int]
    accent: tuple[int, int, int]
    shirt_pattern: str
    back_pattern: str
    logo: str
    pattern_period: float
    short_sleeves: bool
    pants: tuple[int, int, int]
    pants_pattern: str
    shorts: bool
    shoes: tuple[int, int, int]
    eyes: tuple[int, int, int]
    lips: tuple[int, int, int]
    glasses: bool


def _rgb(rng, lo=30, hi=235):
    return tuple(int(c) for c in rng.integers(lo, hi, 3))


def draw_appearance(rng: np.random.Generator) -> Appearance:
    skin_tones = [(255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (96, 60, 35)]
    hair_colors = [(20, 16, 12), (70, 45, 25), (140, 90, 40), (215, 180, 100), (160, 40, 20), (200, 200, 205),
                   (40, 60, 160), (190, 60, 140)]
    return Appearance(
        scale=float(rng.uniform(0.84, 0.94)),
        shoulders=float(rng.uniform(0.85, 1.15)),
        skin=skin_tones[int(rng.integers(len(skin_tones)))],
        hair=hair_colors[int(rng.integers(len(hair_colors)))],
        long_hair=bool(rng.random() < 0.5),
        shirt=_rgb(rng), accent=_rgb(rng),
        shirt_pattern=str(rng.choice(["stripes", "vstripes", "checks", "dots", "solid"])),
        back_pattern=str(rng.choice(["band", "number", "cross", "diagonal"])),
        logo=str(rng.choice(["circle", "star", "square", "triangle"])),
        pattern_period=float(rng.uniform(0.03, 0.055)),
        short_sleeves=bool(rng.random() < 0.5),
        pants=_rgb(rng, 20, 200), pants_pattern=str(rng.choice(["solid", "solid", "stripe", "checks"])),
        shorts=bool(rng.random() < 0.3),
        shoes=_rgb(rng, 10, 250), eyes=_rgb(rng, 0, 120), lips=_rgb(rng, 120, 230), glasses=bool(rng.random() < 0.4),
    )


def _pattern(kind: str, size: int, period_px: float, base, accent) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    p = max(2.0, period_px)
    if kind == "stripes":
        on = (yy // max(1, int(p / 2))) % 2 == 0
    elif kind == "vstripes":
        on = (xx // max(1, int(p / 2))) % 2 == 0
    elif kind == "checks":
        on = ((yy // max(1, int(p / 2))) + (xx // max(1, int(p / 2)))) % 2 == 0
    elif kind == "dots":
        q = max(2, int(p))
        on = ((yy % q) < max(1, q // 3)) & ((xx % q) < max(1, q // 3))
    else:
        on = np.zeros((size, size), bool)
    out = np.empty((size, size, 3), np.uint8)
    out[:] = base
    out[on] = accent
    return out


def _mix(a, b, t):
    return tuple(int(round(x * (1 - t) + y * t)) for x, y in zip(a, b))


def _scaled(c, f):
    return tuple(int(min(255, round(x * f))) for x in c)


MIN_PERIOD_PX = 5.0
"""Clothing patterns no finer than a 5 px period (4 px for the back diagonals) at any size."""


def build_textures(app: Appearance, height: int) -> np.ndarray:
    """``(n_textures, S, S, 3)`` with S the power of two >= the frame size; texture centre = anchor point.
    Pattern periods are the appearance's ``pattern_period`` x 2.2 (at least ``MIN_PERIOD_PX``) and hair streaks
    5 px or wider, so no clothing or hair detail sits at the pixel grid."""
    size = 1 << int(np.ceil(np.log2(max(height, 8))))
    size = max(size, 1 << int(np.ceil(np.log2(max(height, 8)))))
    tex = np.zeros((len(TEXTURES), size, size, 3), np.uint8)
    period = max(MIN_PERIOD_PX, 2.2 * app.pattern_period * height)
    c = size // 2
    unit = height  # pixels per frame height
    front = _pattern(app.shirt_pattern, size, period, app.shirt, _mix(app.shirt, app.accent, 0.6))
    r = max(1, int(round(0.045 * unit * app.scale)))
    logo_c = (c, c - int(round(0.03 * unit)))
    logo_color = app.accent if app.shirt_pattern == "solid" else _mix(app.accent, (255, 255, 255), 0.3)
    if app.logo == "circle":
        cv2.circle(front, logo_c, r, logo_color, -1, cv2.LINE_8)
    elif app.logo == "square":
        cv2.rectangle(front, (logo_c[0] - r, logo_c[1] - r), (logo_c[0] + r, logo_c[1] + r), logo_color, -1)
    else:
        n = 5 if app.logo == "star" else 3
        angles = -np.pi / 2 + np.arange(n * (2 if n == 5 else 1)) * np.pi * (2 / n if n == 3 else 1 / n)
        radii = np.where(np.arange(len(angles)) % 2 == 1, 0.45, 1.0) if n == 5 else np.ones(len(angles))
        pts = np.stack([logo_c[0] + r * 1.2 * radii * np.cos(angles), logo_c[1] + r * 1.2 * radii * np.sin(angles)], 1)
        cv2.fillPoly(front, [np.round(pts).astype(np.int32)], logo_color, cv2.LINE_8)
    tex[TX["shirt_front"]] = front

    back = np.empty_like(front)
    back[:] = _scaled(app.shirt, 0.9)
    band = max(2, int(round(0.04 * unit)))
    if app.back_pattern == "band":
        back[c - band: c + band] = app.accent
    elif app.back_pattern == "cross":
        back[c - band // 2 - 1: c + band // 2 + 1] = app.accent
        back[:, c - band // 2 - 1: c + band // 2 + 1] = app.accent
    elif app.back_pattern == "diagonal":
        yy, xx = np.mgrid[0:size, 0:size]
        back[((yy + xx) // max(2, band)) % 3 == 0] = app.accent
    else:  # a big number-like block
        cv2.rectangle(back, (c - 2 * band, c - 3 * band), (c + 2 * band, c + 2 * band), app.accent, -1)
        cv2.rectangle(back, (c - band, c - 2 * band), (c + band, c + band), _scaled(app.shirt, 0.9), -1)
    tex[TX["shirt_back"]] = back
    tex[TX["sleeve"]] = (front.astype(np.uint16) * 15 // 16).astype(np.uint8)
    tex[TX["sleeve_far"]] = (front.astype(np.uint16) * 12 // 16).astype(np.uint8)

    pants = _pattern({"stripe": "vstripes", "checks": "checks"}.get(app.pants_pattern, "solid"), size,
                     period * 1.6, app.pants, _mix(app.pants, (235, 235, 235), 0.35))
    tex[TX["pants"]] = pants
    tex[TX["pants_far"]] = (pants.astype(np.uint16) * 12 // 16).astype(np.uint8)
    tex[TX["skin"]] = app.skin
    tex[TX["skin_far"]] = _scaled(app.skin, 0.82)
    hair = np.empty((size, size, 3), np.uint8)
    hair[:] = app.hair
    streak_color = _scaled(app.hair, 1.25) if sum(app.hair) < 300 else _scaled(app.hair, 0.8)
    streak = max(5, int(round(0.05 * unit)))
    hair[:, (np.arange(size) % streak) < streak // 2] = streak_color
    tex[TX["hair"]] = hair
    tex[TX["shoe"]] = app.shoes
    tex[TX["eye"]] = app.eyes
    tex[TX["brow"]] = _scaled(app.hair, 0.7)
    tex[TX["lip"]] = app.lips
    tex[TX["glasses"]] = (25, 25, 30)
    return tex


def _dir(abd, flex, side):
    return np.stack([side * np.sin(abd) * np.cos(flex), np.cos(abd) * np.cos(flex), np.sin(flex)], -1)


def _roll(v, angle):
    """Rotate (..., 3) vectors in the image plane (about z) by ``angle`` (..., )."""
    c, s = np.cos(angle)[..., None], np.sin(angle)[..., None]
    x, y = v[..., 0:1], v[..., 1:2]
    return np.concatenate([x * c - y * s, x * s + y * c, v[..., 2:3]], -1)


def _yaw(v, angle):
    c, s = np.cos(angle)[..., None], np.sin(angle)[..., None]
    x, z = v[..., 0:1], v[..., 2:3]
    return np.concatenate([x * c + z * s, v[..., 1:2], -x * s + z * c], -1)


@dataclass
class PosedFrames:
    """Projected geometry of T frames (pixels). ``body``/``face`` (T, K, 2) positions, ``*_z`` depths
    (toward the viewer, pixels), ``*_facing`` (T, K) whether the point's surface faces the viewer."""

    body: np.ndarray
    body_z: np.ndarray
    body_facing: np.ndarray
    face: np.ndarray
    face_facing: np.ndarray
    head: np.ndarray  # (T, 2) head centre
    head_r: float
    toes: np.ndarray  # (T, 2, 2)
    torso_poly: np.ndarray  # (T, 4, 2)
    head_yaw: np.ndarray  # (T,) total head yaw
    yaw: np.ndarray
    group_depth: np.ndarray  # (T, N_GROUPS)
    anchors: np.ndarray  # (T, 4, 2) texture anchors (none, torso, pelvis, head)
    order: np.ndarray  # (T, N_GROUPS) drawing order, far to near
    rank: np.ndarray  # (T, N_GROUPS + 1) position of each group in the order; last column -1 (padding)
    own_rank: np.ndarray  # (T, 86) latest-drawn rank among each keypoint's own parts
    pixel: np.ndarray  # (T, 86, 2) integer pixel (x, y) of each keypoint, clipped into the frame
    inside: np.ndarray  # (T, 86) keypoint inside the frame


def pose_frames(app: Appearance, angles: np.ndarray, yaw: np.ndarray, root_x: np.ndarray, height: int,
                width: int) -> PosedFrames:
    """Forward kinematics + projection for T frames (vectorised)."""
    s = app.scale
    T = len(yaw)
    ang = lambda n: angles[:, A[n]]  # noqa: E731
    lean = ang("lean")
    sw = SHOULDER_HALF * s * app.shoulders
    hw = HIP_HALF * s

    def upper(v):  # attach to the (leaning) upper body
        return _roll(v, lean)

    neck = upper(np.tile([0.0, -TORSO * s, 0.0], (T, 1)))
    r_sho = upper(np.tile([-sw, -TORSO * s + 0.012, 0.0], (T, 1)))
    l_sho = upper(np.tile([sw, -TORSO * s + 0.012, 0.0], (T, 1)))
    r_elb = r_sho + UPPER_ARM * s * upper(_dir(ang("r_sho_abd"), ang("r_sho_flex"), -1))
    l_elb = l_sho + UPPER_ARM * s * upper(_dir(ang("l_sho_abd"), ang("l_sho_flex"), 1))
    r_wri = r_elb + FOREARM * s * upper(_dir(ang("r_elb_abd"), ang("r_elb_flex"), -1))
    l_wri = l_elb + FOREARM * s * upper(_dir(ang("l_elb_abd"), ang("l_elb_flex"), 1))
    r_hip = np.tile([-hw, 0.0, 0.0], (T, 1))
    l_hip = np.tile([hw, 0.0, 0.0], (T, 1))
    r_knee = r_hip + THIGH * s * _dir(ang("r_hip_abd"), ang("r_hip_flex"), -1)
    l_knee = l_hip + THIGH * s * _dir(ang("l_hip_abd"), ang("l_hip_flex"), 1)
    r_ank = r_knee + SHIN * s * _dir(ang("r_hip_abd"), ang("r_hip_flex") - ang("r_knee"), -1)
    l_ank = l_knee + SHIN * s * _dir(ang("l_hip_abd"), ang("l_hip_flex") - ang("l_knee"), 1)
    fwd = np.tile([0.0, 0.02, 0.05 * s], (T, 1))
    r_toe, l_toe = r_ank + fwd, l_ank + fwd

    head_roll = lean + ang("head_roll")
    head_c = neck + _roll(np.tile([0.0, -NECK_TO_HEAD * s, 0.0], (T, 1)), head_roll)
    hr = HEAD_R * s
    hyaw = ang("head_yaw")

    def head_points(local):  # (K, 3) on the unit head -> (T, K, 3) body frame
        p = _yaw(np.broadcast_to(local, (T,) + local.shape), hyaw[:, None])
        return head_c[:, None] + hr * _roll(p, head_roll[:, None])

    head_local = np.array([[0.0, 0.05, 1.0], [-0.34, -0.18, 0.92], [0.34, -0.18, 0.92], [-1.0, -0.02, -0.15],
                           [1.0, -0.02, -0.15]])
    nose_eyes_ears = head_points(head_local)
    face = head_points(FACE_TEMPLATE)
    body = np.stack([nose_eyes_ears[:, 0], neck, r_sho, r_elb, r_wri, l_sho, l_elb, l_wri, r_hip, r_knee, r_ank,
                     l_hip, l_knee, l_ank, nose_eyes_ears[:, 1], nose_eyes_ears[:, 2], nose_eyes_ears[:, 3],
                     nose_eyes_ears[:, 4]], 1)

    # turn the whole body, then ground the lower foot on the floor
    body_t = _yaw(body, yaw[:, None])
    face_t = _yaw(face, yaw[:, None])
    toes_t = _yaw(np.stack([r_toe, l_toe], 1), yaw[:, None])
    head_t = _yaw(head_c, yaw)
    lowest = np.maximum(np.maximum(body_t[:, 10, 1], body_t[:, 13, 1]), toes_t[:, :, 1].max(1)) + FOOT_DROP * s
    pelvis_y = FLOOR_Y - lowest

    def to_px(p):
        x = width / 2 + (root_x.reshape((T,) + (1,) * (p.ndim - 2)) - 0.5 + p[..., 0]) * height
        y = (pelvis_y.reshape((T,) + (1,) * (p.ndim - 2)) + p[..., 1]) * height
        return np.stack([x, y], -1)

    total_yaw = yaw + hyaw
    face_n = _yaw(_roll(np.broadcast_to(FACE_NORMALS, (T, N_FACE, 3)), head_roll[:, None]), total_yaw[:, None])
    head_n = _yaw(_roll(np.broadcast_to(head_local / np.linalg.norm(head_local, axis=1, keepdims=True),
                                        (T, 5, 3)), head_roll[:, None]), total_yaw[:, None])
    body_facing = np.ones((T, N_BODY), bool)
    body_facing[:, [0, 14, 15]] = head_n[:, :3, 2] > np.array([0.0, 0.15, 0.15])
    body_facing[:, [16, 17]] = head_n[:, 3:, 2] > -0.35
    face_facing = face_n[:, :, 2] > 0.12

    # torso silhouette: elliptic cross-sections at shoulders and hips
    c, sn = np.abs(np.cos(yaw)), np.abs(np.sin(yaw))
    e_sho = np.sqrt((sw * c) ** 2 + (CHEST_HALF_DEPTH * s * sn) ** 2) * height
    e_hip = np.sqrt((hw * 1.25 * c) ** 2 + (HIP_HALF_DEPTH * s * sn) ** 2) * height
    px = to_px(body_t)
    sho_mid = (px[:, 2] + px[:, 5]) / 2
    hip_mid = (px[:, 8] + px[:, 11]) / 2
    axis = sho_mid - hip_mid
    axis /= np.maximum(np.linalg.norm(axis, axis=1, keepdims=True), 1e-6)
    perp = np.stack([-axis[:, 1], axis[:, 0]], 1)
    sho_top = sho_mid + axis * 0.015 * height
    torso_poly = np.stack([sho_top - perp * e_sho[:, None], sho_top + perp * e_sho[:, None],
                           hip_mid + perp * e_hip[:, None], hip_mid - perp * e_hip[:, None]], 1)

    z = body_t[..., 2]
    depth = np.zeros((T, N_GROUPS))
    depth[:, G_TORSO] = 0.0
    depth[:, G_NECK] = -0.004
    depth[:, G_HEAD] = head_t[:, 2] + 0.01
    pairs = {G_RUA: (2, 3), G_LUA: (5, 6), G_RFA: (3, 4), G_LFA: (6, 7), G_RTH: (8, 9), G_LTH: (11, 12),
             G_RSH: (9, 10), G_LSH: (12, 13)}
    for g, (a, b) in pairs.items():
        depth[:, g] = (z[:, a] + z[:, b]) / 2
    depth[:, G_RHAND], depth[:, G_LHAND] = z[:, 4] + 0.002, z[:, 7] + 0.002
    depth[:, G_RFOOT], depth[:, G_LFOOT] = toes_t[:, 0, 2], toes_t[:, 1, 2]
    depth[:, G_HAIR] = -0.05 * np.cos(total_yaw) + 0.003
    depth += np.arange(N_GROUPS) * 1e-6  # deterministic tie-break

    anchors = np.stack([np.zeros((T, 2)), (sho_mid + hip_mid) / 2, hip_mid, to_px(head_t[:, None])[:, 0]], 1)
    order = np.argsort(depth, axis=1)
    rank = np.full((T, N_GROUPS + 1), -1, np.int64)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(N_GROUPS), (T, N_GROUPS)), axis=1)
    own_rank = rank[:, OWN_GROUPS].max(2)
    points = np.concatenate([px, to_px(face_t)], 1)
    pixel = np.floor(points).astype(np.int64)
    inside = (pixel[..., 0] >= 0) & (pixel[..., 0] < width) & (pixel[..., 1] >= 0) & (pixel[..., 1] < height)
    pixel[..., 0] = np.clip(pixel[..., 0], 0, width - 1)
    pixel[..., 1] = np.clip(pixel[..., 1], 0, height - 1)
    return PosedFrames(order=order, rank=rank, own_rank=own_rank, pixel=pixel, inside=inside,
                       body=px, body_z=z * height, body_facing=body_facing, face=to_px(face_t),
                       face_facing=face_facing, head=to_px(head_t[:, None])[:, 0], head_r=hr * height,
                       toes=to_px(toes_t), torso_poly=torso_poly, head_yaw=total_yaw, yaw=yaw, group_depth=depth,
                       anchors=anchors)


class Puppet:
    """Draws one identity over one background at one size. ``draw(posed, i)`` returns the RGB frame, the person
    mask and keypoint confidences (1 visible, 0 occluded / turned away / out of frame)."""

    def __init__(self, app: Appearance, background: np.ndarray):
        self.app = app
        self.height, self.width = background.shape[:2]
        self.textures = build_textures(app, self.height)
        size = self.textures.shape[1]
        self.textures[TX["bg"], : self.height, : self.width] = background
        self._background = np.ascontiguousarray(background)
        self._mask = size - 1
        self._yy, self._xx = np.mgrid[0:self.height, 0:self.width].astype(np.int32)
        self._labels = np.zeros((self.height, self.width), np.uint8)
        h = self.height
        self._w = {k: max(1, int(round(v * app.scale * h))) for k, v in WIDTH.items()}
        self._half = size // 2
        self._lens_sigma = LENS_SIGMA * self.height / 64

    def draw(self, posed: PosedFrames, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        app, labels, w = self.app, self._labels, self._w
        labels.fill(0)
        b = np.round(posed.body[i] * ONE).astype(np.int32).tolist()
        toes = np.round(posed.toes[i] * ONE).astype(np.int32).tolist()
        torso = np.round(posed.torso_poly[i] * ONE).astype(np.int32)
        head = np.round(posed.head[i] * ONE).astype(np.int32).tolist()
        order = posed.order[i]
        line, circle = cv2.line, cv2.circle
        hands_r = max(1, int(round(WIDTH["hand"] * app.scale * self.height * ONE)))
        for g in order.tolist():
            if g == G_TORSO:
                cv2.fillConvexPoly(labels, torso, L["torso"], cv2.LINE_8, SHIFT)
            elif g == G_NECK:
                line(labels, b[1], head, L["neck"], w["neck"], cv2.LINE_8, SHIFT)
            elif g == G_HEAD:
                self._draw_head(posed, i, head)
            elif g == G_RUA:
                line(labels, b[2], b[3], L["r_uarm"], w["uarm"], cv2.LINE_8, SHIFT)
            elif g == G_LUA:
                line(labels, b[5], b[6], L["l_uarm"], w["uarm"], cv2.LINE_8, SHIFT)
            elif g == G_RFA:
                line(labels, b[3], b[4], L["r_farm"], w["farm"], cv2.LINE_8, SHIFT)
            elif g == G_LFA:
                line(labels, b[6], b[7], L["l_farm"], w["farm"], cv2.LINE_8, SHIFT)
            elif g == G_RHAND:
                circle(labels, b[4], hands_r, L["r_hand"], -1, cv2.LINE_8, SHIFT)
            elif g == G_LHAND:
                circle(labels, b[7], hands_r, L["l_hand"], -1, cv2.LINE_8, SHIFT)
            elif g == G_RTH:
                line(labels, b[8], b[9], L["r_thigh"], w["thigh"], cv2.LINE_8, SHIFT)
            elif g == G_LTH:
                line(labels, b[11], b[12], L["l_thigh"], w["thigh"], cv2.LINE_8, SHIFT)
            elif g == G_RSH:
                line(labels, b[9], b[10], L["r_shin"], w["shin"], cv2.LINE_8, SHIFT)
            elif g == G_LSH:
                line(labels, b[12], b[13], L["l_shin"], w["shin"], cv2.LINE_8, SHIFT)
            elif g == G_RFOOT:
                line(labels, b[10], toes[0], L["r_foot"], w["foot"], cv2.LINE_8, SHIFT)
            elif g == G_LFOOT:
                line(labels, b[13], toes[1], L["l_foot"], w["foot"], cv2.LINE_8, SHIFT)
            elif g == G_HAIR and app.long_hair:
                r = posed.head_r
                cv2.ellipse(labels, (head[0], head[1] + int(1.0 * r * ONE)), (int(1.05 * r * ONE), int(1.35 * r * ONE)),
                            0, 0, 360, L["hair_long"], -1, cv2.LINE_8, SHIFT)

        rgb = self._compose(posed, i)
        rgb = cv2.GaussianBlur(rgb, (0, 0), self._lens_sigma, borderType=cv2.BORDER_REFLECT_101)
        body_conf, face_conf = self._visibility(posed, i)
        return rgb, labels > 0, body_conf, face_conf

    def _draw_head(self, posed: PosedFrames, i: int, head: list[int]) -> None:
        labels, r = self._labels, posed.head_r
        psi = posed.head_yaw[i]
        s, c = np.sin(psi), np.cos(psi)
        R = int(round(r * ONE))
        off = lambda dx, dy: (head[0] + int(round(dx * r * ONE)), head[1] + int(round(dy * r * ONE)))  # noqa: E731
        if c > -0.1:
            cv2.circle(labels, off(-0.3 * s, -0.12), int(1.08 * R), L["hair_back"], -1, cv2.LINE_8, SHIFT)
            cv2.circle(labels, off(0.08 * s, 0.06), int(0.93 * R), L["head_skin"], -1, cv2.LINE_8, SHIFT)
            cv2.ellipse(labels, off(-0.2 * s, -0.62), (int(1.0 * R), int(0.4 * R)), 0, 0, 360, L["hair_cap"], -1,
                        cv2.LINE_8, SHIFT)
            f = posed.face[i]
            vis = posed.face_facing[i]
            for eye in EYES:
                if vis[eye].all():
                    center = np.round(f[eye].mean(0) * ONE).astype(np.int32).tolist()
                    cv2.circle(labels, center, max(1, int(0.14 * R)), L["eye"], -1, cv2.LINE_8, SHIFT)
                    if self.app.glasses:
                        cv2.circle(labels, center, max(ONE, int(0.3 * R)), L["glasses"], 1, cv2.LINE_8, SHIFT)
            for brow in BROWS:
                if vis[brow].all():
                    cv2.polylines(labels, [np.round(f[brow] * ONE).astype(np.int32)], False, L["brow"],
                                  max(1, int(round(0.12 * r))), cv2.LINE_8, SHIFT)
            if vis[OUTER_LIP].sum() >= 8:
                cv2.fillPoly(labels, [np.round(f[OUTER_LIP] * ONE).astype(np.int32)], L["mouth"], cv2.LINE_8, SHIFT)
        else:
            cv2.circle(labels, off(0.0, 0.06), int(0.93 * R), L["head_skin"], -1, cv2.LINE_8, SHIFT)
            cv2.circle(labels, off(0.0, -0.05), int(1.06 * R), L["hair_back"], -1, cv2.LINE_8, SHIFT)

    def _texture_lut(self, posed: PosedFrames, i: int) -> np.ndarray:
        app = self.app
        front = np.cos(posed.yaw[i]) >= 0
        z = posed.body_z[i]
        near_r, near_l = z[2] >= z[5], z[5] > z[2]
        leg_r, leg_l = z[8] >= z[11], z[11] > z[8]
        sleeve = lambda near: TX["sleeve"] if near else TX["sleeve_far"]  # noqa: E731
        skin = lambda near: TX["skin"] if near else TX["skin_far"]  # noqa: E731
        pants = lambda near: TX["pants"] if near else TX["pants_far"]  # noqa: E731
        lut = np.zeros(len(LABELS), np.uint8)
        lut[L["torso"]] = TX["shirt_front"] if front else TX["shirt_back"]
        lut[L["neck"]] = TX["skin"]
        lut[L["r_uarm"]], lut[L["l_uarm"]] = sleeve(near_r), sleeve(near_l)
        lut[L["r_farm"]] = skin(near_r) if app.short_sleeves else sleeve(near_r)
        lut[L["l_farm"]] = skin(near_l) if app.short_sleeves else sleeve(near_l)
        lut[L["r_hand"]], lut[L["l_hand"]] = skin(near_r), skin(near_l)
        lut[L["r_thigh"]], lut[L["l_thigh"]] = pants(leg_r), pants(leg_l)
        lut[L["r_shin"]] = skin(leg_r) if app.shorts else pants(leg_r)
        lut[L["l_shin"]] = skin(leg_l) if app.shorts else pants(leg_l)
        lut[L["r_foot"]] = lut[L["l_foot"]] = TX["shoe"]
        lut[L["hair_back"]] = lut[L["hair_cap"]] = lut[L["hair_long"]] = TX["hair"]
        lut[L["head_skin"]] = TX["skin"]
        lut[L["eye"]], lut[L["brow"]], lut[L["mouth"]], lut[L["glasses"]] = TX["eye"], TX["brow"], TX["lip"], TX["glasses"]
        return lut

    def _compose(self, posed: PosedFrames, i: int) -> np.ndarray:
        flat = self._labels.reshape(-1)
        idx = np.flatnonzero(flat)
        tex_index = self._texture_lut(posed, i)[flat[idx]]
        anchor = np.round(posed.anchors[i]).astype(np.int32)  # (4, 2) x, y
        per_tex = (self._half - anchor)[TEXTURE_ANCHOR]  # (n_tex, 2)
        ys = (self._yy.reshape(-1)[idx] + per_tex[tex_index, 1]) & self._mask
        xs = (self._xx.reshape(-1)[idx] + per_tex[tex_index, 0]) & self._mask
        out = self._background.copy()
        out.reshape(-1, 3)[idx] = self.textures[tex_index, ys, xs]
        return out

    def _visibility(self, posed: PosedFrames, i: int) -> tuple[np.ndarray, np.ndarray]:
        pixel = posed.pixel[i]
        group = LABEL_GROUP[self._labels[pixel[:, 1], pixel[:, 0]]]
        occluder = posed.rank[i][group]  # group -1 reads the padding column: rank -1, hides nothing
        visible = posed.inside[i] & (occluder <= posed.own_rank[i])
        visible[:N_BODY] &= posed.body_facing[i]
        visible[N_BODY:] &= posed.face_facing[i]
        return visible[:N_BODY].astype(np.float32), visible[N_BODY:].astype(np.float32)
