"""bench.models.wan: tiny components, folders (save / load / check / fingerprint), conditioning helpers."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bench.errors import ConfigError, WeightsError
from bench.models import wan
from tests.wan_helpers import single_thread


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with single_thread():
        yield


@pytest.fixture(scope="module")
def tiny():
    return wan.tiny_components(0)


def _inputs(comps, frames=9, size=32, seed=0):
    rng = np.random.default_rng(seed)
    pose = rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    face = rng.integers(0, 256, (frames, 16, 16, 3), dtype=np.uint8)
    with torch.no_grad():
        pose_lat = wan.pose_latents(comps.vae, wan.video_pixels(pose, size, size))
        ref = wan.reference_condition(comps.vae, wan.reference_pixels(comps, pose[0], size, size))
        carry = wan.carry_condition(comps.vae, None, frames, size, size, 1, known=False)
    noise = torch.randn((1, 16, pose_lat.shape[2] + 1, size // 8, size // 8), generator=torch.Generator().manual_seed(seed))
    return dict(hidden_states=torch.cat([noise, torch.cat([ref, carry], 2)], 1), timestep=torch.tensor([500.0]),
                encoder_hidden_states=wan.encode_prompt(comps),
                encoder_hidden_states_image=wan.clip_image_features(comps, pose[0]), pose_hidden_states=pose_lat,
                face_pixel_values=wan.video_pixels(face, 16, 16), return_dict=False)


def test_tiny_components_are_deterministic_real_classes(tiny):
    from diffusers import AutoencoderKLWan, WanAnimateTransformer3DModel

    again, other = wan.tiny_components(0), wan.tiny_components(1)
    assert isinstance(tiny.transformer, WanAnimateTransformer3DModel) and isinstance(tiny.vae, AutoencoderKLWan)
    for a, b in zip(tiny.transformer.state_dict().values(), again.transformer.state_dict().values()):
        assert torch.equal(a, b)
    assert not torch.equal(tiny.transformer.proj_out.weight, other.transformer.proj_out.weight)
    assert torch.equal(tiny.prompt_embeds, again.prompt_embeds)
    info = tiny.info()
    assert info["trained"] is False and "untrained" in info["weights"] and info["transformer_params"] > 0
    with pytest.raises(ConfigError, match="multiple of inject_face_every"):
        wan.WanComponentsConfig(num_layers=3, inject_face_every=2)
    with pytest.raises(ConfigError, match="power of two"):
        wan.WanComponentsConfig(motion_encoder_size=24)


def test_conditioning_shapes_and_masks(tiny):
    inputs = _inputs(tiny, frames=9)
    assert inputs["hidden_states"].shape == (1, 36, 4, 4, 4)  # 9 frames -> 3 target slices + reference slot
    mask = wan.i2v_mask(1, 3, 2, 2, known_frames=1, dtype=torch.float32, device="cpu")
    assert mask.shape == (1, 4, 3, 2, 2)
    assert mask[:, :, 0].eq(1).all() and mask[:, :, 1:].eq(0).all()  # first frame counts 4 times -> slice 0
    mask5 = wan.i2v_mask(1, 3, 2, 2, known_frames=5, dtype=torch.float32, device="cpu")
    assert mask5[:, :, :2].eq(1).all() and mask5[:, :, 2].eq(0).all()
    with torch.no_grad():
        pixels = wan.vae_decode(tiny.vae, wan.vae_encode(tiny.vae, torch.zeros(1, 3, 9, 32, 32)))
    assert pixels.shape == (1, 3, 9, 32, 32)


def test_reuse_face_motion_gives_identical_output_and_restores(tiny):
    inputs = _inputs(tiny)
    calls = []
    handle = tiny.transformer.motion_encoder.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        with torch.no_grad():
            plain = tiny.transformer(**inputs)[0]
            n_plain = len(calls)
            with wan.reuse_face_motion(tiny.transformer, inputs["face_pixel_values"]):
                n_before = len(calls)
                cached = [tiny.transformer(**inputs)[0] for _ in range(3)]
                assert all(torch.equal(plain, c) for c in cached)
            again = tiny.transformer(**inputs)[0]
    finally:
        handle.remove()
    assert n_plain == 2  # 9 face frames in batches of 8: the motion encoder runs twice per forward
    assert n_before == n_plain + 2  # once for the cache; the 3 cached forwards only hit the cheap stand-in
    assert torch.equal(plain, again)
    assert "forward" not in tiny.transformer.motion_encoder.__dict__
    assert "forward" not in tiny.transformer.face_encoder.__dict__


def test_save_load_round_trip_and_fingerprint(tiny, tmp_path, monkeypatch):
    folder = wan.save_components(tiny, tmp_path / "tiny")
    wan.check_model_dir(folder)
    loaded = wan.load_components(folder, dtype=torch.float32)
    assert loaded.trained is False and loaded.source == tiny.source and loaded.config == tiny.config
    for (k, a), b in zip(tiny.transformer.state_dict().items(), loaded.transformer.state_dict().values()):
        assert torch.equal(a, b), k
    assert torch.equal(wan.encode_prompt(loaded), wan.encode_prompt(tiny))
    assert type(loaded.scheduler) is type(tiny.scheduler) and loaded.scheduler.config.flow_shift == 5.0
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "WanAnimatePipeline"

    digest = wan.fingerprint(folder)
    assert len(digest) == 64 and (folder / wan.FINGERPRINT_CACHE).is_file()
    import bench.sample

    hashed = []
    real = bench.sample.sha256_file
    monkeypatch.setattr(bench.sample, "sha256_file", lambda p: hashed.append(p) or real(p))
    assert wan.fingerprint(folder) == digest and hashed == []  # cached by size + mtime
    (folder / "vae" / "config.json").write_text((folder / "vae" / "config.json").read_text() + " ")
    assert wan.fingerprint(folder) != digest and len(hashed) == 1


def test_missing_files_are_listed(tmp_path):
    with pytest.raises(WeightsError, match="does not exist") as err:
        wan.check_model_dir(tmp_path / "nothing", method="wan_animate")
    assert "wan_animate" in str(err.value) and err.value.fix
    (tmp_path / "half" / "vae").mkdir(parents=True)
    (tmp_path / "half" / "model_index.json").write_text("{}")
    with pytest.raises(WeightsError) as err:
        wan.check_model_dir(tmp_path / "half")
    message = str(err.value)
    for needed in ("transformer/config.json", "image_encoder", "scheduler_config.json", "tokenizer"):
        assert needed in message
    with pytest.raises(WeightsError, match="VAE file"):
        wan.load_vae(tmp_path / "half")
    with pytest.raises(WeightsError, match="no such folder"):
        wan.fingerprint(tmp_path / "nothing")


def test_schedulers_use_shift(tiny):
    unipc = wan.make_scheduler(tiny, shift=3.0)
    assert unipc.config.flow_shift == 3.0 and unipc.config.prediction_type == "flow_prediction"
    euler, plain = wan.make_scheduler(shift=5.0, solver="euler"), wan.make_scheduler(shift=1.0, solver="euler")
    euler.set_timesteps(20)
    plain.set_timesteps(20)
    assert euler.config.shift == 5.0 and float(euler.sigmas[0]) == pytest.approx(1.0)
    assert (euler.sigmas[1:-1] > plain.sigmas[1:-1]).all()  # shift 5 spends more steps at high noise
    with pytest.raises(ConfigError):
        wan.make_scheduler(shift=5.0, solver="ddim")


def _run_profiled(module, x, grad: bool):
    """``module(x)`` with gradients on or off, and the names of the aten ops it ran."""
    with torch.set_grad_enabled(grad), torch.profiler.profile() as prof:
        out = module(x)
    return out, {e.key for e in prof.key_averages()}


def test_onednn_conv3d_matches_the_native_kernel_and_leaves_training_alone():
    from bench.models.wan import onednn_conv3d

    torch.manual_seed(0)
    conv = torch.nn.Conv3d(8, 8, 3, padding=(0, 1, 1))
    x = torch.randn(1, 8, 6, 16, 16)
    with torch.no_grad():
        native = conv(x)
    fast = onednn_conv3d(torch.nn.Sequential(conv))[0]
    assert "_conv_forward" in fast.__dict__ and onednn_conv3d(fast) is fast  # idempotent
    out, ops = _run_profiled(fast, x, grad=False)
    assert "aten::mkldnn_convolution" in ops
    torch.testing.assert_close(out, native, rtol=1e-4, atol=1e-4)
    grad_out, ops = _run_profiled(fast, x, grad=True)  # gradients on: PyTorch's own kernel choice, identical values
    assert "aten::mkldnn_convolution" not in ops
    assert torch.equal(grad_out.detach(), native)
    with torch.no_grad():  # weights changed in place (a state dict loaded): the channels-last copy follows
        conv.weight.mul_(2)
        changed = torch.nn.functional.conv3d(x, conv.weight, conv.bias, padding=(0, 1, 1))
    torch.testing.assert_close(_run_profiled(fast, x, grad=False)[0], changed, rtol=1e-4, atol=1e-4)


def test_onednn_conv3d_for_training_gives_the_native_gradients():
    from bench.models.wan import onednn_conv3d

    torch.manual_seed(0)
    conv = torch.nn.Conv3d(8, 8, 3, padding=(0, 1, 1))
    x = torch.randn(1, 8, 6, 16, 16, requires_grad=True)
    conv(x).square().sum().backward()
    native = [t.grad.clone() for t in (x, conv.weight, conv.bias)]
    for t in (x, conv.weight, conv.bias):
        t.grad = None
    fast = onednn_conv3d(onednn_conv3d(torch.nn.Sequential(conv)), training=True)[0]  # the last call decides
    out, ops = _run_profiled(fast, x, grad=True)
    assert "aten::mkldnn_convolution" in ops
    out.square().sum().backward()
    for got, want in zip((x.grad, conv.weight.grad, conv.bias.grad), native):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)


def test_rsqrt_rms_norm_matches_diffusers_and_leaves_training_alone():
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanRMS_norm

    from bench.models.wan import rsqrt_rms_norm

    torch.manual_seed(0)
    norm = WanRMS_norm(8, images=False)
    norm.gamma.data.uniform_(0.5, 1.5)
    x = torch.randn(1, 8, 3, 16, 16)
    x[..., 0, 0] = 0.0  # a zero vector: the same 1e-12 floor, no NaN
    with torch.no_grad():
        native = norm(x)
    fast = rsqrt_rms_norm(torch.nn.Sequential(norm))[0]
    assert "forward" in fast.__dict__ and rsqrt_rms_norm(fast) is fast  # idempotent
    out, ops = _run_profiled(fast, x, grad=False)
    assert "aten::linalg_vector_norm" not in ops
    torch.testing.assert_close(out, native, rtol=1e-6, atol=1e-6)
    grad_out, ops = _run_profiled(fast, x, grad=True)  # gradients on: diffusers' own forward
    assert "aten::linalg_vector_norm" in ops
    assert torch.equal(grad_out.detach(), native)
