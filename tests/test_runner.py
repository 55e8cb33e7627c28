import json
import math

import pytest

from bench.config import build_config
from bench.errors import BenchError, ConfigError, DataError
from bench.runner import run_grid
from tests.helpers import write_dataset, write_synthetic_sample
from tests.plugins import PLUGINS


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "data", 2, n=60)


def config(tmp_path, dataset, **kw):
    base = dict(methods=["ground_truth", "static_reference"], baselines=[], durations=[1, 2], dataset=str(dataset),
                results=str(tmp_path / "results"), progress=False, metrics=["psnr", "ssim"])
    base.update(kw)
    return build_config("lab", **base)


def lines(path):
    return [json.loads(l) for l in path.read_text().splitlines()]


def test_grid_scores_ground_truth_ideal_and_prefixes(tmp_path, dataset):
    outcome = run_grid(config(tmp_path, dataset))
    assert not outcome.failures
    records = lines(outcome.scores_file)
    assert len(records) == 2 * 2 * 2 * 2  # methods x samples x durations x metrics
    gt = [r for r in records if r["method"] == "ground_truth"]
    assert all(r["value"] == (100.0 if r["metric"] == "psnr" else pytest.approx(1.0)) for r in gt)
    static = {(r["sample"], r["duration_s"], r["metric"]): r for r in records if r["method"] == "static_reference"}
    r1, r2 = static[("s0", 1.0, "psnr")], static[("s0", 2.0, "psnr")]
    assert r1["n_frames"] == 25 and r2["n_frames"] == 50
    assert r1["prefix_of"]["rollout_frames"] == 50 and r1["rollout_key"] == r2["rollout_key"]
    assert 5 < r1["value"] < 60 and math.isfinite(r2["value"])
    for r in records:
        assert r["protocol"] and r["provenance"]["packages"]["torch"] and r["seed"] == 42
        assert any(a["kind"] == "truncate" for a in r["adaptations"])  # recorded, not silent


def test_completed_rollouts_are_reused_not_regenerated(tmp_path, dataset):
    first = run_grid(config(tmp_path, dataset))
    assert first.generated_chunks > 0
    second = run_grid(config(tmp_path, dataset))
    assert second.generated_chunks == 0
    assert first.scores_file.read_bytes() == second.scores_file.read_bytes()


def test_failed_cells_are_listed_and_others_finish(tmp_path, dataset, monkeypatch):
    monkeypatch.setenv("BENCH_PLUGINS", PLUGINS)
    outcome = run_grid(config(tmp_path, dataset, methods=["emits_nan", "crashes", "ground_truth"]))
    failed = {(m, s): msg for m, s, msg in outcome.failures}
    assert set(failed) == {("emits_nan", "s0"), ("emits_nan", "s1"), ("crashes", "s0"), ("crashes", "s1")}
    assert "NaN" in failed[("emits_nan", "s0")] and "simulated out-of-memory" in failed[("crashes", "s0")]
    methods = {r["method"] for r in lines(outcome.scores_file)}
    assert methods == {"ground_truth"}
    # the crashed rollout keeps its finished chunk and is not marked complete
    folder = next((tmp_path / "results" / "runs" / "crashes").iterdir())
    assert (folder / "chunks" / "00000.json").exists() and not (folder / "status.json").exists()


def test_duration_longer_than_pose_sequence(tmp_path, dataset):
    with pytest.raises(DataError, match="pose-padding"):
        run_grid(config(tmp_path, dataset, durations=[1, 5]))
    outcome = run_grid(config(tmp_path, dataset, durations=[1, 5], pose_padding="reflect"))
    records = lines(outcome.scores_file)
    assert all(any(a["kind"] == "extend" for a in r["adaptations"]) for r in records)
    assert {r["n_frames"] for r in records} == {25, 125}


def test_unknown_names_answer_with_close_matches(tmp_path, dataset):
    with pytest.raises(ConfigError, match="did you mean ground_truth"):
        run_grid(config(tmp_path, dataset, methods=["ground_truht"]))
    with pytest.raises(ConfigError, match="did you mean psnr"):
        run_grid(config(tmp_path, dataset, metrics=["psrn"]))
    with pytest.raises(ConfigError, match="preset"):
        build_config("paperr")


def test_unwritable_results_folder(tmp_path, dataset):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BenchError, match="not writable"):
        run_grid(config(tmp_path, dataset, results=str(blocker / "results")))


