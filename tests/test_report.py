"""``bench report``: one self-contained HTML page (table, drift curves, frame strips) from a tiny lab run."""
import re
import shutil
import subprocess

import numpy as np
import pytest

from bench.cli import main


@pytest.fixture(scope="module")
def tiny_experiment(tmp_path_factory):
    """2 s of ground_truth and static_reference on one lab subject (about 5 s on a 2-core CPU)."""
    results = tmp_path_factory.mktemp("report") / "results"
    rc = main(["run", "--methods", "ground_truth", "static_reference", "--durations", "2", "--max-samples", "1",
               "--window", "1", "--results", str(results), "--no-progress"])
    assert rc == 0
    return results


@pytest.fixture(scope="module")
def report(tiny_experiment):
    out = tiny_experiment / "report" / "lab.html"
    assert main(["report", "--results", str(tiny_experiment)]) == 0  # default --out: RESULTS/report/<exp>.html
    assert out.exists()
    return out


def test_report_is_self_contained_with_table_drift_and_strips(report):
    page = report.read_text()
    assert "<table class=\"board\">" in page and "Static reference" in page and "PSNR ↑" in page
    assert re.search(r"<b>\d+\.\d{3}</b>", page)  # best value per column in bold, as in the markdown table
    assert "n/a (no weights)" in page  # missing cells keep their reason
    images = re.findall(r'src="([^"]+)"', page)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)
    assert len(images) >= 4 + 1 + 3  # 4 drift plots (no-weight metrics), reference, 3 strip rows
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "<script" not in page  # nothing external, nothing to fetch
    assert "lab-test-00" in page and "Ground truth (dataset)" in page
    # the rollout is 2 s long: 0 s and 2 s (its last frame) are shown, the rest is listed as skipped
    assert "not shown: 10 s, 30 s, 60 s, 90 s (beyond the 2 s rollout)" in page
    assert "protocol: bench-metrics/1" in page and "git:" in page


def test_strip_frames_come_from_the_rollout_and_the_dataset(tiny_experiment, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", "--results", str(tiny_experiment), "--out", str(out), "--times", "0", "1"]) == 0
    page = out.read_text()
    import base64
    import io

    from PIL import Image

    def decode(alt):
        src = re.search(r'<img src="data:image/png;base64,([^"]+)"[^>]*alt="' + re.escape(alt) + '"', page).group(1)
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(src))).convert("RGB"))

    gt = decode("lab-test-00 ground truth 1 s")
    assert gt.shape == (128, 128, 3)  # 64x64 lab frames enlarged x2, nearest neighbour
    assert (gt[::2, ::2] == gt[1::2, 1::2]).all()
    assert (decode("lab-test-00 ground_truth 1 s") == gt).all()  # the ground_truth method reproduces the data
    assert not (decode("lab-test-00 static_reference 1 s") == gt).all()


def test_scores_of_two_runs_give_one_section_per_run(tiny_experiment, tmp_path):
    from dataclasses import replace

    from bench.records import read_scores, write_scores

    records = read_scores(tiny_experiment / "scores" / "lab")
    hold = [replace(r, pose_padding="hold", value=None if r.value is None else r.value - 1) for r in records]
    write_scores(tiny_experiment / "scores" / "two_runs" / "scores.jsonl", records + hold)
    out = tmp_path / "two.html"
    assert main(["report", "--results", str(tiny_experiment), "--experiment", "two_runs", "--out", str(out)]) == 0
    page = out.read_text()
    assert "These scores come from 2 runs that differ in pose padding" in page
    for title in ("pose padding error", "pose padding hold"):
        for section in ("Leaderboard", "Drift curves", "Frame strips"):
            assert f"<h2>{section}: {title}</h2>" in page
    assert page.count('<table class="board">') == 2 and page.count("Ground truth (dataset)") == 2


def test_no_scores_is_a_clear_error(tmp_path, capsys):
    assert main(["report", "--results", str(tmp_path), "--experiment", "nothing"]) == 2
    err = capsys.readouterr().err
    assert "no scores for experiment 'nothing'" in err and "fix:" in err


def test_report_renders_in_headless_chromium(report, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed: the headless screenshot check needs it (apt-get install chromium)")
    shot = tmp_path / "shot.png"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,1600",
           report.resolve().as_uri()]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert shot.exists(), done.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(np.float64)
    assert pixels.shape[:2] == (1600, 1200)
    assert pixels.std() > 20  # not a blank page
    non_white = (pixels.min(axis=2) < 230).mean()
    assert non_white > 0.05, non_white  # table, plots and frames drawn
