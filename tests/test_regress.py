"""``bench regress``: golden scores written, matched, and regressions / missing cells caught."""
import json
from dataclasses import replace
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import ConfigError
from bench.regress import DEFAULT_SPEC, RegressionSpec, compare

REPO = Path(__file__).resolve().parent.parent
LAB_GOLDEN = REPO / "results" / "golden" / "lab.json"
FAST = ["--methods", "ground_truth", "static_reference", "--durations", "2", "--max-samples", "1"]


def regress(capsys, golden, *extra):
    rc = main(["regress", *FAST, "--golden", str(golden), *extra])
    return rc, capsys.readouterr().out


def test_update_then_pass_then_regression_then_missing_cell(tmp_path, capsys):
    golden = tmp_path / "golden" / "fast.json"
    rc, out = regress(capsys, golden, "--update")
    assert rc == 0 and golden.exists(), out
    data = json.loads(golden.read_text())
    assert data["provenance"]["torch"] and data["provenance"]["created"] and data["samples"] == ["lab-test-00"]
    keys = {(c["metric"], c["method"]) for c in data["cells"]}
    assert keys == {(m, k) for m in ("psnr", "ssim", "fpsnr", "bgpsnr") for k in ("ground_truth", "static_reference")}

    rc, out = regress(capsys, golden)  # a fresh run of the same code: identical numbers
    assert rc == 0, out
    assert "regression: OK (8 cells" in out and "REGRESSION" not in out

    edited = json.loads(golden.read_text())
    cell = next(c for c in edited["cells"] if c["metric"] == "ssim" and c["method"] == "static_reference")
    cell["value"] += 0.01  # 5x the SSIM tolerance
    golden.write_text(json.dumps(edited))
    rc, out = regress(capsys, golden)
    assert rc == 1
    row = next(line for line in out.splitlines() if line.startswith("ssim") and "static_reference" in line)
    assert row.split()[-1] == "REGRESSION" and "0.002" in row
    assert "REGRESSION: ssim / static_reference / 2 s" in out and "--update" in out
    assert sum(line.endswith("OK") for line in out.splitlines()) == 7  # every other cell still passes

    cell["value"] -= 0.01  # restored; now delete a cell the run still produces
    del edited["cells"][0]
    golden.write_text(json.dumps(edited))
    rc, out = regress(capsys, golden)
    assert rc == 1 and "1 EXTRA of 8 cells" in out, out


def test_missing_golden_says_run_update(tmp_path, capsys):
    rc = main(["regress", *FAST, "--golden", str(tmp_path / "none.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "no golden scores" in err and "--update" in err


def test_compare_tolerances_and_missing_values():
    spec = RegressionSpec(methods=("m",), metrics=("psnr",))
    g = {("psnr", "m", 4.0): {"value": 20.0}, ("psnr", "gone", 4.0): {"value": 1.0}}
    f = {("psnr", "m", 4.0): {"value": 20.04}}
    rows = {r.method: r for r in compare(spec, g, f)}
    assert rows["m"].status == "OK" and rows["gone"].status == "MISSING"
    rows = {r.method: r for r in compare(spec, g, {("psnr", "m", 4.0): {"value": 20.06}})}
    assert rows["m"].status == "REGRESSION" and rows["m"].diff == pytest.approx(0.06)
    assert compare(spec, {("psnr", "m", 4.0): {"value": None}}, {("psnr", "m", 4.0): {"value": 3.0}})[0].status == \
        "REGRESSION"
    with pytest.raises(ConfigError, match="no tolerance"):
        RegressionSpec(metrics=("fid",))


def test_default_spec_reads_method_arguments_from_the_preset_and_needs_no_weights():
    from bench.metrics import WEIGHTED_METRICS
    from bench.regress import method_args

    assert DEFAULT_SPEC.methods == ("everanimate", "wan_animate") and DEFAULT_SPEC.preset == "lab"
    assert not set(DEFAULT_SPEC.metrics) & set(WEIGHTED_METRICS)
    assert DEFAULT_SPEC.golden_path() == Path("results/golden/lab.json")
    args = method_args(DEFAULT_SPEC)
    from bench.config import build_config

    preset = build_config("lab")
    assert args == {m: preset.args_for(m) for m in DEFAULT_SPEC.methods}
    assert replace(DEFAULT_SPEC, durations=(2.0,)).durations == (2.0,)


@pytest.mark.skipif(not LAB_GOLDEN.exists(),
                    reason="results/golden/lab.json not generated yet: after the lab models are trained, run "
                           "`python -m bench regress --update` and commit it")
def test_default_lab_regression_matches_checked_in_golden(capsys):
    rc = main(["regress", "--golden", str(LAB_GOLDEN)])
    out = capsys.readouterr().out
    assert rc == 0, out
