"""Pixel metrics, F-PSNR / BG-PSNR, drift curves and the pair scorer (no weights needed)."""
from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from skimage import data
from skimage.filters import gaussian

from bench.errors import BenchError, DataError
from bench.metrics import DEFAULT_METRICS, METRICS, get_metric_class
from bench.metrics.base import PROTOCOL_VERSION, FrameBatch, Series
from bench.metrics.drift import drift_slope, merge_series, summarize_series, window_means
from bench.metrics.face import BackgroundPSNR, FacePSNR, face_boxes_from_keypoints
from bench.metrics.pixel import PSNR, SSIM, psnr_per_frame, ssim_per_frame


def moving_video(image: np.ndarray, frames: int, height: int, width: int, step=(2, 3)) -> np.ndarray:
    """A real photograph turned into a video: a crop window sliding across it."""
    return np.stack([image[t * step[0]:t * step[0] + height, t * step[1]:t * step[1] + width] for t in range(frames)])


def blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    if sigma == 0:
        return frames.copy()
    out = [gaussian(f, sigma=sigma, channel_axis=-1, preserve_range=True) for f in frames]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def noisy(frames: np.ndarray, std: float, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.round(frames + rng.normal(0, std, frames.shape)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def astronaut_video():
    return moving_video(data.astronaut(), 6, 96, 128)


# ------------------------------------------------------------------------------------------ PSNR
def test_psnr_known_mse_and_cap():
    gt = np.full((3, 8, 8, 3), 100, np.uint8)
    pred = gt.copy()
    pred[0] += 5  # MSE 25
    pred[1, :4] += 10  # MSE 50 (half the pixels off by 10)
    values = psnr_per_frame(gt, pred)
    assert values[0] == pytest.approx(10 * np.log10(255**2 / 25), abs=1e-12)
    assert values[1] == pytest.approx(10 * np.log10(255**2 / 50), abs=1e-12)
    assert values[2] == 100.0  # identical frame: capped


def test_psnr_no_uint8_wraparound():
    gt = np.zeros((1, 4, 4, 3), np.uint8)
    pred = np.full_like(gt, 255)
    assert psnr_per_frame(gt, pred)[0] == pytest.approx(0.0, abs=1e-12)  # MSE 255^2, not wrapped to 1


# ------------------------------------------------------------------------------------------ SSIM
def test_ssim_identical_is_one(astronaut_video):
    np.testing.assert_allclose(ssim_per_frame(astronaut_video, astronaut_video), 1.0, atol=1e-6)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_ssim_matches_torchmetrics_gaussian_ssim(name):
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    video = moving_video(getattr(data, name)(), 2, 72, 96)
    for pred in (noisy(video, 10.0), blur(video, 1.5)):
        ours = ssim_per_frame(video, pred)
        ref = [tm_ssim(torch.from_numpy(p[None]).permute(0, 3, 1, 2).double(),
                       torch.from_numpy(g[None]).permute(0, 3, 1, 2).double(), data_range=255.0,
                       gaussian_kernel=True, sigma=1.5, kernel_size=11, k1=0.01, k2=0.03).item()
               for g, p in zip(video, pred)]
        np.testing.assert_allclose(ours, ref, atol=2e-6, rtol=0)


def test_ssim_extreme_contrast_precision():
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    rng = np.random.default_rng(1)
    gt = (rng.random((2, 64, 64, 3)) > 0.5).astype(np.uint8) * 255  # black / white: worst case for float32
    pred = noisy(gt, 20.0)
    ref = [tm_ssim(torch.from_numpy(p[None]).permute(0, 3, 1, 2).double(),
                   torch.from_numpy(g[None]).permute(0, 3, 1, 2).double(), data_range=255.0).item()
           for g, p in zip(gt, pred)]
    np.testing.assert_allclose(ssim_per_frame(gt, pred), ref, atol=5e-6, rtol=0)


@pytest.mark.parametrize("corrupt,levels", [(blur, [0.5, 1.0, 2.0, 4.0]), (noisy, [2.0, 5.0, 10.0, 20.0]),
                                            ("shift", [2, 6, 12, 24])])
def test_monotonic_response(astronaut_video, corrupt, levels):
    video = astronaut_video
    if corrupt == "shift":  # colour shift of the red channel
        def corrupt(v, s):
            out = v.astype(np.int16)
            out[..., 0] += s
            return np.clip(out, 0, 255).astype(np.uint8)
    psnrs = [psnr_per_frame(video, corrupt(video, s)).mean() for s in levels]
    ssims = [ssim_per_frame(video, corrupt(video, s)).mean() for s in levels]
    assert all(a > b for a, b in zip(psnrs, psnrs[1:])), psnrs
    assert all(a > b for a, b in zip(ssims, ssims[1:])), ssims


def test_streamed_equals_whole(astronaut_video):
    pred = noisy(astronaut_video, 8.0)
    for cls in (PSNR, SSIM):
        whole, streamed = cls(), cls()
        whole.update(FrameBatch(0, astronaut_video, pred))
        for start in range(0, len(pred), 4):  # uneven chunks: 4 + 2
            streamed.update(FrameBatch(start, astronaut_video[start:start + 4], pred[start:start + 4]))
        np.testing.assert_array_equal(whole.series().values, streamed.series().values)
        np.testing.assert_array_equal(whole.series().last_frame, np.arange(len(pred)))
        # merge across "processes"
        a, b = cls(), cls()
        a.update(FrameBatch(3, astronaut_video[3:], pred[3:]))
        b.update(FrameBatch(0, astronaut_video[:3], pred[:3]))
        a.merge(b)
        np.testing.assert_array_equal(a.series().values, whole.series().values)


def test_bad_frames_are_data_errors(astronaut_video):
    bad = astronaut_video.astype(np.float32)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN/inf"):
        FrameBatch(0, astronaut_video, bad)
    with pytest.raises(DataError, match="differ"):
        FrameBatch(0, astronaut_video, astronaut_video[:, :-1])
    with pytest.raises(DataError, match="uint8"):
        FrameBatch(0, astronaut_video, astronaut_video.astype(np.float32))


# ------------------------------------------------------------------------------------------ F-PSNR, BG-PSNR
def test_face_psnr_uses_gt_box_and_reports_coverage(astronaut_video):
    gt = astronaut_video
    pred = gt.copy()
    pred[:, 10:20, 30:50] = noisy(gt[:, 10:20, 30:50], 10.0)  # damage inside the face box only
    boxes = np.tile([30.0, 10.0, 50.0, 20.0], (len(gt), 1))
    boxes[1] = np.nan  # no GT face in frame 1
    metric = FacePSNR()
    metric.update(FrameBatch(0, gt, pred, face_boxes=boxes))
    values = metric.series().values
    assert np.isnan(values[1])
    expected = psnr_per_frame(gt[:, 10:20, 30:50], pred[:, 10:20, 30:50])
    np.testing.assert_allclose(values[[0, 2, 3, 4, 5]], expected[[0, 2, 3, 4, 5]], rtol=0, atol=1e-12)
    assert metric.info()["coverage"] == pytest.approx(5 / 6)
    assert np.nanmean(values) < psnr_per_frame(gt, pred).mean()  # face damage weighs more inside the box


def test_face_boxes_from_keypoints_scaled():
    pts = np.array([[[10, 20, 1.0], [30, 20, 1.0], [20, 40, 1.0]], [[0, 0, 0.0], [1, 1, 0.0], [2, 2, 0.0]]])
    boxes = face_boxes_from_keypoints(pts)
    np.testing.assert_allclose(boxes[0], [20 - 13, 30 - 13, 20 + 13, 30 + 13])
    assert np.isnan(boxes[1]).all()


def test_background_psnr_ignores_person(astronaut_video):
    gt = astronaut_video
    masks = np.zeros(gt.shape[:3], bool)
    masks[:, 20:80, 40:100] = True
    pred = gt.copy()
    pred[masks] = 0  # destroy the person only
    metric = BackgroundPSNR()
    metric.update(FrameBatch(0, gt, pred, masks=masks))
    np.testing.assert_array_equal(metric.series().values, 100.0)
    pred2 = noisy(gt, 5.0)
    metric.reset()
    metric.update(FrameBatch(0, gt, pred2, masks=masks))
    bg = ~masks[0]
    diff = gt[0][bg].astype(np.float64) - pred2[0][bg]
    assert metric.series().values[0] == pytest.approx(10 * np.log10(255**2 / np.mean(diff**2)), abs=1e-10)


# ------------------------------------------------------------------------------------------ drift
def test_windows_and_slope_are_exact_for_a_linear_decay():
    fps, n = 25, 2250
    frames = np.arange(n)
    series = Series(frames, 30.0 - 2.0 * frames / fps / 60.0)  # -2 dB per minute
    windows = window_means(series, 125, n)
    assert len(windows) == 18 and windows[-1]["stop"] == n
    assert drift_slope(windows, fps) == pytest.approx(-2.0, abs=1e-9)
    summary = summarize_series(series, fps=fps, n_frames=n, horizons=(250, 2250))
    assert summary["horizons"]["250"]["value"] == pytest.approx(30.0 - 2.0 * (124.5 / 25 / 60), abs=1e-9)
    assert summary["drift_slope_per_min"] == pytest.approx(-2.0, abs=1e-9)
    parts = merge_series([Series(frames[1000:], series.values[1000:]), Series(frames[:1000], series.values[:1000])])
    np.testing.assert_array_equal(parts.values, series.values)


def test_windows_skip_uncovered_values():
    series = Series(np.arange(10), np.array([1, 1, np.nan, np.nan, np.nan, 3, 3, 3, 3, 3], float))
    w = window_means(series, 5, 10)
    assert w[0]["value"] == 1.0 and w[0]["count"] == 2 and w[1]["value"] == 3.0


# ------------------------------------------------------------------------------------------ registry
def test_registry_is_lazy_and_complete():
    out = subprocess.run([sys.executable, "-c", "import sys, bench.metrics; print('torch' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert set(DEFAULT_METRICS) == set(METRICS)
    for name in ("psnr", "ssim", "fpsnr", "bgpsnr"):
        assert get_metric_class(name).name == name
    with pytest.raises(BenchError, match="lpips"):
        get_metric_class("lpip")


# ------------------------------------------------------------------------------------------ pair scorer
def _args(gt, pred, **kw):
    base = dict(gt=str(gt), pred=str(pred), metrics="psnr,ssim", face_boxes=None, masks=None, truncate=False,
                resize=False, allow_fps_mismatch=False, horizons="1,90", window_seconds=0.5, chunk_frames=7,
                device="cpu", videomae_path=None, output=None, json=True)
    base.update(kw)
    return SimpleNamespace(**base)


@pytest.fixture(scope="module")
def video_pair(tmp_path_factory):
    from bench.video import write_video

    folder = tmp_path_factory.mktemp("pair")
    gt = moving_video(data.coffee(), 30, 64, 96)
    pred = noisy(gt, 6.0)
    masks = np.zeros(gt.shape, np.uint8)
    masks[:, 10:50, 20:60] = 255
    write_video(folder / "gt.mp4", gt, 25)
    write_video(folder / "pred.mp4", pred, 25)
    write_video(folder / "short.mp4", pred[:20], 25)
    write_video(folder / "masks.mp4", masks, 25)
    write_video(folder / "small.mp4", pred[:, :32, :48], 25)
    boxes = np.tile([20.0, 5.0, 60.0, 40.0], (30, 1))
    boxes[::3] = np.nan
    np.save(folder / "boxes.npy", boxes)
    (folder / "corrupt.mp4").write_bytes((folder / "gt.mp4").read_bytes()[:3000])
    return folder, gt, pred


def test_pair_scorer_json_matches_direct_metrics(video_pair, capsys):
    from bench.metrics.pair import main

    folder, gt, pred = video_pair
    rc = main(_args(folder / "gt.mp4", folder / "pred.mp4", metrics="psnr,ssim,fpsnr,bgpsnr",
                    face_boxes=str(folder / "boxes.npy"), masks=str(folder / "masks.mp4")))
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["protocol"] == PROTOCOL_VERSION
    assert result["frames_scored"] == 30 and result["adaptations"] == []
    assert result["metrics"]["psnr"]["value"] == pytest.approx(psnr_per_frame(gt, pred).mean(), abs=1e-9)
    assert result["metrics"]["ssim"]["value"] == pytest.approx(ssim_per_frame(gt, pred).mean(), abs=1e-9)
    assert result["metrics"]["fpsnr"]["coverage"] == pytest.approx(20 / 30)
    assert len(result["metrics"]["psnr"]["windows"]) == 3  # 0.5 s windows of 12.5 -> 12 frames
    assert set(result["metrics"]["psnr"]["horizons"]) == {"25", "30"}
    assert "drift_slope_per_min" in result["metrics"]["bgpsnr"]


def test_pair_scorer_bad_inputs(video_pair, capsys):
    from bench.metrics.pair import main

    folder, gt, pred = video_pair
    assert main(_args(folder / "gt.mp4", folder / "short.mp4")) != 0
    assert "frame counts differ" in capsys.readouterr().err
    assert main(_args(folder / "gt.mp4", folder / "small.mp4")) != 0
    assert "--resize" in capsys.readouterr().err
    assert main(_args(folder / "gt.mp4", folder / "corrupt.mp4")) != 0
    capsys.readouterr()
    assert main(_args(folder / "gt.mp4", folder / "pred.mp4", metrics="fpsnr")) != 0  # asked for, no boxes
    assert "--face-boxes" in capsys.readouterr().err
    nan_boxes = folder / "nan_boxes.json"
    nan_boxes.write_text(json.dumps([None] * 30))
    assert main(_args(folder / "gt.mp4", folder / "pred.mp4", metrics="fpsnr", face_boxes=str(nan_boxes))) != 0
    assert "cover no frame" in capsys.readouterr().err


def test_pair_scorer_records_adaptations(video_pair, capsys):
    from bench.metrics.pair import main

    folder, gt, pred = video_pair
    assert main(_args(folder / "gt.mp4", folder / "short.mp4", truncate=True)) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["adaptations"][0]["kind"] == "truncate" and result["frames_scored"] == 20
    assert main(_args(folder / "gt.mp4", folder / "small.mp4", resize=True, metrics="psnr")) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["adaptations"][0]["kind"] == "resize" and result["adaptations"][0]["to"] == [64, 96]


def test_pair_scorer_default_set_skips_missing_weights_loudly(video_pair, capsys, tmp_path, monkeypatch):
    from bench.metrics.pair import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("BENCH_VIDEOMAE_PATH", raising=False)
    folder, gt, pred = video_pair
    assert main(_args(folder / "gt.mp4", folder / "pred.mp4", metrics=None)) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    for name in ("lpips", "fid", "vmae_paired", "vmae_fd"):
        assert result["metrics"][name]["value"] == "n/a (no weights)"
        assert f"{name} SKIPPED" in captured.err
    assert result["metrics"]["fpsnr"]["value"] == "n/a (no face boxes)"
    assert isinstance(result["metrics"]["psnr"]["value"], float)
    # asked for by name: an error before any scoring, naming the file and where it goes
    assert main(_args(folder / "gt.mp4", folder / "pred.mp4", metrics="psnr,lpips")) != 0
    err = capsys.readouterr().err
    assert "alexnet-owt-7be5be79.pth" in err and str(tmp_path / "torch") in err


def test_person_room_squared_error_splits_the_frame_error_by_the_mask():
    from bench.metrics.face import person_room_squared_error

    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    pred = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    person = np.zeros((3, 8, 8), bool)
    person[:, 2:5, 3:6] = True
    err = np.square(gt.astype(np.int64) - pred.astype(np.int64)).sum(-1)
    assert person_room_squared_error(gt, pred, person) == (
        int(err[person].sum()), int(person.sum()) * 3, int(err[~person].sum()), int((~person).sum()) * 3)
