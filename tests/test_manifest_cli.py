"""`bench manifest from-wan / from-videos` end to end, and every bad input a clear error with nothing written."""
from __future__ import annotations

import json
import shutil

import pytest

from bench.cli import main
from bench.lab.render import render_sample
from bench.lab.spec import LabSpec
from bench.manifest import export_wan_layout, read_manifest, validate_manifest
from bench.video import write_video
from tests.test_pose_estimation import make_detector, make_heatmap_pose


@pytest.fixture(scope="module")
def lab_clips(tmp_path_factory):
    """Two lab clips of 4 s exported to Wan-Animate's layout, with their ground truths in one folder."""
    root = tmp_path_factory.mktemp("wan")
    gt_dir = root / "gt"
    gt_dir.mkdir()
    samples = []
    for seed in (3, 4):
        sample = render_sample(LabSpec(seed=seed, n_frames=100), root / "lab", sample_id=f"clip{seed}",
                               progress=False)
        export_wan_layout(sample, root / "preprocessed" / f"clip{seed}")
        shutil.copyfile(sample.path("gt"), gt_dir / f"clip{seed}.mp4")
        samples.append(sample)
    return root, samples


def bench(capsys, *args):
    rc = main([str(a) for a in args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_lab_clips_in_wan_layout_become_a_manifest_that_validates_and_runs(lab_clips, tmp_path, capsys):
    root, samples = lab_clips
    out = tmp_path / "data" / "mine.jsonl"
    rc, text, err = bench(capsys, "manifest", "from-wan", root / "preprocessed", "--gt-dir", root / "gt",
                          "--out", out, "--no-progress")
    assert rc == 0, err
    assert "wrote" in text and "validat" in text and out.exists()
    assert not list(out.parent.glob(".*building*"))
    manifest = read_manifest(out)
    assert [r["id"] for r in manifest.records] == ["clip3", "clip4"]
    assert manifest.records[0]["n_frames"] == 100 and manifest.records[0]["source"]["kind"] == "wan_layout"

    rc, text, _ = bench(capsys, "validate", out)
    assert rc == 0 and "0 error(s)" in text

    results = tmp_path / "results"
    rc, text, err = bench(capsys, "run", "--dataset", out, "--methods", "static_reference", "--durations", "4",
                          "--metrics", "psnr", "seam", "--workers", "1", "--results", results, "--no-progress",
                          "--experiment", "mine")
    assert rc == 0, err
    lines = [json.loads(line) for line in (results / "scores" / "mine" / "scores.jsonl").read_text().splitlines()]
    assert {(r["sample"], r["metric"]) for r in lines} == {(s, m) for s in ("clip3", "clip4") for m in ("psnr", "seam")}
    seam = [r for r in lines if r["metric"] == "seam"]
    # a still reference: no change at the join where the ground truth moves -> below zero
    assert all(r["value"] < 0 for r in seam)
    assert seam[0]["metric_info"]["chunk_frames"] == 77 and seam[0]["metric_info"]["overlap_frames"] == 4
    assert seam[0]["metric_info"]["geometry"] == "the run's chunk plan" and seam[0]["metric_info"]["joins"] == 1


def test_every_bad_wan_input_is_reported_at_once_and_nothing_is_written(lab_clips, tmp_path, capsys):
    root, samples = lab_clips
    work = tmp_path / "wan"
    shutil.copytree(root / "preprocessed", work)
    for name in ("missing", "fps", "short"):
        export_wan_layout(samples[0], work / name)
    gts = {p.name: root / "gt" / "clip3.mp4" for p in work.iterdir()}
    gts["clip4"] = root / "gt" / "clip4.mp4"
    (work / "missing" / "src_face.mp4").unlink()
    fps_gt = tmp_path / "fps30.mp4"
    write_video(fps_gt, samples[0].gt(0, 100), 30)
    gts["fps"] = fps_gt
    short_pose = work / "short" / "src_pose.mp4"
    write_video(short_pose, samples[0].pose(0, 60), 25)
    names = sorted(gts)
    out = tmp_path / "bad.jsonl"
    rc, text, err = bench(capsys, "manifest", "from-wan", *[work / n for n in names], "--gt",
                          *[gts[n] for n in names], "--out", out, "--no-progress")
    assert rc != 0
    assert f"missing {work / 'missing' / 'src_face.mp4'}" in err
    assert f"{fps_gt} is 30 fps" in err and "ffmpeg -i GT.mp4 -r 25" in err
    assert f"{short_pose} has 60 frames, shorter than the ground truth" in err and "-frames:v 60" in err
    assert "clip3:" not in err and "clip4:" not in err  # the good clips are not blamed
    assert not out.exists() and not list(tmp_path.glob(".*building*"))


def test_raw_videos_through_onnx_models_and_their_bad_inputs(lab_clips, tmp_path, capsys):
    root, samples = lab_clips
    det, pose = make_detector(tmp_path / "det.onnx"), make_heatmap_pose(tmp_path / "pose.onnx")
    video = tmp_path / "raw" / "dance.mp4"
    write_video(video, samples[0].gt(0, 30), 25)
    out = tmp_path / "out" / "raw.jsonl"
    # the detector given as the pose model: an error naming the file before anything is written
    rc, _, err = bench(capsys, "manifest", "from-videos", video, "--detector", det, "--pose", det, "--out", out,
                       "--face-size", "16", "--no-progress")
    assert rc != 0 and f"{det} is not a pose model" in err and "fix:" in err
    assert not out.exists() and not (tmp_path / "out" / "dance").exists()
    # a video at the wrong fps and a missing one: both named, before any model runs
    wrong = tmp_path / "raw" / "fast.mp4"
    write_video(wrong, samples[0].gt(0, 30), 30)
    rc, _, err = bench(capsys, "manifest", "from-videos", video, wrong, tmp_path / "nope.mp4", "--detector", det,
                       "--pose", pose, "--out", out, "--no-progress")
    assert rc != 0 and f"{wrong} is 30 fps" in err and f"video not found: {tmp_path / 'nope.mp4'}" in err
    assert not out.exists()
    # good input
    rc, text, err = bench(capsys, "manifest", "from-videos", video, "--detector", det, "--pose", pose, "--out", out,
                          "--face-size", "16", "--no-progress")
    assert rc == 0, err
    assert [p for p in validate_manifest(out) if p.severity == "error"] == []
    record = read_manifest(out).records[0]
    assert record["id"] == "dance" and (tmp_path / "out" / "dance" / "keypoints.npz").exists()
    assert not list((tmp_path / "out").glob(".*building*"))


def test_validate_reports_missing_files_even_with_a_wrong_schema_line(lab_clips, tmp_path, capsys):
    root, _ = lab_clips
    out = tmp_path / "m.jsonl"
    assert bench(capsys, "manifest", "from-wan", root / "preprocessed", "--gt-dir", root / "gt", "--out", out,
                 "--no-progress", "--quick")[0] == 0
    header, *records = out.read_text().splitlines()
    record = json.loads(records[0])
    record["schema"] = "bench.sample/0"
    record["files"]["gt"]["path"] = "does/not/exist.mp4"
    for first in (json.dumps({**json.loads(header), "schema": "bench.manifest/0"}), None):
        lines = [first, json.dumps(record)] if first else [json.dumps(record)]
        out.write_text("\n".join(lines) + "\n")
        problems = validate_manifest(out)
        fields = {p.field for p in problems}
        assert "schema" in fields and any(p.field == "gt" and "file missing" in p.message for p in problems)
        assert any(p.field == "header" for p in problems)
    rc, text, _ = bench(capsys, "validate", out)
    assert rc == 1 and "does/not/exist.mp4" in text


def test_manifest_needs_a_source_and_a_jsonl_name(tmp_path, capsys):
    rc, _, err = bench(capsys, "manifest")
    assert rc != 0 and "from-wan" in err
    rc, _, err = bench(capsys, "manifest", "from-wan", tmp_path, "--gt-dir", tmp_path, "--out", tmp_path / "m.json")
    assert rc != 0 and ".jsonl" in err
