"""Results that used to be wrong without any error: each test here failed before its fix.

- a failed run printed the previous run's table; mistakes were found only inside the workers;
- a run whose cells all failed printed a table of n/a;
- durations past the data were rendered silently;
- leaderboards mixed runs of different dataset / size / fps;
- a new lower-is-better metric was bolded when worst;
- stale shard files were merged into a later run's table.
"""
import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import main
from bench.config import build_config
from bench.errors import DataError
from bench.records import ExperimentManifest, ScoreRecord, read_scores
from bench.runner import check_run, run_grid
from bench.tables import leaderboard, leaderboards, write_tables
from tests.helpers import write_dataset
from tests.plugins import PLUGINS

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def data(tmp_path):
    return write_dataset(tmp_path / "data", 2, n=60)


def run_args(data, results, *extra):
    return ["run", "--methods", "ground_truth", "static_reference", "--durations", "1", "2", "--dataset", str(data),
            "--metrics", "psnr", "--no-progress", "--results", str(results), *extra]


def test_a_failed_run_prints_no_table_and_fails_fast(tmp_path, data, capsys):
    results = tmp_path / "res"
    assert main(run_args(data, results)) == 0
    assert "| Ground truth" in capsys.readouterr().out  # a good run prints its table
    for bad, expect in ((["--samples", "nosuch"], "not in dataset"), (["--durations", "1", "30"], "60 frames long"),
                        (["--metrics", "psrn"], "did you mean psnr"),
                        (["--method-arg", "ground_truth.nosuch=1"], "unknown arguments"),
                        (["--workers", "2", "--samples", "nosuch"], "not in dataset")):
        started = time.perf_counter()
        code = main(run_args(data, results, *bad))
        elapsed = time.perf_counter() - started
        out, err = capsys.readouterr()
        assert code == 2, (bad, err)
        assert expect in err and "fix:" in err
        assert "| Ground truth" not in out and "| Method" not in out  # never the previous run's table
        assert elapsed < 1.0, (bad, elapsed)


def test_durations_past_the_lab_data_are_an_error_naming_its_length(tmp_path):
    config = build_config("lab", methods=["ground_truth"], durations=[200], results=str(tmp_path), progress=False)
    started = time.perf_counter()
    with pytest.raises(DataError, match=r"2250 frames long \(90 s\)") as err:
        check_run(config)
    assert time.perf_counter() - started < 1.0
    assert "--pose-padding" in err.value.fix
    padded = build_config("lab", methods=["ground_truth"], durations=[200], results=str(tmp_path), progress=False,
                          pose_padding="hold")
    assert {n for _, n, _ in check_run(padded)} == {2250}  # accepted: the poses are padded, not rendered


CHECK_WITHOUT_TORCH = """
import sys
from bench.cli import main
from bench.config import build_config
from bench.registry import METHODS
from bench.runner import check_run

results = sys.argv[1]
for method in METHODS:  # an unknown argument of every registered method: exit 2 naming it
    assert main(["run", "--methods", method, "--method-arg", method + ".nosuch=1", "--no-progress",
                 "--results", results]) == 2, method
assert main(["run", "--methods", "wan_animate", "--method-arg", "wan_animate.refert_num=3", "--no-progress",
             "--results", results]) == 2  # a bad value, refused by the config's own checks
valid = {"precomputed": {"folder": results}, "everanimate": {"components": "lab", "steps": 4},
         "scail": {"size": [480, 832], "checkout": results}}
config = build_config("lab", methods=list(METHODS), durations=[1], metrics=["psnr"], results=results,
                      method_args=valid)
check_run(config)  # every argument of every method accepted
print("HEAVY", sorted(m for m in ("torch", "diffusers") if m in sys.modules))
"""


