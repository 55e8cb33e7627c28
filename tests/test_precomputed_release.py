"""``precomputed`` reading the EverAnimate release's outputs: its side-by-side final mp4 and its per-clip frames."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bench.config import build_config
from bench.runner import run_grid
from bench.video import read_all, write_video
from tests.helpers import synthetic_frames, write_dataset

N = 100  # 4 s: one chunk join (frame 77) with its neighbourhood


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "data", 2, n=N, h=32, w=32)


def run(tmp_path, dataset, **args):
    config = build_config("lab", baselines=[], durations=[4], dataset=str(dataset), results=str(tmp_path / "results"),
                          progress=False, metrics=["psnr", "seam"], methods=["precomputed"],
                          method_args={"precomputed": args}, workers=1)
    out = run_grid(config)
    lines = [json.loads(line) for line in out.scores_file.read_text().splitlines()] if out.records else []
    return out, lines


def test_side_by_side_final_mp4_is_cropped_to_its_rgb_half(tmp_path, dataset):
    folder = tmp_path / "release"
    folder.mkdir()
    for i in range(2):
        rgb = synthetic_frames(N, 32, 32, seed=i)
        pose = np.zeros_like(rgb)
        pose[:, 10:20, 12:14] = 255  # a skeleton-ish stroke on black, as the release draws its pose half
        write_video(folder / f"s{i}.mp4", np.concatenate([rgb, pose], axis=2), 25, lossless=False)
    out, lines = run(tmp_path, dataset, folder=str(folder), layout="side_by_side")
    assert not out.failures, out.failures
    # each rollout is exactly the decoded left half of the release's video
    from bench.store import Rollout

    psnr = [r for r in lines if r["metric"] == "psnr"]
    assert len(psnr) == 2
    for r in psnr:
        store = Rollout(tmp_path / "results", "precomputed", r["rollout_key"], {})
        frames = np.concatenate([f for _, f in store.iter_frames(N)])
        np.testing.assert_array_equal(frames, read_all(folder / f"{r['sample']}.mp4")[:N, :, :32])
    kinds = {a["kind"] for r in lines for a in r["adaptations"]}
    assert {"crop", "lossy_source"} <= kinds
    crop = next(a for r in lines for a in r["adaptations"] if a["kind"] == "crop")
    assert crop["source_width"] == 64 and "64 -> 32" in crop["detail"]
    seam = next(r for r in lines if r["metric"] == "seam")
    assert seam["metric_info"]["chunk_frames"] == 77 and "assumed" in seam["metric_info"]["geometry"]


def test_side_by_side_of_odd_width_is_an_error_naming_the_file(tmp_path, dataset):
    folder = tmp_path / "odd"
    folder.mkdir()
    for i in range(2):
        write_video(folder / f"s{i}.mp4", synthetic_frames(N, 32, 63, seed=i), 25)
    out, _ = run(tmp_path, dataset, folder=str(folder), layout="side_by_side")
    assert len(out.failures) == 2
    message = out.failures[0][2]
    assert str(folder / "s0.mp4") in message and "odd width" in message and "layout=video" in message


def write_release_frames(folder, sample_id, frames, clip=77, overlap=4, n_clips=2):
    """The release's resume folder: frames/clip_NNN_frames.pt, clip c holds output frames from c (clip - overlap)."""
    (folder / sample_id / "frames").mkdir(parents=True)
    for c in range(n_clips):
        start = c * (clip - overlap)
        torch.save({"clip_idx": c, "video_frames": torch.from_numpy(frames[start:start + clip].copy())},
                   folder / sample_id / "frames" / f"clip_{c:03d}_frames.pt")


def test_release_frames_are_assembled_without_the_overlap(tmp_path, dataset):
    folder = tmp_path / "resume"
    for i in range(2):
        # frames 100..149 exist only in the second clip's tail; the first 100 are the ground truth
        write_release_frames(folder, f"s{i}", synthetic_frames(150, 32, 32, seed=i))
    out, lines = run(tmp_path, dataset, folder=str(folder), layout="release_frames", chunk_frames=77,
                     overlap_frames=4)
    assert not out.failures, out.failures
    # lossless and in the right order: frames 77..99 come from clip 1 after its 4 overlap frames
    assert [r["value"] for r in lines if r["metric"] == "psnr"] == [100.0, 100.0]
    kinds = {a["kind"] for r in lines for a in r["adaptations"]}
    assert "release_frames" in kinds
    seam = next(r for r in lines if r["metric"] == "seam")
    assert seam["value"] == 0.0 and seam["metric_info"]["geometry"].startswith("given")


def test_release_frames_with_the_wrong_overlap_do_not_match(tmp_path, dataset):
    folder = tmp_path / "resume"
    for i in range(2):
        write_release_frames(folder, f"s{i}", synthetic_frames(150, 32, 32, seed=i))
    out, lines = run(tmp_path, dataset, folder=str(folder), layout="release_frames", overlap_frames=0)
    assert not out.failures
    assert all(r["value"] < 100 for r in lines if r["metric"] == "psnr")


def test_bad_release_frame_files_are_errors_naming_them(tmp_path, dataset):
    folder = tmp_path / "resume"
    write_release_frames(folder, "s0", synthetic_frames(150, 32, 32, seed=0))
    (folder / "s0" / "frames" / "clip_001_frames.pt").unlink()
    torch.save({"clip_idx": 2, "video_frames": torch.zeros(77, 32, 32, 3)},  # float, not uint8
               folder / "s0" / "frames" / "clip_002_frames.pt")
    write_release_frames(folder, "s1", synthetic_frames(150, 32, 32, seed=1), n_clips=1)
    torch.save({"clip_idx": 1, "video_frames": torch.zeros(77, 32, 32, 3)},
               folder / "s1" / "frames" / "clip_001_frames.pt")
    out, _ = run(tmp_path, dataset, folder=str(folder), layout="release_frames")
    messages = dict((sample, message) for _, sample, message in out.failures)
    assert "clips [1] are missing" in messages["s0"]
    assert "clip_001_frames.pt" in messages["s1"] and "uint8 (T, H, W, 3)" in messages["s1"]


def test_unknown_layout_is_a_config_error(tmp_path, dataset):
    from bench.errors import ConfigError

    with pytest.raises(ConfigError, match="side_by_side"):
        run(tmp_path, dataset, folder=str(tmp_path), layout="sbs")
