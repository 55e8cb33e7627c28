"""LoRA files (peft and DiffSynth names), training samples, overfitting, the two stages and resume."""
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from bench.errors import ConfigError, WeightsError
from bench.models import wan
from everanimate.config import DataConfig, load_train_config
from everanimate.data import build_example
from bench.models.lora import add_lora, diffsynth_to_diffusers, load_lora, lora_state_dict, save_lora
from bench.models.lora import LoRAConfig
from everanimate import rfm
from everanimate.train import EverAnimateDiT, batch_loss, build_components, prepare_batch, train
from tests.everanimate_helpers import MovingSquareSample

SMALL = ["data.context_frames=9", "data.target_frames=9", "gradient_checkpointing=true"]


def _randomised_lora(seed=0, rank=4):
    tr = wan.tiny_components(seed=0).transformer
    add_lora(tr, LoRAConfig(rank=rank))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in tr.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return tr


def test_lora_targets_attention_and_ffn_only():
    tr = wan.tiny_components(seed=0).transformer
    layers = add_lora(tr, LoRAConfig(rank=4))
    names = {l.split(".", 2)[2] for l in layers}
    assert names == {"attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k",
                     "attn2.to_v", "attn2.to_out.0", "ffn.net.0.proj", "ffn.net.2"}
    assert all(l.startswith("blocks.") for l in layers)  # never the face adapter
    assert tr.peft_config["default"].lora_alpha == 4


def test_lora_save_load_roundtrip_is_exact(tmp_path):
    tr = _randomised_lora()
    path = save_lora(tr, tmp_path / "l.safetensors")
    assert all(k.startswith("transformer.blocks.") for k in load_file(path))
    fresh = wan.tiny_components(seed=0).transformer
    info = load_lora(fresh, path)
    assert info["rank"] == 4 and info["format"] == "diffusers-peft"
    a, b = lora_state_dict(tr), lora_state_dict(fresh)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(1, 36, 2, 8, 8)
    args = (torch.tensor([500.0]), torch.randn(1, 16, 32), torch.randn(1, 17, 32), torch.randn(1, 16, 1, 8, 8),
            torch.rand(1, 3, 1, 16, 16))
    with torch.no_grad():
        assert torch.equal(tr(x, *args).sample, fresh(x, *args).sample)


def test_merged_lora_matches_the_unmerged_forward(tmp_path):
    """Inference loads merge the (scaled) update into the base weights: same output, no per-call LoRA path."""
    path = save_lora(_randomised_lora(seed=2), tmp_path / "l.safetensors")
    plain, merged = wan.tiny_components(seed=0).transformer, wan.tiny_components(seed=0).transformer
    assert load_lora(plain, path, scale=0.5)["merged"] is False
    assert load_lora(merged, path, scale=0.5, merge=True)["merged"] is True
    x = torch.randn(1, 36, 2, 8, 8)
    args = (torch.tensor([500.0]), torch.randn(1, 16, 32), torch.randn(1, 17, 32), torch.randn(1, 16, 1, 8, 8),
            torch.rand(1, 3, 1, 16, 16))
    with torch.no_grad():
        out_plain, out_merged = plain(x, *args).sample, merged(x, *args).sample
        merged.disable_adapters()
        base = merged(x, *args).sample
    assert torch.allclose(out_plain, out_merged, atol=1e-5) and not torch.allclose(base, out_merged, atol=1e-3)
    with torch.no_grad():
        assert torch.allclose(base, wan.tiny_components(seed=0).transformer(x, *args).sample, atol=1e-5)
    with pytest.raises(ValueError, match="cannot be trained"):
        load_lora(wan.tiny_components(seed=0).transformer, path, trainable=True, merge=True)


