"""F-PSNR's face-detector path, offline: a tiny hand-set SCRFD with det_10g.onnx's interface (input
``input.1`` NCHW float, 9 outputs: scores / boxes / keypoints for strides 8, 16, 32, two anchors per cell)
goes through insightface's real ``model_zoo.get_model`` routing, preprocessing, decoding and NMS.

The network fires on saturated red (in RGB, after insightface's BGR->RGB swap and (x - 127.5) / 128): every
anchor over a mostly-red cell scores, and every anchor's distances decode to the bounding box of all red
pixels, so the expected box is the red square drawn into the frame."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from bench.errors import DataError, WeightsError
from bench.metrics import face as F
from bench.metrics import weights as W

STRIDES = (8, 16, 32)
ANCHORS = 2
KEYPOINTS = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]], np.float32)  # box fractions
RED, BLUE = (255, 0, 0), (0, 0, 255)


def build_red_square_scrfd(path) -> None:
    """Write an SCRFD-shaped ONNX detector of saturated-red regions (see the module docstring)."""
    nodes, initializers = [], []

    def const(name, value, dtype=np.float32):
        initializers.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(kind, inputs, output, **attrs):
        nodes.append(helper.make_node(kind, inputs, [output], **attrs))
        return output

    # red mask from a 1x1 convolution: r - g - b > 2.5 on inputs in [-1, 1]
    const("red_w", np.array([20.0, -20.0, -20.0]).reshape(1, 3, 1, 1))
    const("red_b", [-50.0])
    op("Conv", ["input.1", "red_w", "red_b"], "red_logit")
    op("Sigmoid", ["red_logit"], "red_soft")
    const("half", 0.5)
    op("Greater", ["red_soft", "half"], "red_bool")
    op("Cast", ["red_bool"], "red", to=TensorProto.FLOAT)
    # its bounding box [x0, x1) x [y0, y1) in input pixels
    const("zero", 0.0), const("one", 1.0), const("far", 1e6)
    op("Shape", ["input.1"], "input_shape")
    for axis, name, reduce_axes in ((3, "x", [0, 1, 2]), (2, "y", [0, 1, 3])):
        const(f"axis{axis}", axis, np.int64)
        op("ReduceMax", ["red"], f"{name}_any", axes=reduce_axes, keepdims=0)
        op("Gather", ["input_shape", f"axis{axis}"], f"{name}_size_int", axis=0)
        op("Cast", [f"{name}_size_int"], f"{name}_size", to=TensorProto.FLOAT)
        op("Range", ["zero", f"{name}_size", "one"], f"{name}_pixel")
        op("Sub", ["one", f"{name}_any"], f"{name}_none")
        op("Mul", [f"{name}_none", "far"], f"{name}_far")
        op("Mul", [f"{name}_any", f"{name}_pixel"], f"{name}_hit")
        op("Add", [f"{name}_hit", f"{name}_far"], f"{name}_first_candidates")
        op("ReduceMin", [f"{name}_first_candidates"], f"{name}0", keepdims=0)
        op("Add", [f"{name}_pixel", "one"], f"{name}_pixel_end")
        op("Mul", [f"{name}_any", f"{name}_pixel_end"], f"{name}_end_candidates")
        op("ReduceMax", [f"{name}_end_candidates"], f"{name}1", keepdims=0)
        op("Sub", [f"{name}1", f"{name}0"], f"{name}_extent")
        const(f"k{name}_fraction", KEYPOINTS[:, 0 if name == "x" else 1])
        op("Mul", [f"k{name}_fraction", f"{name}_extent"], f"k{name}_offset")
        op("Add", [f"{name}0", f"k{name}_offset"], f"k{name}")
    const("column", [1, 1, -1, 1], np.int64), const("row", [1, -1, 1, 1], np.int64)
    const("last", [-1], np.int64)
    const("rows1", [-1, 1], np.int64), const("rows4", [-1, 4], np.int64), const("rows10", [-1, 10], np.int64)
    const("pairs_to_10", [0, 0, 0, 10], np.int64)
    scores, boxes, keypoints = [], [], []
    for s in STRIDES:
        # scores: the red fraction of each stride x stride cell, anchors 1.0 and 0.9 of it
        const(f"score_w{s}", np.stack([np.full((1, s, s), 1.0 / s**2), np.full((1, s, s), 0.9 / s**2)]))
        op("Conv", ["red", f"score_w{s}"], f"score_map{s}", strides=[s, s])
        op("Transpose", [f"score_map{s}"], f"score_hwa{s}", perm=[0, 2, 3, 1])
        scores.append(op("Reshape", [f"score_hwa{s}", "rows1"], f"score_{s}"))
        # anchor centres (x = column * s, y = row * s), as insightface lays them out
        const(f"stride{s}", float(s))
        op("Shape", [f"score_map{s}"], f"map_shape{s}")
        for axis, name, shape in ((3, "x", "column"), (2, "y", "row")):
            op("Gather", [f"map_shape{s}", f"axis{axis}"], f"{name}_cells_int{s}", axis=0)
            op("Cast", [f"{name}_cells_int{s}"], f"{name}_cells{s}", to=TensorProto.FLOAT)
            op("Range", ["zero", f"{name}_cells{s}", "one"], f"{name}_cell{s}")
            op("Mul", [f"{name}_cell{s}", f"stride{s}"], f"{name}_centre_flat{s}")
            op("Reshape", [f"{name}_centre_flat{s}", shape], f"{name}_c{s}")
        op("Add", [f"x_c{s}", f"y_c{s}"], f"grid_sum{s}")
        op("Mul", [f"grid_sum{s}", "zero"], f"grid{s}")  # zeros (1, h, w, 1) to broadcast onto
        # box distances (left, top, right, bottom) in stride units
        sides = []
        for side, (a, b) in {"l": (f"x_c{s}", "x0"), "t": (f"y_c{s}", "y0"),
                             "r": ("x1", f"x_c{s}"), "b": ("y1", f"y_c{s}")}.items():
            op("Sub", [a, b], f"{side}_pixels{s}")
            op("Div", [f"{side}_pixels{s}", f"stride{s}"], f"{side}_units{s}")
            sides.append(op("Add", [f"{side}_units{s}", f"grid{s}"], f"{side}{s}"))
        op("Concat", sides * ANCHORS, f"box_hwa{s}", axis=3)
        boxes.append(op("Reshape", [f"box_hwa{s}", "rows4"], f"bbox_{s}"))
        # five keypoints at fixed fractions of the box, (x, y) interleaved, in stride units
        coords = []
        for name in ("x", "y"):
            op("Sub", [f"k{name}", f"{name}_c{s}"], f"k{name}_pixels{s}")
            op("Div", [f"k{name}_pixels{s}", f"stride{s}"], f"k{name}_units{s}")
            op("Add", [f"k{name}_units{s}", f"grid{s}"], f"k{name}_grid{s}")
            coords.append(op("Unsqueeze", [f"k{name}_grid{s}", "last"], f"k{name}_col{s}"))
        op("Concat", coords, f"kps_pairs{s}", axis=4)
        op("Reshape", [f"kps_pairs{s}", "pairs_to_10"], f"kps_hw{s}")
        op("Concat", [f"kps_hw{s}"] * ANCHORS, f"kps_hwa{s}", axis=3)
        keypoints.append(op("Reshape", [f"kps_hwa{s}", "rows10"], f"kps_{s}"))

    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"anchors{s}", width])
               for names, width in ((scores, 1), (boxes, 4), (keypoints, 10)) for name, s in zip(names, STRIDES)]
    image = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "height", "width"])
    model = helper.make_model(helper.make_graph(nodes, "red_square_scrfd", [image], outputs, initializers),
                              opset_imports=[helper.make_opsetid("", 13)], producer_name="bench tests")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def trust(monkeypatch, path):
    """Pin det_10g.onnx's expected sha256 to the test file, as a pinned real hash would be."""
    monkeypatch.setitem(W.KNOWN_WEIGHTS, "insightface_det",
                        dataclasses.replace(W.KNOWN_WEIGHTS["insightface_det"], sha256=W.sha256_file(path)))


