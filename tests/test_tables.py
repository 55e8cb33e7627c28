import csv
import io

from bench.records import ScoreRecord
from bench.tables import leaderboard, write_tables


def rec(method, duration, metric, value, sample="a", windows=None, missing=None, **extra):
    r = {"experiment": "t", "method": method, "sample": sample, "duration_s": duration, "metric": metric,
         "value": value, "n_frames": int(duration * 25), **extra}
    if windows:
        r["windows"] = {"window_s": 5.0, "values": windows}
    if missing:
        r["missing"] = missing
    return ScoreRecord.from_json(r)


RECORDS = [
    rec("wan_animate", 10.0, "psnr", 20.0, "a", [21, 19]), rec("wan_animate", 10.0, "psnr", 22.0, "b", [23, 21]),
    rec("everanimate", 10.0, "psnr", 25.0, "a", [25, 25]), rec("everanimate", 10.0, "psnr", 24.0, "b", [24, 24]),
    rec("wan_animate", 10.0, "lpips", 0.30), rec("everanimate", 10.0, "lpips", 0.20),
    rec("wan_animate", 90.0, "psnr", 18.0, "a", [21, 19, 18, 17]), rec("everanimate", 90.0, "lpips", 0.25),
    rec("wan_animate", 90.0, "fid", None, "*", missing="n/a (no weights)"),
]


def test_markdown_layout_arrows_bold_and_missing_cells():
    md = leaderboard(RECORDS, methods=["wan_animate", "everanimate"]).markdown()
    head, _, wan, ever = md.strip().splitlines()
    assert head.startswith("| Method | 10s PSNR ↑ | 10s LPIPS ↓ | 10s FID ↓")
    assert "| 90s PSNR ↑" in head
    assert wan.startswith("| Wan-Animate | 21.000 | 0.300 |")  # mean over samples
    assert ever.startswith("| EverAnimate | **24.500** | **0.200** |")
    cells = [c.strip() for c in wan.split("|")[1:-1]]
    assert "n/a (no weights)" in cells  # the recorded reason, not 0
    ever_cells = [c.strip() for c in ever.split("|")[1:-1]]
    assert ever_cells[4 + 0] == "-"  # everanimate has no 90 s PSNR: missing, never 0
    assert "0.000" not in md


def test_csv_and_latex_carry_the_same_numbers():
    board = leaderboard(RECORDS)
    rows = list(csv.DictReader(io.StringIO(board.csv())))
    row = next(r for r in rows if r["method"] == "wan_animate" and r["duration_s"] == "10.0" and r["metric"] == "psnr")
    assert float(row["mean"]) == 21.0 and float(row["std"]) == 1.0 and row["n_samples"] == "2"
    missing = next(r for r in rows if r["method"] == "everanimate" and r["duration_s"] == "90.0" and r["metric"] == "psnr")
    assert missing["mean"] == "" and missing["missing"] == "missing"
    tex = board.latex()
    assert r"\textbf{24.500}" in tex and r"$\downarrow$" in tex and r"\multicolumn{3}{c}{90 s}" in tex


def test_ablation_layout_keeps_table2_metrics():
    board = leaderboard(RECORDS, layout="ablation")
    assert board.metrics == ["psnr", "lpips"]


def test_drift_plot_files(tmp_path):
    board, paths = write_tables(RECORDS, tmp_path)
    assert {"md", "csv", "tex", "drift_psnr"} <= set(paths)
    png = paths["drift_psnr"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_untrained_rows_are_labelled():
    records = [rec("everanimate", 10.0, "psnr", 11.0, untrained=True), rec("ground_truth", 10.0, "psnr", 100.0)]
    md = leaderboard(records).markdown()
    assert "| EverAnimate (untrained) | **11.000** |" in md and "| Ground truth | 100.000 |" in md
