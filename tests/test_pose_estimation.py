"""Pose estimation through onnxruntime, on tiny ONNX graphs with the real models' input/output contracts."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from bench.errors import WeightsError
from bench.pose_estimation import PersonDetector, PoseModel, WholeBodyEstimator, crop_transform, load_session


def _save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_detector(path, box=(8.0, 4.0, 40.0, 60.0), size=64):
    """YOLOv10-style end-to-end detector: (1,3,S,S) -> (1,2,6), a fixed person box and a weak second class."""
    rows = np.array([[*box, 0.9, 0.0], [0, 0, 60, 60, 0.95, 3.0]], np.float32)[None]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Reshape", ["z", "shape"], ["z3"]),
        helper.make_node("Add", ["z3", "rows"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes, "det", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 2, 6])],
        [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
         helper.make_tensor("shape", TensorProto.INT64, [3], [1, 1, 1]),
         helper.make_tensor("rows", TensorProto.FLOAT, rows.shape, rows.ravel().tolist())])
    return _save(graph, path)


def make_heatmap_pose(path, k=133, h=64, w=48):
    """ViTPose-style: heatmaps (1,K,h/4,w/4) = channel-mean brightness pooled 4x4, the same for every point."""
    weight = np.full((k, 3, 1, 1), 1 / 3, np.float32)
    nodes = [helper.make_node("AveragePool", ["input"], ["p"], kernel_shape=[4, 4], strides=[4, 4]),
             helper.make_node("Conv", ["p", "w"], ["heatmaps"])]
    graph = helper.make_graph(
        nodes, "pose", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, [1, k, h // 4, w // 4])],
        [helper.make_tensor("w", TensorProto.FLOAT, weight.shape, weight.ravel().tolist())])
    return _save(graph, path)


def make_simcc_pose(path, k=133, h=64, w=48):
    """DWPose-style SimCC: x vector = column maxima, y vector = row maxima (split ratio 1)."""
    nodes = [helper.make_node("ReduceMax", ["input"], ["cx"], axes=[1, 2], keepdims=1),
             helper.make_node("Reshape", ["cx", "sx"], ["vx"]),
             helper.make_node("Expand", ["vx", "ex"], ["simcc_x"]),
             helper.make_node("ReduceMax", ["input"], ["cy"], axes=[1, 3], keepdims=1),
             helper.make_node("Reshape", ["cy", "sy"], ["vy"]),
             helper.make_node("Expand", ["vy", "ey"], ["simcc_y"])]
    graph = helper.make_graph(
        nodes, "simcc", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [1, k, w]),
         helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [1, k, h])],
        [helper.make_tensor("sx", TensorProto.INT64, [3], [1, 1, w]),
         helper.make_tensor("sy", TensorProto.INT64, [3], [1, 1, h]),
         helper.make_tensor("ex", TensorProto.INT64, [3], [1, k, w]),
         helper.make_tensor("ey", TensorProto.INT64, [3], [1, k, h])])
    return _save(graph, path)


def _frame_with_spot(x, y, h=96, w=128, half=6):
    frame = np.zeros((h, w, 3), np.uint8)
    frame[y - half:y + half, x - half:x + half] = 255
    return frame


def test_detector_maps_boxes_back_to_the_frame(tmp_path):
    det = PersonDetector(make_detector(tmp_path / "det.onnx"))
    box = det.detect(np.zeros((96, 128, 3), np.uint8))
    np.testing.assert_allclose(box[:4], [8 * 2, 4 * 1.5, 40 * 2, 60 * 1.5], atol=1e-4)  # class 3 ignored
    assert box[4] == pytest.approx(0.9)


@pytest.mark.parametrize("maker, half, tol", [(make_heatmap_pose, 6, 3.5), (make_simcc_pose, 1, 1.5)])
def test_pose_model_finds_the_spot_in_frame_coordinates(tmp_path, maker, half, tol):
    model = PoseModel(maker(tmp_path / "pose.onnx"))
    frame = _frame_with_spot(70, 50, half=half)
    points = model.estimate(frame, np.array([40.0, 20.0, 100.0, 90.0]))
    assert points.shape == (133, 3)
    np.testing.assert_allclose(points[:, :2], np.tile([[69.5, 49.5]], (133, 1)), atol=tol)
    assert (points[:, 2] > 0.3).all()


def test_crop_transform_keeps_the_input_aspect():
    M = crop_transform(np.array([0.0, 0.0, 100.0, 100.0]), 256, 192)
    assert M[0, 0] == M[1, 1]  # no stretching
    np.testing.assert_allclose(M @ [50, 50, 1], [96, 128])  # box centre -> input centre


def test_whole_body_estimator_gives_openpose_layout(tmp_path):
    est = WholeBodyEstimator(make_detector(tmp_path / "det.onnx"), make_heatmap_pose(tmp_path / "pose.onnx"))
    frames = np.stack([_frame_with_spot(40, 40), np.zeros((96, 128, 3), np.uint8)])
    body, face = est.estimate_frames(frames)
    assert body.shape == (2, 18, 3) and face.shape == (2, 68, 3)
    assert body[0, 1, 2] == min(body[0, 2, 2], body[0, 5, 2])  # neck from the shoulders
    np.testing.assert_allclose(body[0, :, :2], 39.5, atol=4)
    assert est.describe()["pose"]["decoder"] == "heatmap"


def test_missing_and_wrong_model_files(tmp_path):
    with pytest.raises(WeightsError) as err:
        load_session(tmp_path / "yolov10m.onnx", "person detector")
    assert "huggingface.co/Wan-AI" in err.value.fix
    path = make_detector(tmp_path / "det.onnx")
    with pytest.raises(WeightsError) as err:
        load_session(path, "person detector", expected_sha256="0" * 64)
    assert "sha256" in str(err.value)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(WeightsError):
        load_session(tmp_path / "junk.onnx", "pose")


def test_build_from_raw_videos_gives_a_valid_manifest(tmp_path):
    from bench.lab.render import render_sample
    from bench.lab.spec import LabSpec
    from bench.manifest import build_from_raw_videos, load_manifest, validate_manifest
    from bench.pose_render import draw_pose
    from bench.video import write_video

    lab = render_sample(LabSpec(seed=5, n_frames=24), tmp_path / "lab", progress=False)
    video = tmp_path / "raw" / "dance.mp4"
    write_video(video, lab.gt(0, 24), 25)
    manifest = build_from_raw_videos([video], make_detector(tmp_path / "det.onnx"),
                                     make_heatmap_pose(tmp_path / "pose.onnx"), tmp_path / "out" / "m.jsonl",
                                     face_size=16, progress=False)
    problems = validate_manifest(manifest)
    assert [p for p in problems if p.severity == "error"] == []
    (sample,) = load_manifest(manifest)
    kp = sample.keypoints()
    assert kp["body"].shape == (24, 18, 3) and sample.face(0, 24).shape == (24, 16, 16, 3)
    # the pose video is the shared renderer applied to the estimated keypoints, as for lab samples
    np.testing.assert_array_equal(sample.pose(0, 24), draw_pose(kp["body"], kp["face"], 64, 64))
    assert sample.record["source"]["estimator"]["detector"]["sha256"]
