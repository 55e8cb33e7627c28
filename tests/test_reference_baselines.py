import json

import numpy as np
import pytest

from bench.cli import main
from bench.config import build_config
from bench.runner import run_grid
from bench.video import write_video
from tests.helpers import synthetic_frames, write_dataset


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "data", 2, n=60, h=32, w=32)


def cfg(tmp_path, dataset, **kw):
    base = dict(baselines=[], durations=[1, 2], dataset=str(dataset), results=str(tmp_path / "results"), progress=False,
                metrics=["psnr", "ssim"])
    base.update(kw)
    return build_config("lab", **base)


def write_predictions(folder, n=50, h=32, w=32, fps=25, offset=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(2):
        frames = synthetic_frames(n, h, w, seed=i)
        write_video(folder / f"s{i}.mp4", np.clip(frames.astype(int) + offset, 0, 255).astype(np.uint8), fps)
    return folder


def test_precomputed_scores_user_videos(tmp_path, dataset):
    preds = write_predictions(tmp_path / "preds", offset=0)
    out = run_grid(cfg(tmp_path, dataset, methods=["precomputed"],
                       method_args={"precomputed": {"folder": str(preds)}}))
    assert not out.failures
    psnr = [json.loads(l) for l in out.scores_file.read_text().splitlines()]
    assert all(r["value"] == 100.0 for r in psnr if r["metric"] == "psnr")  # same frames, lossless
    # a changed video changes the rollout key (the files are fingerprinted)
    write_predictions(preds, offset=20)
    out2 = run_grid(cfg(tmp_path, dataset, methods=["precomputed"],
                        method_args={"precomputed": {"folder": str(preds)}}))
    values = [json.loads(l)["value"] for l in out2.scores_file.read_text().splitlines()]
    assert all(v < 40 for v in values if v > 1.5)


@pytest.mark.parametrize("problem,kwargs,message", [
    ("fps", dict(fps=16), "16 fps"),
    ("size", dict(h=48, w=48), "48x48"),
    ("count", dict(n=30), "30 frames"),
])
def test_precomputed_rejects_mismatches_unless_adapted(tmp_path, dataset, problem, kwargs, message):
    preds = write_predictions(tmp_path / "preds", **kwargs)
    out = run_grid(cfg(tmp_path, dataset, methods=["precomputed"], method_args={"precomputed": {"folder": str(preds)}}))
    assert len(out.failures) == 2 and message in out.failures[0][2]
    if problem == "count":
        return
    adapt = {"fps": {"resample_fps": True}, "size": {"resize": True}}[problem]
    out = run_grid(cfg(tmp_path, dataset, methods=["precomputed"],
                       method_args={"precomputed": {"folder": str(preds), **adapt}}))
    assert not out.failures
    kinds = {a["kind"] for line in out.scores_file.read_text().splitlines() for a in json.loads(line)["adaptations"]}
    assert {"fps": "resample", "size": "resize"}[problem] in kinds


def test_precomputed_without_folder_fails_its_cells_only(tmp_path, dataset):
    out = run_grid(cfg(tmp_path, dataset, methods=["precomputed", "ground_truth"]))
    assert {f[0] for f in out.failures} == {"precomputed"} and "precomputed.folder" in out.failures[0][2]
    assert {json.loads(l)["method"] for l in out.scores_file.read_text().splitlines()} == {"ground_truth"}


def test_score_rescores_without_generating(tmp_path, dataset, capsys):
    args = ["--methods", "static_reference", "--durations", "1", "2", "--dataset", str(dataset), "--results",
            str(tmp_path / "results"), "--no-progress", "--metrics", "psnr"]
    assert main(["score", *args]) == 1  # nothing stored yet: listed as a failure, nothing generated
    assert "no complete rollout stored" in capsys.readouterr().err
    assert not (tmp_path / "results" / "runs").exists() or not any((tmp_path / "results" / "runs").rglob("*.mp4"))
    assert main(["run", *args]) == 0
    first = (tmp_path / "results" / "scores" / "lab" / "scores.jsonl").read_text()
    assert main(["score", *args]) == 0
    assert (tmp_path / "results" / "scores" / "lab" / "scores.jsonl").read_text() == first


def test_doctor_reports_methods_and_metrics(capsys):
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = {m["method"] for m in report["methods"]}
    assert {"everanimate", "wan_animate", "ground_truth", "scail"} <= names
    gt = next(m for m in report["methods"] if m["method"] == "ground_truth")
    assert gt["status"] == "ready"
    assert report["metrics"] and report["environment"]["packages"]["torch"]
