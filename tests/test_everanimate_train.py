"""LoRA files (peft and DiffSynth names), training samples, overfitting, the two stages and resume."""
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from bench.errors import WeightsError
from bench.models import wan
from everanimate.config import DataConfig, load_train_config
from everanimate.data import build_example
from everanimate.lora import add_lora, diffsynth_to_diffusers, load_lora, lora_state_dict, save_lora
from everanimate.config import LoRAConfig
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


def test_tiny_model_overfits_one_training_pair():
    cfg = load_train_config(None, SMALL + ["lora.rank=16", "data.first_chunk_p=0"], stage=1)
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
    assert losses[-1] < losses[0] / 10, losses[::10]


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
