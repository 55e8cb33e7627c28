"""The seam metric: chunk joins with injected jumps are detected, smooth videos are not."""
from __future__ import annotations

import json

import numpy as np
import pytest
from skimage import data

from bench.errors import ConfigError
from bench.metrics import DEFAULT_METRICS, get_metric_class
from bench.metrics.base import FrameBatch
from bench.metrics.seam import FLAG_THRESHOLD, HALF_WINDOW, Seam, frame_changes, join_frames

N = 170  # joins at 77 and 150 (+ 8 frames of neighbourhood each)


def sliding(frames: int = N, height: int = 48, width: int = 64, offsets=None) -> np.ndarray:
    """A photograph seen through a window sliding one pixel per frame (plus an optional per-frame offset)."""
    image = data.astronaut()
    offsets = np.zeros(frames, int) if offsets is None else offsets
    return np.stack([image[40 + t + o:40 + t + o + height, 60 + t:60 + t + width] for t, o in zip(range(frames), offsets)])


def chunk_index(frames: int = N, chunk: int = 77, overlap: int = 4) -> np.ndarray:
    joins = join_frames(frames, chunk, overlap)
    return np.searchsorted(joins, np.arange(frames), side="right")


@pytest.fixture(scope="module")
def videos():
    gt = sliding()
    rng = np.random.default_rng(0)
    k = chunk_index()
    # injected jumps: every chunk is shifted 4 px and re-coloured by 12 levels against the one before
    jump = sliding(offsets=4 * (k % 2)).astype(np.int16) + (12 * (k % 2))[:, None, None, None]
    jump = np.clip(jump, 0, 255).astype(np.uint8)
    # smooth: the same content with per-frame noise and a slow colour drift over the whole video
    smooth = gt.astype(np.float64) + rng.normal(0, 3, gt.shape) + np.linspace(0, 15, N)[:, None, None, None]
    smooth = np.clip(np.round(smooth), 0, 255).astype(np.uint8)
    return gt, jump, smooth


def score(gt, pred, batch=32, **geometry) -> Seam:
    metric = Seam(horizons=[len(gt)])
    if geometry:
        metric.set_chunk_geometry(**geometry)
    for start in range(0, len(gt), batch):
        metric.update(FrameBatch(start, gt[start:start + batch], pred[start:start + batch]))
    return metric


def test_join_geometry():
    assert join_frames(400, 77, 4).tolist() == [77, 150, 223, 296, 369]
    assert join_frames(77, 77, 4).tolist() == []
    assert join_frames(100, 50, 0).tolist() == [50]
    with pytest.raises(ConfigError, match="impossible"):
        join_frames(100, 4, 4)


def test_registered_as_a_default_lower_is_better_metric():
    cls = get_metric_class("seam")
    assert cls is Seam and not cls.higher_is_better and "seam" in DEFAULT_METRICS


def test_frame_changes_streamed_equal_whole():
    gt = sliding(20)
    whole = frame_changes(gt, None)
    parts = np.concatenate([frame_changes(gt[:7], None), frame_changes(gt[7:], gt[6])])
    np.testing.assert_array_equal(whole, parts)
    assert np.isnan(whole[0])
    expected = np.abs(gt[5].astype(np.int64) - gt[4]).mean()
    assert whole[5] == pytest.approx(expected, abs=1e-12)


def test_jumps_are_detected_and_smooth_videos_are_not(videos):
    gt, jump, smooth = videos
    exact = score(gt, gt).series()
    np.testing.assert_array_equal(exact.values, [0.0, 0.0])  # a perfect copy: no excess at either join
    np.testing.assert_array_equal(exact.last_frame, [77 + HALF_WINDOW, 150 + HALF_WINDOW])

    jumped, smoothed = score(gt, jump), score(gt, smooth)
    j, s = jumped.series().values, smoothed.series().values
    assert (j > 2 * FLAG_THRESHOLD).all(), j
    assert (np.abs(s) < 0.3).all(), s
    assert jumped.info()["joins_flagged"] == 2 and smoothed.info()["joins_flagged"] == 0
    assert jumped.info()["chunk_frames"] == 77 and jumped.info()["overlap_frames"] == 4


def test_streaming_does_not_change_values(videos):
    gt, jump, _ = videos
    one = score(gt, jump, batch=N).series().values
    for batch in (1, 13, 50):
        np.testing.assert_allclose(score(gt, jump, batch=batch).series().values, one, rtol=0, atol=1e-12)


def test_the_wrong_geometry_sees_no_seam(videos):
    gt, jump, _ = videos
    # the jumps sit at 77 and 150: joins assumed every 60 frames (at 60 and 120) miss them
    values = score(gt, jump, chunk_frames=60, overlap_frames=0).series().values
    assert len(values) == 2 and (values < FLAG_THRESHOLD).all(), values


def test_a_still_prediction_is_not_a_seam(videos):
    gt, _, _ = videos
    still = np.repeat(gt[:1], N, axis=0)
    values = score(gt, still).series().values
    assert (values < 0).all() and values == pytest.approx([-1.0, -1.0], abs=0.3)


def test_pair_scorer_prints_a_table_with_the_seam(videos, tmp_path, capsys):
    from bench.cli import main
    from bench.video import write_video

    gt, jump, smooth = videos
    for name, frames in (("gt", gt), ("jump", jump), ("smooth", smooth)):
        write_video(tmp_path / f"{name}.mp4", frames, 25)
    values = {}
    for name in ("jump", "smooth"):
        out = tmp_path / f"{name}.json"
        rc = main(["score", "--gt", str(tmp_path / "gt.mp4"), "--pred", str(tmp_path / f"{name}.mp4"),
                   "--metrics", "psnr,seam", "--output", str(out)])
        table = capsys.readouterr().out
        assert rc == 0
        row = next(line for line in table.splitlines() if line.startswith("Seam"))
        result = json.loads(out.read_text())
        values[name] = result["metrics"]["seam"]["value"]
        assert f"{values[name]:.3f}" in row and "lower" in row and "77/4" in row
        assert result["metrics"]["seam"]["windows"] and "{" not in table  # a table, not JSON
    assert values["jump"] > 2 and abs(values["smooth"]) < 0.3, values
    # --json prints the document; the geometry can be given
    rc = main(["score", "--json", "--gt", str(tmp_path / "gt.mp4"), "--pred", str(tmp_path / "jump.mp4"),
               "--metrics", "seam", "--seam-chunk", "60", "--seam-overlap", "0"])
    result = json.loads(capsys.readouterr().out)
    assert rc == 0 and result["metrics"]["seam"]["chunk_frames"] == 60
    assert result["metrics"]["seam"]["value"] < FLAG_THRESHOLD