def test_corrupt_sample_file_is_a_clear_error(tmp_path):
    data = tmp_path / "data"
    s = write_synthetic_sample(data, "bad", n=60)
    gt = s.path("gt")
    gt.write_bytes(gt.read_bytes()[: len(gt.read_bytes()) // 3])
    outcome = run_grid(config(tmp_path, data, methods=["ground_truth"]))
    assert outcome.failures and "bad" == outcome.failures[0][1]
    assert "re-create" in outcome.failures[0][2]


def test_every_method_gets_the_same_reference_views_and_scores_say_how_many(tmp_path):
    # samples shipping 3 true views, as lab samples do: by default every method gets the user reference only
    data = tmp_path / "data"
    for i in range(2):
        write_synthetic_sample(data, f"s{i}", n=40, seed=i, n_refs=3)
    args = {"everanimate": {"components": "tiny-random", "chunk_frames": 9, "steps": 20},  # the release grid
            "wan_animate": {"components": "tiny-random", "chunk_frames": 9, "steps": 2}}
    methods = ["everanimate", "wan_animate", "static_reference", "ground_truth"]
    single = run_grid(config(tmp_path, data, methods=methods, durations=[1], method_args=args))
    assert not single.failures
    records = lines(single.scores_file)
    per_method = {m: {r["n_references"] for r in records if r["method"] == m} for m in methods}
    assert per_method == {"everanimate": {1}, "wan_animate": {1}, "static_reference": {1}, "ground_truth": {0}}
    ea = [r for r in records if r["method"] == "everanimate"]
    assert all(any(a["kind"] == "memory" and a["views"] == 1 for a in r["adaptations"]) for r in ea)
    # EverAnimate's rollout record lists the 20 sigmas it sampled with: the release grid
    status = json.loads((tmp_path / "results" / "runs" / "everanimate" / ea[0]["rollout_key"][:16] /
                         "status.json").read_text())
    sigmas = status["model_info"]["sigmas"]
    assert len(sigmas) == 20 and sigmas[0] == 1.0
    assert [round(s, 4) for s in sigmas[-4:]] == [0.5556, 0.4688, 0.3571, 0.2083]
    assert status["model_info"]["version"] == "2"

    # the multi-view protocol is explicit, applied to every method that can take it, and a different rollout
    multi = run_grid(config(tmp_path, data, methods=methods, durations=[1], method_args=args, references="multi",
                            experiment="multi"))
    assert not multi.failures
    mrecords = lines(multi.scores_file)
    per_method = {m: {r["n_references"] for r in mrecords if r["method"] == m} for m in methods}
    assert per_method == {"everanimate": {3}, "wan_animate": {1}, "static_reference": {1}, "ground_truth": {0}}
    key = {(r["method"], r["sample"]): r["rollout_key"] for r in records}
    mkey = {(r["method"], r["sample"]): r["rollout_key"] for r in mrecords}
    assert mkey[("everanimate", "s0")] != key[("everanimate", "s0")]
    assert mkey[("wan_animate", "s0")] == key[("wan_animate", "s0")]  # one view either way: the same rollout
    # 3 true views < K = 4: the memory holds them, completed with 1 generated chunk-0 frame
    assert all(any(a["kind"] == "memory" and a["views"] == 3 for a in r["adaptations"])
               for r in mrecords if r["method"] == "everanimate")
    with pytest.raises(ConfigError, match="references"):
        config(tmp_path, data, references="all")


@pytest.mark.parametrize("method", ["ground_truth", "static_reference", "wan_animate", "vae_roundtrip",
                                    "oracle_pixel_carry", "everanimate", "precomputed", "scail"])
def test_unknown_method_arguments_are_always_rejected(tmp_path, dataset, method):
    """`--method-arg ground_truth.nosuch=1` used to run (exit 0): the base class took any keyword."""
    from bench.runner import instantiate

    with pytest.raises(ConfigError, match="nosuch"):
        instantiate(method, config(tmp_path, dataset, methods=[method], method_args={method: {"nosuch": 1}}))


def test_lab_preset_runs_its_trivial_baselines_beside_the_requested_methods():
    from bench.config import build_config

    assert build_config(preset="lab", methods=["wan_animate"]).methods == ("wan_animate", "static_reference")
    assert build_config(preset="lab", methods=["static_reference", "ground_truth"]).methods == (
        "static_reference", "ground_truth")
    assert build_config(preset="lab", methods=["wan_animate"], baselines=[]).methods == ("wan_animate",)
