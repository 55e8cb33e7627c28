"""The goldens' pinned environment: the constraints file, the README / CI install command, regress's version report."""
from __future__ import annotations

import re
from pathlib import Path

from bench.regress import CONSTRAINTS, FreshRun, version_lines

ROOT = Path(__file__).resolve().parent.parent


def test_constraints_pin_the_libraries_behind_the_numbers():
    pins = {}
    for line in (ROOT / CONSTRAINTS).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert re.fullmatch(r"[A-Za-z0-9_.-]+", name) and re.fullmatch(r"[0-9][0-9A-Za-z.]*", version), line
            pins[name.lower().replace("_", "-")] = version
    for name in ("torch", "torchvision", "diffusers", "transformers", "peft", "accelerate", "numpy", "av",
                 "opencv-python-headless", "numba", "lpips", "torchmetrics", "pytorch-fid", "onnxruntime", "pytest"):
        assert name in pins, name
    # the package's own ranges stay loose: no exact pins in pyproject.toml
    assert "==" not in (ROOT / "pyproject.toml").read_text()


def test_readme_test_command_and_ci_install_with_the_constraints():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f'pip install -e ".[dev]" -c {CONSTRAINTS.as_posix()}' in ci
    assert f"    {ci}\n" in readme  # CI runs the README's test command verbatim


def fresh(**packages):
    return FreshRun(cells={}, samples=[], provenance={"packages": {"python": "3.11.7", **packages}})


def test_regress_names_the_versions_that_differ_from_the_golden():
    golden = {"provenance": {"packages": {"torch": "2.15.0", "diffusers": "0.42.1", "python": "3.11.7"}}}
    lines = version_lines(fresh(torch="2.14.1", diffusers="0.42.1", numba="0.68.1"), golden)
    assert lines[0].startswith("versions: python 3.11.7, torch 2.14.1")
    assert "torch 2.15.0 -> 2.14.1" in lines[1] and "diffusers" not in lines[1] and "numba" not in lines[1]
    assert "-c constraints/golden.txt" in lines[2]
    same = version_lines(fresh(torch="2.15.0", diffusers="0.42.1"), golden)
    assert same[-1] == "versions: same as the golden file's"
    assert len(version_lines(fresh(torch="2.15.0"), None)) == 1  # --update: nothing to compare with
