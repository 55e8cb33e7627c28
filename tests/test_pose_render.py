"""The shared pose-map renderer: OpenPose colours, thresholds, frame bounds; lab and real keypoints alike."""
from __future__ import annotations

import numpy as np
import pytest

from bench.pose_render import COLORS, LIMB_COLORS, MIN_JOINT, MIN_LINE, THRESHOLD, draw_pose, stroke_sizes


def _skeleton(conf=1.0):
    body = np.zeros((1, 18, 3))
    body[0, :, 0] = np.linspace(20, 100, 18)
    body[0, :, 1] = np.linspace(30, 90, 18)
    body[0, :, 2] = conf
    return body


def test_joint_and_limb_colours_follow_openpose():
    body = np.zeros((1, 18, 3))
    body[0, 1] = [40, 40, 1]  # neck
    body[0, 2] = [100, 40, 1]  # right shoulder
    img = draw_pose(body, None, 128, 128)[0]
    assert tuple(img[40, 100]) == COLORS[2]
    assert tuple(img[40, 40]) == COLORS[1]
    assert tuple(img[40, 70]) == LIMB_COLORS[0]  # limb (neck, r_sho) at 60 % of its colour
    assert img[5, 5].sum() == 0  # black background


def test_threshold_and_bounds():
    body = _skeleton()
    body[0, 5, 2] = THRESHOLD - 0.01
    body[0, 6, :2] = [500, 10]  # out of frame
    body[0, 7, :2] = np.nan
    img = draw_pose(body, None, 128, 128)[0]
    x, y = body[0, 5, :2].astype(int)
    assert tuple(img[y, x]) != COLORS[5]
    assert not (img == np.array(COLORS[6], np.uint8)).all(-1).any()
    assert not (img == np.array(COLORS[7], np.uint8)).all(-1).any()
    assert (img == np.array(COLORS[4], np.uint8)).all(-1).any()
    assert draw_pose(_skeleton(0.0), None, 128, 128).max() == 0


def test_face_points_are_white_dots_at_every_scale():
    face = np.zeros((1, 68, 3))
    face[0, :, 0], face[0, :, 1], face[0, :, 2] = 32.4, 20.7, 1.0
    small = draw_pose(np.zeros((1, 18, 3)), face, 64, 64)[0]
    assert tuple(small[20, 32]) == (255, 255, 255) and small.sum() == 3 * 255
    big = draw_pose(np.zeros((1, 18, 3)), face * [8, 8, 1], 512, 512)[0]
    assert (big.sum(-1) == 765).sum() > 1


def test_stroke_sizes_scale_with_the_frame_down_to_a_floor():
    assert stroke_sizes(64, 64) == (MIN_LINE, MIN_JOINT, 0) == (3, 2, 0)
    assert stroke_sizes(832, 480) == (8, 4, 2)
    assert stroke_sizes(256, 256) == (4, 2, 1)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError):
        draw_pose(np.zeros((2, 17, 3)), None, 64, 64)
    with pytest.raises(ValueError):
        draw_pose(np.zeros((2, 18, 3)), np.zeros((3, 68, 3)), 64, 64)


def test_lab_pose_video_is_the_shared_renderer_of_its_keypoints(tmp_path):
    from bench.lab.render import render_sample
    from bench.lab.spec import LabSpec

    sample = render_sample(LabSpec(seed=11, n_frames=40), tmp_path, progress=False)
    kp = sample.keypoints()
    np.testing.assert_array_equal(sample.pose(0, 40), draw_pose(kp["body"], kp["face"], 64, 64))
    sample.close()
