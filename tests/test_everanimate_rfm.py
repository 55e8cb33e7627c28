"""RFM target, alpha schedule, loss weight, gates, degradations, config files."""
import numpy as np
import pytest
import torch

from bench.errors import ConfigError
from everanimate import degrade, rfm
from everanimate.config import DegradeConfig, RFMConfig, load_train_config


def test_alpha_matches_spec():
    a = rfm.alpha(torch.tensor([100.0, 250.0, 500.0, 750.0, 900.0, 1000.0]))
    assert torch.allclose(a, torch.tensor([0.30, 0.70, 1.0, 0.70, 0.30, 0.0], dtype=torch.float64), atol=0.006)
    assert rfm.alpha(500.0).item() == pytest.approx(1.0, abs=1e-4)
    assert torch.all(rfm.alpha(rfm.train_timesteps()) >= 0)
    assert rfm.alpha(500.0, RFMConfig(lam=0.5)).item() == pytest.approx(0.5, abs=1e-4)


def test_loss_weight_has_mean_one_and_peaks_mid():
    w = rfm.loss_weight(rfm.train_timesteps())
    assert w.mean().item() == pytest.approx(1.0, abs=1e-9)
    assert w.min().item() == pytest.approx(0.0, abs=1e-9)
    assert rfm.loss_weight(500.0) > rfm.loss_weight(100.0) > rfm.loss_weight(990.0)


def test_train_grid_is_shift5_uniform():
    t = rfm.train_timesteps()
    assert len(t) == 1000 and t[0] == pytest.approx(1000.0)
    s = 0.5
    assert rfm.shifted_sigmas(1000, 5.0)[500].item() == pytest.approx(5 * s / (1 + 4 * s))


def test_rfm_target_formula_and_plain_fm_reduction():
    g = torch.Generator().manual_seed(0)
    x0, aug, eps = (torch.randn(3, 16, 2, 4, 4, generator=g) for _ in range(3))
    sigma = torch.tensor([0.9, 0.6, 0.25])
    u = rfm.rfm_target(x0, aug, eps, sigma)
    for i in range(3):
        a = rfm.alpha(sigma[i].double() * 1000).float()
        expected = (eps[i] - x0[i]) + a * (1 - sigma[i]) * (aug[i] - x0[i])
        assert torch.allclose(u[i], expected, atol=1e-6)
        # the second form of the spec: alpha (x_aug_sigma - x_sigma)
        diff = rfm.noised(aug, eps, sigma)[i] - rfm.noised(x0, eps, sigma)[i]
        assert torch.allclose(u[i], (eps[i] - x0[i]) + a * diff, atol=1e-5)
    assert torch.equal(rfm.rfm_target(x0, x0, eps, sigma), eps - x0)
    assert torch.allclose(rfm.rfm_target(x0, aug, eps, sigma, RFMConfig(lam=0.0)), eps - x0)


def test_perturb_gate_respects_sigma_and_probability():
    g = torch.Generator().manual_seed(1)
    sigma = torch.cat([torch.full((4000,), 0.3), torch.full((4000,), 0.7)])
    gate = rfm.perturb_gate(sigma, g)
    assert not gate[:4000].any()
    assert gate[4000:].float().mean().item() == pytest.approx(0.8, abs=0.03)
    assert not rfm.perturb_gate(sigma, g, RFMConfig(prob=0.0)).any()


def test_sample_sigmas_come_from_the_grid():
    s = rfm.sample_sigmas(256, torch.Generator().manual_seed(0))
    grid = rfm.shifted_sigmas().float()
    assert all(torch.isclose(grid, v).any() for v in s)


def test_weighted_mse_is_weight_times_mse():
    pred, target = torch.ones(2, 16, 2, 2, 2), torch.zeros(2, 16, 2, 2, 2)
    sigma = torch.tensor([0.5, 0.99])
    w = rfm.loss_weight(sigma.double() * 1000)
    assert rfm.weighted_mse(pred, target, sigma).item() == pytest.approx(w.mean().item(), rel=1e-6)


