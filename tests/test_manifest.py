"""Manifests: round trip, fingerprint, validation reporting every bad input at once, builders."""
from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest

from bench.errors import DataError
from bench.lab.render import render_sample
from bench.lab.spec import LabSpec
from bench.manifest import (build_from_wan_layout, export_wan_layout, fingerprint, load_manifest, read_manifest,
                            sample_record, validate_main, validate_manifest, write_manifest, add_validate_arguments)
from bench.sample import sha256_file
from bench.video import read_all, write_video


@pytest.fixture(scope="module")
def lab_sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    return render_sample(LabSpec(seed=21, n_frames=40), root, sample_id="lab-21", progress=False)


def _copy_manifest(sample, folder, sid="s0"):
    """A samples manifest in ``folder`` listing a private copy of the sample's files."""
    data = folder / sid
    shutil.copytree(sample.base, data)
    from bench.sample import FileSample

    record = sample_record(FileSample.from_folder(data), folder)
    record["id"] = sid
    return record


def test_round_trip_and_fingerprint(tmp_path, lab_sample):
    record = _copy_manifest(lab_sample, tmp_path)
    path = write_manifest(tmp_path / "m.jsonl", [record])
    header = json.loads(path.read_text().splitlines()[0])
    assert header["schema"] == "bench.manifest/1" and header["fingerprint"] == fingerprint([record])
    samples = load_manifest(path)
    assert samples[0].id == "s0" and samples[0].content_hash == lab_sample.content_hash
    np.testing.assert_array_equal(samples[0].gt(0, 5), lab_sample.gt(0, 5))
    assert validate_manifest(path) == []


def test_edits_and_malformed_lines_are_caught(tmp_path, lab_sample):
    record = _copy_manifest(lab_sample, tmp_path)
    path = write_manifest(tmp_path / "m.jsonl", [record])
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1].replace('"n_frames":40', '"n_frames":41')]) + "\n")
    with pytest.raises(DataError) as err:
        read_manifest(path)
    assert "fingerprint" in str(err.value)
    path.write_text("\n".join([lines[0], lines[1], "{not json"]) + "\n")
    problems = validate_manifest(path)
    assert any("line 3" in p.field and "malformed" in p.message for p in problems)
    assert not path.with_name("m.jsonl.partial").exists()


def test_validate_reports_every_problem_at_once(tmp_path, lab_sample):
    records = [_copy_manifest(lab_sample, tmp_path, f"s{i}") for i in range(7)]
    # s0 stays good.  s1: a file is missing.  s2: a file changed (hash mismatch).
    (tmp_path / "s1" / "face.mp4").unlink()
    (tmp_path / "s2" / "ref_001.png").write_bytes((tmp_path / "s2" / "ref_000.png").read_bytes())
    # s3: truncated ground truth (hash updated, so only the length problem remains)
    gt = read_all(tmp_path / "s3" / "gt.mp4")
    write_video(tmp_path / "s3" / "gt.mp4", gt[:30], 25)
    # s4: pose at the wrong fps and size
    write_video(tmp_path / "s4" / "pose.mp4", np.zeros((40, 32, 32, 3), np.uint8), 30)
    # s5: keypoints out of frame and missing
    kp = dict(np.load(tmp_path / "s5" / "keypoints.npz"))
    kp["body"][3, 2] = [500.0, 10.0, 1.0]
    kp["body"][4, 3] = [np.nan, np.nan, 1.0]
    np.savez(tmp_path / "s5" / "keypoints.npz", **kp)
    # s6: an unreadable video (garbage bytes)
    (tmp_path / "s6" / "masks.mp4").write_bytes(b"\x00garbage" * 100)
    for i in (3, 4, 5, 6):
        for name in ("gt", "pose", "keypoints", "masks"):
            records[i]["files"][name]["sha256"] = sha256_file(tmp_path / f"s{i}" / records[i]["files"][name]["path"].split("/")[-1])
    path = write_manifest(tmp_path / "m.jsonl", records)
    problems = validate_manifest(path)
    by_sample = {}
    for p in problems:
        by_sample.setdefault(p.sample, []).append(p)
    assert "s0" not in by_sample
    assert any(p.field == "face" and "missing" in p.message for p in by_sample["s1"])
    assert any(p.field == "refs[1]" and "sha256" in p.message for p in by_sample["s2"])
    assert any(p.field == "gt" and "30 frames" in p.message for p in by_sample["s3"])
    assert any(p.field == "lengths" for p in by_sample["s3"])
    msgs4 = " ".join(p.message for p in by_sample["s4"])
    assert "30 fps" in msgs4 and "32x32" in msgs4
    msgs5 = " ".join(p.message for p in by_sample["s5"])
    assert "outside the 64x64 frame" in msgs5 and "NaN" in msgs5
    assert any(p.field == "masks" and "unreadable" in p.message for p in by_sample["s6"])
    assert all(p.fix for p in problems)

    parser = argparse.ArgumentParser()
    add_validate_arguments(parser)
    assert validate_main(parser.parse_args([str(path)])) == 1