def test_diffsynth_key_names_load_into_diffusers(tmp_path):
    tr = _randomised_lora(seed=1)
    ours = lora_state_dict(tr)
    to_ds = {"attn1.to_q": "self_attn.q", "attn1.to_k": "self_attn.k", "attn1.to_v": "self_attn.v",
             "attn1.to_out.0": "self_attn.o", "attn2.to_q": "cross_attn.q", "attn2.to_k": "cross_attn.k",
             "attn2.to_v": "cross_attn.v", "attn2.to_out.0": "cross_attn.o", "ffn.net.0.proj": "ffn.0",
             "ffn.net.2": "ffn.2"}
    ds = {}
    for k, v in ours.items():
        block, rest = k.split(".", 2)[1], k.split(".", 2)[2]
        layer, factor = rest.rsplit(".lora_", 1)
        ds[f"blocks.{block}.{to_ds[layer]}.lora_{factor.replace('.weight', '')}.default.weight"] = v
    assert "blocks.0.self_attn.q.lora_A.default.weight" in ds
    save_file(ds, str(tmp_path / "stage2_480p.safetensors"))
    fresh = wan.tiny_components(seed=0).transformer
    info = load_lora(fresh, tmp_path / "stage2_480p.safetensors")
    assert info["format"] == "diffsynth" and info["alpha"] == 4.0
    got = lora_state_dict(fresh)
    assert all(torch.equal(got[k], ours[k]) for k in ours)
    assert diffsynth_to_diffusers("diffusion_model.blocks.7.cross_attn.o.lora_up.weight") == \
        "blocks.7.attn2.to_out.0.lora_B.weight"


def test_mismatched_lora_lists_unmatched_keys(tmp_path):
    bad = {"blocks.0.self_attn.q.lora_A.default.weight": torch.zeros(4, 32),
           "blocks.0.self_attn.q.lora_B.default.weight": torch.zeros(32, 4),
           "blocks.9.attn1.to_q.lora_A.weight": torch.zeros(4, 32),
           "blocks.9.attn1.to_q.lora_B.weight": torch.zeros(32, 4),
           "blocks.1.ffn.0.lora_A.default.weight": torch.zeros(4, 99),
           "blocks.1.ffn.0.lora_B.default.weight": torch.zeros(64, 4)}
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(WeightsError, match="unmatched keys") as exc:
        load_lora(wan.tiny_components(seed=0).transformer, tmp_path / "bad.safetensors")
    assert "blocks.9.attn1.to_q" in str(exc.value) and "blocks.1.ffn.net.0.proj" in str(exc.value)
    assert "blocks.0.attn1.to_q " not in str(exc.value)
    save_file({"patch_embedding.weight": torch.zeros(2)}, str(tmp_path / "base.safetensors"))
    with pytest.raises(WeightsError, match="patch_embedding.weight"):
        load_lora(wan.tiny_components(seed=0).transformer, tmp_path / "base.safetensors")


def test_training_example_windows_and_memory():
    s = MovingSquareSample(40)
    cfg = DataConfig(context_frames=9, target_frames=9, first_chunk_p=0.0, anchors_from_context_p=1.0)
    ex = build_example(s, np.random.default_rng(0), cfg, stage=2)
    assert ex.target.shape == (9, 64, 64, 3) and ex.context.shape == (9, 64, 64, 3) and len(ex.anchors) == 4
    start = ex.target_start - 5
    assert np.array_equal(ex.target[:4], s.gt(start + 5, start + 9))  # target starts 4 frames before context ends
    assert np.array_equal(ex.context, s.gt(start, start + 9))
    assert ex.target_degraded is not None and ex.target_degraded.shape == ex.target.shape
    first = build_example(s, np.random.default_rng(0), DataConfig(context_frames=9, target_frames=9, first_chunk_p=1.0), 1)
    assert first.first_chunk and first.context is None and first.target_degraded is None
    assert all(np.array_equal(a, s.references()[0]) for a in first.anchors)
    dropped = build_example(s, np.random.default_rng(0), DataConfig(context_frames=9, target_frames=9,
                                                                    pose_dropout_p=1.0), 1)
    assert dropped.pose_dropped and not dropped.pose.any()
    with pytest.raises(Exception, match="needs 14"):
        build_example(MovingSquareSample(10), np.random.default_rng(0), cfg, 1)


