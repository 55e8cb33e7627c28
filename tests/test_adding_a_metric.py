"""docs/adding_a_metric.md, executed: its class and its one registry line add a metric to runs and tables."""
import re
import sys
import types
from pathlib import Path

from bench.config import build_config
from bench.records import read_scores
from bench.runner import run_grid
from bench.tables import leaderboard
from tests.helpers import write_dataset

DOC = Path(__file__).resolve().parent.parent / "docs" / "adding_a_metric.md"


def test_the_documented_metric_runs_and_is_tabulated(tmp_path, monkeypatch):
    import bench.metrics
    from bench.metrics import MetricInfo

    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 2
    module = types.ModuleType("mypackage.metrics")
    exec(compile(blocks[0], str(DOC), "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, "mypackage", types.ModuleType("mypackage"))
    monkeypatch.setitem(sys.modules, "mypackage.metrics", module)
    name, info = eval("{" + blocks[1].strip().rstrip(",") + "}", {"MetricInfo": MetricInfo}).popitem()
    monkeypatch.setitem(bench.metrics.METRICS, name, info)  # the one line

    data = write_dataset(tmp_path / "data", 2, n=30)
    outcome = run_grid(build_config("lab", methods=["ground_truth", "static_reference"], durations=[1],
                                    dataset=str(data), metrics=["psnr", "mae"], results=str(tmp_path / "res"),
                                    progress=False))
    assert not outcome.failures
    records = read_scores(outcome.scores_file.parent)
    mae = {r.method: r for r in records if r.metric == "mae" and r.sample == "s0"}
    assert mae["ground_truth"].value == 0.0 and mae["static_reference"].value > 1.0
    assert mae["static_reference"].higher_is_better is False
    board = leaderboard(records)
    assert "1s MAE ↓" in board.markdown()
    # ground truth is never bold; of the rest the lowest error is bold
    assert board.text("static_reference", 1.0, "mae").startswith("**")
