"""docs/adding_a_method.md, executed: its chunk-wise and its whole-video method run through the harness."""
import re
import sys
import types
from pathlib import Path

import pytest

from bench import registry
from bench.config import build_config
from bench.errors import ConfigError
from bench.records import read_scores
from bench.runner import check_method_arguments, instantiate, run_grid
from tests.helpers import write_dataset

DOC = Path(__file__).resolve().parent.parent / "docs" / "adding_a_method.md"


@pytest.fixture
def documented(monkeypatch):
    block, = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    module = types.ModuleType("mypackage.my_method")
    monkeypatch.setitem(sys.modules, "mypackage", types.ModuleType("mypackage"))
    monkeypatch.setitem(sys.modules, "mypackage.my_method", module)
    exec(compile(block, str(DOC), "exec"), module.__dict__)
    monkeypatch.setitem(registry.METHODS, "my_method", registry.Entry("mypackage.my_method:MyMethod", "doc example",
                                                                      config="mypackage.my_method:MyMethodConfig"))
    monkeypatch.setitem(registry.METHODS, "my_whole_video_method",
                        registry.Entry("mypackage.my_method:MyWholeVideoMethod", "doc example"))
    return module


def test_the_documented_methods_run_score_and_resume(documented, tmp_path):
    data = write_dataset(tmp_path / "data", 2, n=90)
    config = build_config("lab", methods=["my_method", "my_whole_video_method", "ground_truth"], baselines=[], durations=[1, 3],
                          dataset=str(data), metrics=["psnr"], results=str(tmp_path / "res"), progress=False,
                          method_args={"my_method": {"strength": 0.25, "chunk_frames": 21}})
    outcome = run_grid(config)
    assert not outcome.failures, outcome.failures
    records = read_scores(outcome.scores_file.parent)
    methods = {r.method for r in records}
    assert methods == {"my_method", "my_whole_video_method", "ground_truth"}
    values = {(r.method, r.sample, r.duration_s): r.value for r in records}
    assert 0 < values[("my_method", "s0", 3.0)] < 100 and 0 < values[("my_whole_video_method", "s0", 3.0)] < 100
    animator = instantiate("my_method", config)
    assert animator.identity() == {"strength": 0.25, "chunk_frames": 21}
    assert animator.model_info()["trained"] is None
    # the chunk-wise one resumes from its stored state; a state of another rollout is refused
    request_key = next(r.rollout_key for r in records if r.method == "my_method" and r.sample == "s0")
    folder = tmp_path / "res" / "runs" / "my_method" / request_key[:16]
    assert (folder / "chunks" / "00001.state.pt").exists()
    second = run_grid(config)
    assert second.generated_chunks == 0


def test_the_documented_arguments_are_checked_and_listed(documented, tmp_path, capsys):
    from bench.cli import method_arguments

    bad = build_config("lab", methods=["my_method"], method_args={"my_method": {"nosuch": 1}})
    with pytest.raises(ConfigError, match="unknown arguments") as err:
        instantiate("my_method", bad)
    assert "strength=0.5" in err.value.fix
    with pytest.raises(ConfigError, match="my_method: unknown arguments"):
        check_method_arguments("my_method", bad)  # through the registered Config, the class never built
    assert method_arguments("my_method") == "strength=0.5, chunk_frames=77"
    assert method_arguments("my_whole_video_method") == "none"