def test_method_arguments_are_checked_without_importing_torch(tmp_path):
    """`--method-arg everanimate.nosuch=1` took 3 s: the argument was checked by importing the method (torch).
    Every registered method's arguments are checked through its torch-free Config."""
    out = subprocess.run([sys.executable, "-c", CHECK_WITHOUT_TORCH, str(tmp_path)], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    assert "everanimate: unknown arguments ['nosuch']" in out.stderr and "everanimate takes: " in out.stderr
    assert "wan_animate: refert_num must be 1 or 5, got 3" in out.stderr
    assert "steadydancer takes: checkout=None" in out.stderr  # runtime paths are arguments too


def test_every_registered_config_is_the_one_its_method_uses():
    from bench.animator import NoArguments
    from bench.registry import METHODS, import_target, method_class

    for name, entry in METHODS.items():
        assert entry.config, f"{name} names no torch-free Config"
        assert method_class(name).Config is import_target(entry.config, name), name
    assert method_class("ground_truth").Config is NoArguments


def test_a_run_whose_cells_all_failed_prints_the_failures_not_a_table(tmp_path, data, capsys, monkeypatch):
    monkeypatch.setenv("BENCH_PLUGINS", PLUGINS)
    code = main(["run", "--methods", "crashes", "--durations", "1", "--dataset", str(data), "--no-progress",
                 "--results", str(tmp_path / "res")])
    out, err = capsys.readouterr()
    assert code == 1
    assert "| Method" not in out  # the skipped-metric rows used to make a table of n/a
    assert "every cell failed" in err and "crashes / s0" in err


def test_scores_record_their_run_and_an_experiment_manifest(tmp_path, data):
    outcome = run_grid(build_config("lab", methods=["ground_truth"], durations=[1], dataset=str(data),
                                    metrics=["psnr"], results=str(tmp_path), progress=False))
    records = read_scores(outcome.scores_file.parent)
    assert {(r.dataset, r.size, r.fps, r.pose_padding) for r in records} == {(str(data), "lab-64", 25, "error")}
    run = ExperimentManifest.read(outcome.scores_file.parent)
    assert (run.dataset, run.fps, run.durations, run.samples) == (str(data), 25, (1.0,), ("s0", "s1"))


def _record(method, value, **kw):
    return ScoreRecord.from_json({"experiment": "lab", "method": method, "sample": "s0", "metric": "psnr",
                                  "duration_s": 10.0, "n_frames": 250, "value": value, "dataset": "lab-test",
                                  "size": "lab-64", "fps": 25, **kw})


def test_one_leaderboard_never_mixes_runs_of_different_size():
    records = [_record("a", 14.0), _record("b", 15.0, size="lab-480p")]
    with pytest.raises(DataError, match="mix 2 runs") as err:
        leaderboard(records)
    assert "lab-480p" in err.value.message and "split_runs" in err.value.fix
    with pytest.raises(DataError, match="mix 2 runs"):
        leaderboard([_record("a", 14.0), _record("b", 15.0, fps=16)])


def test_scores_of_mixed_runs_make_one_table_per_run_setting(tmp_path):
    """Mixed scores used to raise (or, before that, print as one table): now one table per run setting,
    each headed by what tells it apart, and the output says so."""
    records = [_record("a", 14.0), _record("b", 15.0), _record("a", 30.0, size="lab-480p"),
               _record("a", 20.0, size="lab-480p", sample="s1"), _record("b", 12.0, size="lab-480p", fps=16),
               _record("a", 13.0, pose_padding="hold"), _record("a", 16.0, dataset=None, size=None, fps=None)]
    boards, paths = write_tables(records, tmp_path / "tables")
    assert [run.title for run in boards.runs] == [
        "size lab-480p, 16 fps, pose padding error", "size lab-480p, 25 fps, pose padding error",
        "size lab-64, 25 fps, pose padding error", "size lab-64, 25 fps, pose padding hold",
        "run setting not recorded (scores from before bench.score/2)"]
    means = {(run.setting["size"], run.setting["fps"], run.setting["pose_padding"]):
             {m: run.board.cells[(m, 10.0, "psnr")].mean for m in run.board.methods} for run in boards.runs}
    assert means[("lab-480p", 25, "error")] == {"a": 25.0}  # 30 and 20 of the 480p run, never mixed with lab-64
    assert means[("lab-64", 25, "error")] == {"a": 14.0, "b": 15.0}
    md = paths["md"].read_text()
    assert md.startswith("These scores come from 5 runs that differ in size, fps, pose padding: one table per run "
                         "setting")
    assert md.count("### ") == 5 and "### size lab-480p, 25 fps, pose padding error\n\n| Method |" in md
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert {(r["size"], r["fps"], r["method"], r["mean"]) for r in rows if r["pose_padding"] == "error"} >= {
        ("lab-480p", "25", "a", "25.0"), ("lab-64", "25", "b", "15.0"), ("lab-480p", "16", "b", "12.0")}
    assert paths["tex"].read_text().count(r"\begin{tabular}") == 5
    one_run = write_tables([_record("a", 14.0), _record("b", 15.0)], tmp_path / "one")[0]
    assert not one_run.split and one_run.markdown() == leaderboard([_record("a", 14.0), _record("b", 15.0)]).markdown()
    legacy = leaderboards([_record("a", 14.0), _record("b", 15.0, dataset=None, size=None, fps=None)])
    assert not legacy.split  # records from before the setting was recorded join the one recorded run


def test_bench_table_prints_one_table_per_run_of_mixed_scores(tmp_path, capsys):
    folder = tmp_path / "scores" / "mixed"
    folder.mkdir(parents=True)
    windows = {"window_s": 5.0, "values": [20.0, 18.0]}
    records = [_record("ground_truth", 100.0), _record("static_reference", 21.0, windows=windows),
               _record("static_reference", 19.0, size="lab-128", windows=windows)]
    (folder / "scores.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in records))
    assert main(["table", "--experiment", "mixed", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 runs that differ in size" in out
    first, second = out.split("### size lab-128")[1].split("### size lab-64")
    assert "| Static reference | **19.000** |" in first and "Ground truth" not in first
    assert "| Static reference | **21.000** |" in second and "| Ground truth | 100.000 |" in second
    drift = sorted(p.name for p in (tmp_path / "tables" / "mixed").glob("drift_*.png"))
    assert drift == ["drift_psnr-size-lab-128.png", "drift_psnr-size-lab-64.png"]  # one curve set per run


def test_an_unregistered_lower_is_better_metric_bolds_its_lowest_value():
    records = [_record("a", 1.0, metric="new_err", higher_is_better=False),
               _record("b", 3.0, metric="new_err", higher_is_better=False)]
    board = leaderboard(records)
    assert board.text("a", 10.0, "new_err") == "**1.000**" and board.text("b", 10.0, "new_err") == "3.000"
    assert "new_err ↓" in board.markdown()


def test_stale_shards_are_never_merged_into_a_later_run(tmp_path, data):
    results = tmp_path / "res"
    folder = results / "scores" / "lab"
    folder.mkdir(parents=True)
    stale = _record("old_method", 99.0, dataset="other", size="lab-128")
    (folder / "scores.shard-0-of-2.jsonl").write_text(json.dumps(stale.to_json()) + "\n")
    assert main(run_args(data, results)) == 0
    records = read_scores(folder)
    assert {r.method for r in records} == {"ground_truth", "static_reference"}
    assert not list(folder.glob("scores.shard-*"))


@pytest.mark.slow
def test_workers_merge_once_with_pooled_metrics_and_print_one_table(tmp_path, data):
    out = subprocess.run([sys.executable, "-m", "bench", *run_args(data, tmp_path / "res", "--workers", "2")],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("| Ground truth") == 1 and "merge shards with" not in out.stdout
    folder = tmp_path / "res" / "scores" / "lab"
    assert sorted(p.name for p in folder.iterdir()) == ["experiment.json", "scores.jsonl"]
    assert {r.sample for r in read_scores(folder)} == {"s0", "s1"}


def test_workers_progress_is_summed_from_their_progress_shards(tmp_path):
    from bench.records import shard_name
    from bench.runner import workers_done

    (tmp_path / shard_name("progress", 0, 3)).write_text(json.dumps({"done": 2, "total": 4}))
    (tmp_path / shard_name("progress", 1, 3)).write_text(json.dumps({"done": 3, "total": 3}))
    (tmp_path / shard_name("progress", 2, 2)).write_text(json.dumps({"done": 9, "total": 9}))  # another run's
    assert workers_done(tmp_path, 3) == 5  # rank 2 has not written yet: 0


@pytest.mark.slow
def test_workers_show_one_combined_progress_bar(tmp_path, data):
    args = [a for a in run_args(data, tmp_path / "res", "--workers", "2") if a != "--no-progress"]
    out = subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    bars = out.stderr.replace("\r", "\n").splitlines()
    assert any(line.startswith("cells (2 workers): 100%") and "4/4" in line for line in bars), out.stderr
    assert not any(line.startswith("rollouts") for line in bars)  # the workers show no bars of their own
    assert not list((tmp_path / "res" / "scores" / "lab").glob("progress.shard-*"))


def test_os_errors_are_words_not_errno_numbers(tmp_path):
    from bench.errors import BenchError
    from bench.store import check_writable

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(BenchError) as err:
        check_writable(blocker / "results")  # a folder inside a file
    assert "Errno" not in str(err.value) and "not a directory" in err.value.message


def test_bench_table_rows_follow_the_experiment_manifest_method_order(tmp_path, capsys):
    from bench.records import ExperimentManifest

    folder = tmp_path / "scores" / "table2"
    folder.mkdir(parents=True)
    order = ("wan_animate", "wan_animate@no_plp", "everanimate@no_rfm", "everanimate")
    records = [_record(m, 20.0 + i) for i, m in enumerate(reversed(order))]
    (folder / "scores.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in records))
    ExperimentManifest(experiment="table2", dataset="lab-test", size="lab-64", fps=25, window_s=5.0,
                       durations=(10.0,), pose_padding="error", seed=42, methods=order).write(folder)
    assert main(["table", "--experiment", "table2", "--results", str(tmp_path), "--layout", "ablation"]) == 0
    rows = [line.split("|")[1].strip() for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    assert rows == ["Wan-Animate", "w/o PLP (RFM, pixel carry-over)", "w/o RFM (stage 1)", "EverAnimate"]