def test_lab_and_wan_layout_samples_load_through_the_same_code(tmp_path, lab_sample):
    folder = export_wan_layout(lab_sample, tmp_path / "wan" / "clip0")
    assert sorted(p.name for p in folder.iterdir()) == ["src_face.mp4", "src_pose.mp4", "src_ref.png"]
    manifest = build_from_wan_layout([folder], [lab_sample.path("gt")], tmp_path / "real.jsonl", ids=["clip0"])
    (real,) = load_manifest(manifest)
    assert (real.n_frames, real.height, real.width, real.fps) == (40, 64, 64, 25)
    for getter in ("gt", "pose", "face"):
        np.testing.assert_array_equal(getattr(real, getter)(0, 40), getattr(lab_sample, getter)(0, 40))
    np.testing.assert_array_equal(real.references()[0], lab_sample.references()[0])
    problems = validate_manifest(manifest)
    assert [p.severity for p in problems] == ["warning"]  # no keypoints in Wan's layout

    from bench.datasets import load_dataset

    assert load_dataset(str(manifest), n_frames=40, cache_root=tmp_path)[0].id == "clip0"
    with pytest.raises(DataError):
        load_dataset(str(manifest), n_frames=41, cache_root=tmp_path)


def test_wan_builder_records_a_reference_resize_and_rejects_mismatches(tmp_path, lab_sample):
    from PIL import Image

    folder = export_wan_layout(lab_sample, tmp_path / "a")
    Image.new("RGB", (50, 80), (255, 0, 0)).save(folder / "src_ref.png")
    manifest = build_from_wan_layout([folder], [lab_sample.path("gt")], tmp_path / "a.jsonl")
    record = read_manifest(manifest).records[0]
    assert record["adaptations"]["reference_resize"]["from"] == [50, 80]
    assert load_manifest(manifest)[0].references()[0].shape == (64, 64, 3)

    short = tmp_path / "short.mp4"
    write_video(short, lab_sample.gt(0, 20), 25)
    bad = export_wan_layout(lab_sample, tmp_path / "b")
    with pytest.raises(DataError) as err:
        build_from_wan_layout([folder, bad, tmp_path / "nothing"], [lab_sample.path("gt"), short, short],
                              tmp_path / "b.jsonl", ids=["ok", "short", "empty"])
    text = str(err.value)
    assert "short: frame counts differ" in text and "empty: " in text and "is not a folder" in text
    assert "  ok:" not in text and "src_pose.mp4 has 40 frames" in text and "fix: " in text
    assert not (tmp_path / "b.jsonl").exists()


def test_lab_manifest_is_valid():
    from data_manifests import LAB_TEST

    assert validate_manifest(LAB_TEST) == []