def _clip():
    rng = np.random.default_rng(0)
    return (rng.random((3, 64, 64, 3)) * 200).astype(np.uint8)


@pytest.mark.parametrize("fn,args", [(degrade.clahe, (8.0, 4)), (degrade.oversaturate, (2.0,)),
                                     (degrade.brighten, (1.2,)), (degrade.erase_detail, (0.1, 0.1, 0.3, 16))])
def test_each_degradation_changes_pixels(fn, args):
    frame = _clip()[0]
    out = fn(frame, *args)
    assert out.shape == frame.shape and out.dtype == np.uint8 and not np.array_equal(out, frame)


def test_degradation_params_one_set_per_clip():
    clip = _clip()
    clip[1] = clip[0]
    params = degrade.sample_params(np.random.default_rng(3))
    out = degrade.apply(clip, params)
    assert np.array_equal(out[0], out[1])  # same frame, same parameters
    none = DegradeConfig(clahe_p=0, saturation_p=0, brightness_p=0, erase_p=0)
    p0 = degrade.sample_params(np.random.default_rng(3), none)
    assert p0.is_identity and np.array_equal(degrade.apply(clip, p0), clip)
    all_on = DegradeConfig(clahe_p=1, saturation_p=1, brightness_p=1, erase_p=1)
    p1 = degrade.sample_params(np.random.default_rng(3), all_on)
    assert p1.clahe and p1.saturation and p1.brightness and 1 <= len(p1.erase) <= 4
    assert 1 <= p1.clahe[0] <= 64 and 1 <= p1.clahe[1] <= 32 and 1.3 <= p1.saturation <= 3.0


def test_config_file_and_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('steps = 7\nlr = 2e-4\n[lora]\nrank = 8\n[data]\ncontext_frames = 9\ntarget_frames = 9\n')
    cfg = load_train_config(f, ["lora.alpha=4", "data.first_chunk_p=0.5"], stage=1)
    assert (cfg.steps, cfg.lr, cfg.lora.rank, cfg.lora.lora_alpha, cfg.data.first_chunk_p) == (7, 2e-4, 8, 4.0, 0.5)
    assert cfg.lora.rank == 8 and load_train_config(f).lora.lora_alpha == 8.0  # alpha = rank by default
    f.write_text("[lora]\nrnak = 8\n")
    with pytest.raises(ConfigError, match="did you mean rank"):
        load_train_config(f)
    with pytest.raises(ConfigError, match="init_lora"):
        load_train_config(None, stage=2)


def test_shipped_configs_parse():
    from pathlib import Path

    for path in sorted(Path("everanimate/configs").glob("*.toml")):
        stage = 2 if ("stage2" in path.name or "no_plp" in path.name) else 1
        cfg = load_train_config(path, ["init_lora=x.safetensors"] if "stage2" in path.name else [])
        assert cfg.stage == stage, path
        assert cfg.memory == ("pixel_carry" if "no_plp" in path.name else "plp"), path


def test_inference_grid_is_the_release_grid_and_lies_on_the_training_grid():
    sig = rfm.sampling_sigmas(20, 5.0)
    assert len(sig) == 21 and sig[0].item() == 1.0 and sig[-1].item() == 0.0
    assert [round(v, 4) for v in sig[-5:-1].tolist()] == [0.5556, 0.4688, 0.3571, 0.2083]
    s = torch.arange(20, 0, -1, dtype=torch.float64) / 20
    assert torch.allclose(sig[:-1], 5 * s / (1 + 4 * s), atol=1e-12)
    # one grid: every inference sigma is a training sigma (s = 1, 0.95, ... are every 50th of the 1000 steps)
    assert torch.allclose(sig[:-1], rfm.shifted_sigmas(1000, 5.0)[::50], atol=1e-12)
    # not diffusers' FlowMatchEulerDiscreteScheduler default grid (last sigma 0.0244)
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(shift=5.0)
    sched.set_timesteps(20)
    assert abs(float(sched.sigmas[-2]) - 0.0244) < 1e-3 and abs(float(sig[-2]) - 0.2083) < 1e-4
