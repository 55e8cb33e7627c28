import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.config import build_config, parse_method_args
from bench.errors import ConfigError
from bench.registry import method_class

REPO = Path(__file__).resolve().parent.parent


def test_ls_lists_everything_without_importing_torch():
    code = ("import sys; from bench.cli import main; main(['ls']); "
            "heavy = [m for m in ('torch', 'diffusers', 'cv2', 'av') if m in sys.modules]; "
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    for name in ("everanimate", "wan_animate", "ground_truth", "psnr", "lab", "paper"):
        assert name in out.stdout


def test_unknown_method_exits_nonzero_with_close_names(capsys):
    assert main(["run", "--methods", "wan_animat", "--no-progress", "--results", "/tmp/unused"]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'wan_animat'" in err and "did you mean wan_animate" in err and "fix:" in err


def test_missing_optional_dependency_says_what_to_install(monkeypatch):
    monkeypatch.setenv("BENCH_PLUGINS", "needs_pkg=tests.plugin_missing_dep:Method")
    with pytest.raises(ConfigError, match="pip install"):
        method_class("needs_pkg")


def test_precedence_cli_over_config_over_preset(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[run]\nseed = 7\nwindow_s = 2.5\n[methods.wan_animate]\nrefert_num = 5\nsteps = 4\n')
    c = build_config("lab", config_file=str(cfg), seed=9, method_args=parse_method_args(["wan_animate.steps=8"]))
    assert c.seed == 9 and c.window_s == 2.5 and c.durations == (10.0, 90.0)  # CLI > file > preset
    assert c.args_for("wan_animate")["refert_num"] == 5 and c.args_for("wan_animate")["steps"] == 8
    with pytest.raises(ConfigError, match="unknown"):
        bad = tmp_path / "bad.toml"
        bad.write_text("[run]\nsede = 1\n")
        build_config("lab", config_file=str(bad))


def test_model_dir_on_the_command_line_replaces_the_presets_lab_components():
    c = build_config("lab", method_args=parse_method_args(["wan_animate.model_dir=/weights", "wan_animate.steps=8"]))
    assert c.args_for("wan_animate") == {"model_dir": "/weights", "steps": 8}
    assert c.args_for("everanimate") == {"components": "lab", "steps": 12}  # the lab preset samples 12 steps
    back = build_config("lab", method_args=parse_method_args(["wan_animate.components=tiny-random"]))
    assert back.args_for("wan_animate") == {"components": "tiny-random", "steps": 12}


def test_help_explains_each_subcommand():
    for cmd in ("run", "score", "table", "doctor", "ls"):
        out = subprocess.run([sys.executable, "-m", "bench", cmd, "--help"], cwd=REPO, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0 and "usage:" in out.stdout and len(out.stdout) > 300, (cmd, out.stderr)


def test_score_help_shows_both_modes_and_metrics_take_one_form(capsys):
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    out = capsys.readouterr().out
    assert "--face-boxes" in out and "--seam-chunk" in out and "--method-arg" in out  # pair and run options
    from bench.metrics import pair

    import argparse

    parser = argparse.ArgumentParser()
    pair.add_arguments(parser)
    args = parser.parse_args(["--gt", "g.mp4", "--pred", "p.mp4", "--metrics", "psnr", "ssim"])
    assert args.metrics == ["psnr", "ssim"]  # space-separated, as `bench run --metrics psnr ssim`


def test_ls_methods_lists_arguments_with_defaults():
    out = subprocess.run([sys.executable, "-m", "bench", "ls", "--methods"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "refert_num=1" in out.stdout and "folder=None" in out.stdout
    assert "arguments: none" in out.stdout  # ground_truth / static_reference