@pytest.mark.parametrize("slots,factor", [("target", 10), ("all", 5)])
def test_tiny_model_overfits_one_training_pair(slots, factor):
    # all K + T slots (the default) leave the tiny model more to memorise than the T targets alone
    cfg = load_train_config(None, SMALL + ["lora.rank=16", "data.first_chunk_p=0", f"loss_slots={slots}"], stage=1)
    comps = build_components(cfg)
    add_lora(comps.transformer, cfg.lora)
    comps.transformer.enable_gradient_checkpointing()
    ex = build_example(MovingSquareSample(20), np.random.default_rng(0), cfg.data, 1)
    batch = prepare_batch(comps, [ex], torch.Generator().manual_seed(0), cfg)
    model = EverAnimateDiT(comps.transformer, 4).train()
    model.requires_grad_(True)  # the whole tiny model (LoRA included) memorises the pair
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    losses = []
    for _ in range(60):
        loss = batch_loss(model, batch, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / factor, losses[::10]


def test_two_stages_cli_resume_and_stage2_starts_from_stage1(tmp_path, monkeypatch):
    import everanimate.train as train_mod
    from everanimate.__main__ import main

    samples = [MovingSquareSample(20)]
    monkeypatch.setattr(train_mod, "load_samples", lambda config: samples)
    s1 = tmp_path / "s1"
    common = [f"--set={o}" for o in SMALL + ["lr=1e-3", "checkpoint_every=1"]]
    # interrupted after 1 of 2 steps, then resumed from the checkpoint
    cfg1 = load_train_config(None, SMALL + ["lr=1e-3", "checkpoint_every=1", "steps=2", f"output_dir={s1}"], stage=1)
    partial = train(cfg1, samples, progress=False, max_steps=1)
    assert partial["step"] == 1 and (s1 / "checkpoints/step-1/lora.safetensors").is_file()
    # other training data (e.g. re-rendered pose maps) must not silently continue that run's checkpoint
    with pytest.raises(ConfigError, match="different data") as err:
        train(cfg1, [MovingSquareSample(20, seed=1)], progress=False)
    assert "checkpoints to start this run from step 0" in err.value.fix
    assert main(["train", "--stage", "1", *common, "--steps", "2", "--output-dir", str(s1), "--no-progress"]) == 0
    log = __import__("json").loads((s1 / "train_log.json").read_text())
    assert len(log["losses"]) == 2 and log["losses"][0] == partial["losses"][0]
    stage1 = load_file(s1 / "lora.safetensors")
    assert any(v.abs().sum() > 0 for k, v in stage1.items() if "lora_B" in k)  # it trained

    seen = {}
    original = train_mod.attach_lora

    def spy(transformer, config):
        info = original(transformer, config)
        seen.update({k: v.clone() for k, v in lora_state_dict(transformer).items()})
        return info

    monkeypatch.setattr(train_mod, "attach_lora", spy)
    s2 = tmp_path / "s2"
    assert main(["train", "--stage", "2", *common, "--steps", "1", "--output-dir", str(s2),
                 "--init-lora", str(s1 / "lora.safetensors"), "--no-progress"]) == 0
    assert all(torch.equal(seen[k.removeprefix("transformer.")], v) for k, v in stage1.items())
    assert (s2 / "lora.safetensors").is_file()
    seen.clear()  # stage 1 continued from its own LoRA (it was once silently trained from zeros)
    more = tmp_path / "s1_more"
    assert main(["train", "--stage", "1", *common, "--steps", "1", "--output-dir", str(more),
                 "--init-lora", str(s1 / "lora.safetensors"), "--no-progress"]) == 0
    assert all(torch.equal(seen[k.removeprefix("transformer.")], v) for k, v in stage1.items())
    more_log = __import__("json").loads((more / "train_log.json").read_text())
    assert more_log["lora"]["init"] == str(s1 / "lora.safetensors")


def _plp_batch(overrides, seed=0, stage=1):
    cfg = load_train_config(None, SMALL + ["data.first_chunk_p=0", "data.anchors_from_context_p=1"] + overrides,
                            stage=stage, init_lora="unused.safetensors" if stage == 2 else None)
    comps = build_components(cfg)
    ex = build_example(MovingSquareSample(20), np.random.default_rng(seed), cfg.data, stage, cfg.degrade)
    return cfg, comps, ex, prepare_batch(comps, [ex], torch.Generator().manual_seed(seed), cfg)


def test_loss_covers_all_slots_by_default_target_only_as_option():
    k, c = 4, 16
    cfg, comps, ex, batch = _plp_batch(["rfm.prob=1.0"], stage=2)
    assert cfg.loss_slots == "all" and batch.target.shape[2] == k + 3  # 9 target frames -> 3 latent slices
    # anchor slots: plain flow-matching velocity eps - x0, where x0 = the anchor latents of the conditioning
    sigma = batch.sigma.view(-1, 1, 1, 1, 1)
    noisy, anchors = batch.inputs[:, :c, :k], batch.inputs[:, c + 4:, :k]
    assert torch.allclose(batch.target[:, :, :k], (noisy - (1 - sigma) * anchors) / sigma - anchors, atol=1e-4)
    _, _, _, target_only = _plp_batch(["rfm.prob=1.0", "loss_slots=target"], stage=2)
    assert target_only.target.shape[2] == 3 and torch.equal(target_only.target, batch.target[:, :, k:])
    assert torch.equal(target_only.inputs, batch.inputs)

    class Zero(torch.nn.Module):  # pred = 0: the loss is the weighted mean square of the supervised target
        def forward(self, inputs, *args):
            return torch.zeros(inputs.shape[0], c, *inputs.shape[2:])

    w = rfm.loss_weight(batch.sigma.double() * 1000).float()
    assert batch_loss(Zero(), batch, cfg).item() == pytest.approx((w * batch.target.pow(2).mean()).item(), rel=1e-5)
    cfg_t = load_train_config(None, SMALL + ["loss_slots=target"], stage=1)
    assert batch_loss(Zero(), target_only, cfg_t).item() == pytest.approx(
        (w * batch.target[:, :, k:].pow(2).mean()).item(), rel=1e-5)
    with pytest.raises(ConfigError, match="loss_slots"):
        load_train_config(None, ["loss_slots=anchors"])


def test_motion_memory_perturbation_reaches_the_model_input():
    k, c = 4, 16
    _, _, _, clean = _plp_batch([])
    assert not clean.motion_corrupted.any()
    _, _, _, shared = _plp_batch(["data.corrupt_motion_p=1", "data.corrupt_motion_shared_noise=true"])
    assert shared.motion_corrupted.all()
    motion = clean.inputs[:, c + 4:, k]  # the motion slot of the conditioning latents
    assert motion.abs().sum() > 0
    # everything but the motion slot is the same model input
    other = torch.ones(clean.inputs.shape[1], clean.inputs.shape[2], dtype=torch.bool)
    other[c + 4:, k] = False
    assert torch.equal(shared.inputs[:, other], clean.inputs[:, other])
    # shared noise = the target noise's first slot, recovered from the noisy anchor slot 0 of the model input
    s = float(shared.sigma[0])
    eps0 = (shared.inputs[:, :c, 0] - (1 - s) * shared.inputs[:, c + 4:, 0]) / s
    assert torch.allclose(shared.inputs[:, c + 4:, k], (1 - s) * motion + s * eps0, atol=1e-4)
    # fresh noise, scaled by corrupt_motion_std: (1 - sigma) motion + sigma * std * n with n ~ N(0, 1)
    _, _, _, fresh = _plp_batch(["data.corrupt_motion_p=1", "data.corrupt_motion_std=0.5"])
    noise = (fresh.inputs[:, c + 4:, k] - (1 - s) * motion) / (s * 0.5)
    assert 0.7 < noise.std().item() < 1.3 and not torch.allclose(noise, eps0, atol=1e-2)
    assert torch.equal(fresh.inputs[:, other], clean.inputs[:, other])
    # first-chunk samples have no motion memory: nothing to perturb
    cfg = load_train_config(None, SMALL + ["data.first_chunk_p=1", "data.corrupt_motion_p=1"], stage=1)
    comps = build_components(cfg)
    ex = build_example(MovingSquareSample(20), np.random.default_rng(0), cfg.data, 1)
    first = prepare_batch(comps, [ex], torch.Generator().manual_seed(0), cfg)
    assert not first.motion_corrupted.any() and first.inputs[:, c + 4:, k].abs().sum() == 0
    with pytest.raises(ConfigError, match="pixel_carry"):
        load_train_config(None, ["data.corrupt_motion_p=0.5", "memory=pixel_carry"])


def test_anchor_augmentation_one_transform_per_sample_as_the_release(monkeypatch):
    import everanimate.data as data_mod

    seen = []
    original = data_mod.apply_affine
    monkeypatch.setattr(data_mod, "apply_affine", lambda image, params: seen.append(params) or original(image, params))
    cfg = DataConfig(context_frames=9, target_frames=9, first_chunk_p=0.0, anchors_from_context_p=1.0,
                     anchor_augment_p=1.0)
    ex = build_example(MovingSquareSample(40), np.random.default_rng(0), cfg, stage=2)
    assert len(seen) == 4 and len(set(seen)) == 1  # one (scale, tx, ty) shared by the K anchors
    s, tx, ty = seen[0]
    assert 0.8 <= s <= 1.2 and abs(tx) <= 0.05 and abs(ty) <= 0.05  # +-5 % of the side
    assert ex.anchor_source == "context"
    seen.clear()  # reference anchors (the 5 % branch) and first-chunk samples are not augmented
    build_example(MovingSquareSample(40), np.random.default_rng(0),
                  DataConfig(context_frames=9, target_frames=9, first_chunk_p=0.0, anchors_from_context_p=0.0,
                             anchor_augment_p=1.0), stage=2)
    build_example(MovingSquareSample(40), np.random.default_rng(0), DataConfig(context_frames=9, target_frames=9,
                  first_chunk_p=1.0, anchor_augment_p=1.0), stage=2)
    build_example(MovingSquareSample(40), np.random.default_rng(0), cfg, stage=1)
    assert seen == []


def test_anchor_affine_matches_affine_grid_with_grey_padding():
    from everanimate.data import GREY, apply_affine

    img = (np.random.default_rng(0).random((32, 48, 3)) * 255).astype(np.uint8)
    for params in [(1.2, 0.05, -0.03), (0.85, -0.05, 0.02)]:
        s, tx, ty = params
        x = torch.from_numpy(img).permute(2, 0, 1)[None].double() / 127.5 - 1  # the VAE's [-1, 1] pixels
        theta = torch.tensor([[[s, 0, 2 * tx], [0, s, 2 * ty]]], dtype=torch.float64)  # affine_grid units
        grid = torch.nn.functional.affine_grid(theta, x.shape, align_corners=False)
        ref = torch.nn.functional.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
        ref = (ref[0].permute(1, 2, 0).numpy() + 1) * 127.5
        assert np.abs(apply_affine(img, params).astype(float) - ref).max() <= 1.0
    zoomed_out = apply_affine(img, (1.2, 0.0, 0.0))
    assert (zoomed_out[0, 0] == GREY).all() and (zoomed_out[-1, -1] == GREY).all()


def test_dead_config_fields_are_gone():
    from everanimate import config as config_mod
    from everanimate import memory

    with pytest.raises(ConfigError, match="unknown keys target"):
        load_train_config(None, ["lora.target=attn_ffn"])
    assert not hasattr(config_mod, "sampler_config_from") and not hasattr(memory, "initial_identity_images")
    assert not hasattr(load_train_config(None), "augment_anchors")
