"""Kill -9 and resume, sharded runs, and two processes on one store - all through the real CLI."""
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import write_dataset
from tests.plugins import PLUGINS

REPO = Path(__file__).resolve().parent.parent


def bench(args, results, log=None, extra_env=None, **popen):
    env = {**os.environ, "BENCH_PLUGINS": PLUGINS, "PYTHONUNBUFFERED": "1"}
    env.pop("RANK", None), env.pop("WORLD_SIZE", None)
    if log:
        env["BENCH_TEST_LOG"] = str(log)
    env.update(extra_env or {})
    cmd = [sys.executable, "-m", "bench", *args, "--results", str(results), "--no-progress"]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def run_args(data, *extra):
    return ["run", "--workers", "1", "--methods", "counting_slow", "ground_truth", "--durations", "2", "4",
            "--dataset", str(data), "--metrics", "psnr", "ssim", *extra]


def finish(proc, timeout=240):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


@pytest.mark.slow
def test_kill_9_then_resume_gives_byte_identical_scores(tmp_path):
    data = write_dataset(tmp_path / "data", 2, n=100)
    finish(bench(run_args(data), tmp_path / "clean"))
    log = tmp_path / "chunks.log"
    proc = bench(run_args(data), tmp_path / "killed", log=log)
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = log.read_text().splitlines()
    assert 3 <= len(before) < 12, "the kill must land mid-grid"
    out = finish(bench(run_args(data), tmp_path / "killed", log=log))
    counts = Counter(log.read_text().splitlines())
    assert set(counts) == {f"s{i} {c}" for i in range(2) for c in range(6)}  # 2 samples x 6 chunks
    repeated = [k for k, n in counts.items() if n > 1]
    assert len(repeated) <= 1 and all(n <= 2 for n in counts.values()), counts  # only the chunk in flight
    clean = (tmp_path / "clean" / "scores" / "lab" / "scores.jsonl").read_bytes()
    resumed = (tmp_path / "killed" / "scores" / "lab" / "scores.jsonl").read_bytes()
    assert clean == resumed
    assert "Counting" not in out


@pytest.mark.slow
def test_two_shards_merge_to_the_one_process_result(tmp_path):
    data = write_dataset(tmp_path / "data", 3, n=100)
    finish(bench(run_args(data, "--experiment", "one"), tmp_path / "res", extra_env={"BENCH_TEST_DELAY": "0"}))
    procs = [bench(run_args(data, "--experiment", "two"), tmp_path / "res",
                   extra_env={"RANK": str(r), "WORLD_SIZE": "2"}) for r in range(2)]
    for p in procs:
        finish(p)
    shards = sorted(p.name for p in (tmp_path / "res" / "scores" / "two").glob("scores*.jsonl"))
    assert shards == ["scores.shard-0-of-2.jsonl", "scores.shard-1-of-2.jsonl"]
    from bench.errors import BenchError
    from bench.tables import leaderboard, read_scores

    with pytest.raises(BenchError, match="unmerged shard files"):  # never read as a partial table
        read_scores(tmp_path / "res" / "scores" / "two")
    table = subprocess.run([sys.executable, "-m", "bench", "table", "--experiment", "two", "--results",
                            str(tmp_path / "res")], cwd=REPO, capture_output=True, text=True)
    assert table.returncode == 0 and "Ground truth" in table.stdout  # `bench table` merges the ranks' shards
    one = read_scores(tmp_path / "res" / "scores" / "one")
    two = read_scores(tmp_path / "res" / "scores" / "two")
    strip = lambda rs: sorted((r.method, r.sample, r.duration_s, r.metric, r.value, r.rollout_key) for r in rs)
    assert strip(one) == strip(two)
    assert leaderboard(one).markdown() == leaderboard(two).markdown()


@pytest.mark.slow
def test_two_processes_on_one_store_do_not_corrupt_it(tmp_path):
    data = write_dataset(tmp_path / "data", 2, n=100)
    log = tmp_path / "chunks.log"
    procs = [bench(run_args(data), tmp_path / "shared", log=log) for _ in range(2)]
    for p in procs:
        finish(p)
    counts = Counter(log.read_text().splitlines())
    assert all(n == 1 for n in counts.values()), counts  # the lock: no chunk generated twice
    finish(bench(run_args(data), tmp_path / "clean"))
    assert (tmp_path / "shared" / "scores" / "lab" / "scores.jsonl").read_bytes() == \
        (tmp_path / "clean" / "scores" / "lab" / "scores.jsonl").read_bytes()