@pytest.fixture(scope="module")
def detector_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("insightface")
    path = root / "models" / "buffalo_l" / "det_10g.onnx"
    path.parent.mkdir(parents=True)
    build_red_square_scrfd(path)
    return root, path


@pytest.fixture
def detector_root(detector_file, monkeypatch):
    root, path = detector_file
    monkeypatch.setenv("BENCH_INSIGHTFACE_ROOT", str(root))
    trust(monkeypatch, path)
    return root, path


def background(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Textured frames with no saturated red anywhere (green stays >= 90)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    base = np.stack([60 + xx * 150 // width, 90 + yy * 100 // height, 200 - xx * 100 // width], -1)
    noise = rng.integers(0, 30, (frames, height, width, 3))
    return np.clip(base[None] + noise, 0, 255).astype(np.uint8)


def draw(frames, index, box, colour=RED):
    x0, y0, x1, y1 = box
    frames[index, y0:y1, x0:x1] = colour


@pytest.mark.parametrize("height, width, det_size", [(64, 96, 640), (120, 72, 640), (96, 160, 128)])
def test_detector_returns_the_drawn_box_in_frame_pixels(detector_root, height, width, det_size):
    _, path = detector_root
    frames = background(5, height, width)
    near = (width // 2, height // 4, width // 2 + 20, height // 4 + 16)
    far = (4, height - 26, 28, height - 6)
    draw(frames, 0, near)
    draw(frames, 1, near, BLUE)  # red in BGR order: found only if the channel order were wrong
    draw(frames, 3, far)
    draw(frames, 4, near), draw(frames, 4, far)  # two: one box covering both (the bounding box of all red)
    boxes, record = F.detect_face_boxes(iter([frames[:2], frames[2:]]), det_size=det_size)
    tolerance = 1.0 + width / det_size  # a pixel of the detector's input, plus edge rounding
    assert boxes.shape == (5, 4)
    np.testing.assert_allclose(boxes[0], near, atol=tolerance)
    assert np.isnan(boxes[1]).all() and np.isnan(boxes[2]).all()
    np.testing.assert_allclose(boxes[3], far, atol=tolerance)
    np.testing.assert_allclose(boxes[4], [far[0], near[1], near[2], far[3]], atol=tolerance)
    assert record["sha256"] == W.sha256_file(path) and record["path"] == str(path)
    assert record["settings"]["det_size"] == det_size and record["frames_with_face"] == 3
    assert record["coverage"] == pytest.approx(3 / 5)


def test_detector_loads_through_insightface_routing(detector_root):
    from insightface.model_zoo import SCRFD

    detector = F.FaceDetector()
    assert isinstance(detector._model, SCRFD)
    assert detector._model.use_kps and detector._model.fmc == 3 and detector._model._num_anchors == 2
    frame = background(1, 64, 96)
    draw(frame, 0, (40, 10, 60, 30))
    _, keypoints = detector._model.detect(np.ascontiguousarray(frame[0, ..., ::-1]), max_num=1)
    np.testing.assert_allclose(keypoints[0], [40, 10] + KEYPOINTS * 20, atol=1.5)


@pytest.fixture(scope="module")
def face_videos(tmp_path_factory):
    """GT with a red 'face' square moving right (absent in frames 3 and 7) and a noisy prediction."""
    from bench.video import write_video

    folder = tmp_path_factory.mktemp("face_pair")
    gt = background(12, 64, 96)
    truth = np.full((12, 4), np.nan)
    for t in range(12):
        if t not in (3, 7):
            truth[t] = (10 + 4 * t, 12, 30 + 4 * t, 32)
            draw(gt, t, tuple(int(v) for v in truth[t]))
    rng = np.random.default_rng(1)
    pred = np.clip(gt + rng.normal(0, 8, gt.shape).round(), 0, 255).astype(np.uint8)
    write_video(folder / "gt.mp4", gt, 25)
    write_video(folder / "pred.mp4", pred, 25)
    return folder, truth


def test_cached_detection_runs_the_detector_once(detector_root, face_videos, tmp_path, monkeypatch):
    folder, truth = face_videos
    runs = []
    detect = F.detect_face_boxes
    monkeypatch.setattr(F, "detect_face_boxes", lambda *a, **k: runs.append(1) or detect(*a, **k))
    first, record = F.detect_face_boxes_cached(folder / "gt.mp4", tmp_path)
    np.testing.assert_allclose(first, truth, atol=1.5)  # NaN rows match too
    assert not record["cache_hit"] and record["frames_with_face"] == 10 and len(runs) == 1
    second, record = F.detect_face_boxes_cached(folder / "gt.mp4", tmp_path)
    assert record["cache_hit"] and len(runs) == 1
    np.testing.assert_array_equal(first, second)
    with np.load(record["cache"]) as z:  # the cache file is a valid --face-boxes .npz
        np.testing.assert_array_equal(z["face_boxes"], first)
    F.detect_face_boxes_cached(folder / "gt.mp4", tmp_path, det_size=320)  # other settings: another entry
    assert len(runs) == 2
    with open(record["cache"], "r+b") as f:  # a damaged cache entry is detected again, not trusted
        f.truncate(100)
    third, record = F.detect_face_boxes_cached(folder / "gt.mp4", tmp_path)
    assert not record["cache_hit"] and len(runs) == 3
    np.testing.assert_array_equal(first, third)


def test_corrupt_detector_files_are_weights_errors(detector_file, tmp_path, monkeypatch):
    good = detector_file[1].read_bytes()
    root = tmp_path / "root"
    path = root / "models" / "buffalo_l" / "det_10g.onnx"
    path.parent.mkdir(parents=True)
    path.write_bytes(good[: len(good) // 2])
    # no pinned hash (as shipped): onnxruntime's parse error becomes a WeightsError naming the file
    with pytest.raises(WeightsError, match="cannot be loaded as an ONNX model") as info:
        F.detect_face_boxes(iter([background(1, 32, 32)]), root=root)
    assert "det_10g.onnx" in info.value.message and "place the real file" in info.value.fix
    # a pinned hash catches it before onnxruntime reads it
    trust(monkeypatch, detector_file[1])
    with pytest.raises(WeightsError, match="corrupt, truncated"):
        F.FaceDetector(root)
    # a valid ONNX model that is not a face detector
    monkeypatch.setitem(W.KNOWN_WEIGHTS, "insightface_det",
                        dataclasses.replace(W.KNOWN_WEIGHTS["insightface_det"], sha256=None))
    tensor = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    other = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [tensor],
                                                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])]),
                              opset_imports=[helper.make_opsetid("", 13)])
    other.ir_version = 8
    onnx.save(other, str(path))
    with pytest.raises(WeightsError, match="not an SCRFD face detector"):
        F.FaceDetector(root)
    with pytest.raises(DataError, match="uint8 RGB"):
        F.detect_face_boxes(iter([np.zeros((1, 8, 8), np.uint8)]), root=detector_file[0])


def bench_score(capsys, *args):
    from bench.cli import main

    rc = main(["score", "--json", *map(str, args)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_bench_score_takes_face_boxes_from_the_detector(detector_root, face_videos, tmp_path, capsys):
    folder, _ = face_videos
    _, path = detector_root
    pair = ["--gt", folder / "gt.mp4", "--pred", folder / "pred.mp4", "--metrics", "psnr,fpsnr",
            "--horizons", "0.2", "--window-seconds", "0.2", "--cache-dir", tmp_path]
    rc, out, err = bench_score(capsys, *pair)
    assert rc == 0, err
    result = json.loads(out)
    fpsnr, boxes = result["metrics"]["fpsnr"], result["face_boxes"]
    assert isinstance(fpsnr["value"], float) and fpsnr["face_boxes"] == "detector"
    assert fpsnr["coverage"] == pytest.approx(10 / 12) and fpsnr["frames_with_face"] == 10
    assert boxes["source"] == "detector" and boxes["sha256"] == W.sha256_file(path)
    assert boxes["coverage"] == pytest.approx(10 / 12) and boxes["settings"]["det_size"] == F.DETECTOR_SIZE
    assert boxes["cache_hit"] is False and boxes["cache"].startswith(str(tmp_path / "face_boxes"))
    assert {"name": "insightface_det", "path": str(path), "sha256": boxes["sha256"]} in result["weights"]["fpsnr"]
    assert fpsnr["value"] > result["metrics"]["psnr"]["value"] - 3  # same noise inside and outside the box
    # second run: from the cache, same value
    rc, out, err = bench_score(capsys, *pair)
    again = json.loads(out)
    assert rc == 0 and again["face_boxes"]["cache_hit"] is True
    assert again["metrics"]["fpsnr"]["value"] == fpsnr["value"]
    # the same boxes given as a file score the same
    rc, out, err = bench_score(capsys, *pair, "--face-boxes", boxes["cache"])
    from_file = json.loads(out)
    assert rc == 0 and from_file["face_boxes"]["source"] == "file (ground truth)"
    assert from_file["metrics"]["fpsnr"]["value"] == fpsnr["value"]
    assert from_file["metrics"]["fpsnr"]["face_boxes"] == "file"


def test_bench_score_without_the_detector(face_videos, tmp_path, capsys, monkeypatch):
    folder, _ = face_videos
    root = tmp_path / "empty_root"
    monkeypatch.setenv("BENCH_INSIGHTFACE_ROOT", str(root))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("BENCH_VIDEOMAE_PATH", raising=False)
    monkeypatch.delenv("BENCH_VIDEOMAE_V2_PATH", raising=False)
    pair = ["--gt", folder / "gt.mp4", "--pred", folder / "pred.mp4", "--horizons", "0.2", "--cache-dir", tmp_path]
    # named: an error before scoring, naming the file, where it goes and the alternatives
    rc, out, err = bench_score(capsys, *pair, "--metrics", "psnr,fpsnr")
    assert rc != 0 and out == ""
    assert "det_10g.onnx" in err and str(root / "models" / "buffalo_l") in err
    assert "--face-boxes" in err and "bench doctor" in err
    # default set: skipped with a loud notice
    rc, out, err = bench_score(capsys, *pair)
    assert rc == 0, err
    result = json.loads(out)
    assert result["metrics"]["fpsnr"]["value"] == "n/a (no face boxes)" and result["face_boxes"] is None
    assert "fpsnr SKIPPED" in err and "det_10g.onnx" in err
    assert isinstance(result["metrics"]["psnr"]["value"], float)


def test_bench_score_with_a_broken_detector(detector_file, face_videos, tmp_path, capsys, monkeypatch):
    folder, _ = face_videos
    path = tmp_path / "root" / "models" / "buffalo_l" / "det_10g.onnx"
    path.parent.mkdir(parents=True)
    path.write_bytes(detector_file[1].read_bytes()[:5000])
    monkeypatch.setenv("BENCH_INSIGHTFACE_ROOT", str(tmp_path / "root"))
    pair = ["--gt", folder / "gt.mp4", "--pred", folder / "pred.mp4", "--horizons", "0.2", "--cache-dir", tmp_path]
    rc, out, err = bench_score(capsys, *pair, "--metrics", "psnr,fpsnr")
    assert rc != 0 and "cannot be loaded as an ONNX model" in err and "Traceback" not in err
    rc, out, err = bench_score(capsys, *pair, "--metrics", "psnr,ssim")  # fpsnr not asked for: not touched
    assert rc == 0 and json.loads(out)["face_boxes"] is None


def test_bench_score_when_the_detector_finds_no_face(detector_root, tmp_path, capsys, monkeypatch):
    from bench.video import write_video

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("BENCH_VIDEOMAE_PATH", raising=False)
    write_video(tmp_path / "gt.mp4", background(6, 32, 48), 25)
    pair = ["--gt", tmp_path / "gt.mp4", "--pred", tmp_path / "gt.mp4", "--horizons", "0.2",
            "--cache-dir", tmp_path]
    rc, out, err = bench_score(capsys, *pair, "--metrics", "psnr,fpsnr")
    assert rc != 0 and "found no face" in err
    rc, out, err = bench_score(capsys, *pair)  # default set: skipped loudly
    assert rc == 0, err
    assert json.loads(out)["metrics"]["fpsnr"]["value"] == "n/a (no face found)" and "fpsnr SKIPPED" in err
