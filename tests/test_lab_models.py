"""Lab models: training commands, the sha256 manifest, LoRA/base provenance checks, method variants, presets."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.errors import ConfigError, WeightsError
from bench.lab import shipped, training
from bench.lab.spec import LAB_VERSION
from bench.models import wan

REPO = Path(__file__).resolve().parents[1]
SHIPPED = (REPO / "models/lab" / shipped.MANIFEST).is_file()


def _fake_models(root: Path) -> Path:
    (root / "wan_animate_base").mkdir(parents=True)
    (root / "wan_animate_base/a.safetensors").write_bytes(b"0123456789" * 100)
    (root / "everanimate/stage2").mkdir(parents=True)
    (root / "everanimate/stage2/lora.safetensors").write_bytes(b"abc" * 50)
    shipped.write_manifest(root)
    return root


def test_manifest_verifies_and_names_altered_truncated_and_missing_files(tmp_path):
    root = _fake_models(tmp_path / "lab")
    shipped.verify_lab_models(["wan_animate_base", "everanimate/stage2"], root=root)
    manifest = shipped.read_manifest(root)
    assert manifest["total_bytes"] == 1150 and set(manifest["files"]) == {
        "wan_animate_base/a.safetensors", "everanimate/stage2/lora.safetensors"}

    data = bytearray((root / "wan_animate_base/a.safetensors").read_bytes())
    data[10] ^= 1
    (root / "wan_animate_base/a.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"a.safetensors: sha256 .* does not match") as err:
        shipped.verify_lab_models(["wan_animate_base"], root=root)
    assert "git checkout -- models/lab" in err.value.fix

    (root / "everanimate/stage2/lora.safetensors").write_bytes(b"abc" * 10)
    with pytest.raises(WeightsError, match="30 bytes, expected 150"):
        shipped.verify_lab_models(["everanimate/stage2"], root=root)
    (root / "everanimate/stage2/lora.safetensors").unlink()
    with pytest.raises(WeightsError, match="lora.safetensors: missing"):
        shipped.verify_lab_models(["everanimate/stage2"], root=root)
    (root / shipped.MANIFEST).unlink()
    with pytest.raises(WeightsError, match="the lab models are missing"):
        shipped.verify_lab_models(["wan_animate_base"], root=root)


def test_models_of_another_lab_version_are_refused_naming_both_versions(tmp_path):
    from bench.lab.spec import LAB_VERSION

    root = _fake_models(tmp_path / "lab")
    manifest = json.loads((root / shipped.MANIFEST).read_text())
    assert manifest["lab_version"] == LAB_VERSION
    manifest["lab_version"] = "lab/0"
    (root / shipped.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match=f"trained on lab renderer lab/0, this bench runs {LAB_VERSION}"):
        shipped.verify_lab_models(["wan_animate_base"], root=root)


def test_manifest_refuses_more_than_40_mb(tmp_path, monkeypatch):
    root = _fake_models(tmp_path / "lab")
    monkeypatch.setattr(shipped, "MAX_BYTES", 1000)
    with pytest.raises(WeightsError, match="over the 40 MiB budget"):
        shipped.write_manifest(root)


def test_lora_from_another_base_or_layout_is_refused(tmp_path):
    from bench.models.lora import LoRAConfig
    from bench.models.lora import add_lora, save_lora

    base = wan.save_components(wan.tiny_components(seed=0), tmp_path / "base")
    other = wan.save_components(wan.tiny_components(seed=1), tmp_path / "other")
    tr = wan.tiny_components(seed=0).transformer
    add_lora(tr, LoRAConfig(rank=2))
    lora = save_lora(tr, tmp_path / "lora.safetensors", {"memory": "plp", "base_fingerprint": wan.fingerprint(base)})
    shipped.check_lora_base(lora, base, method="everanimate", memory="plp")
    with pytest.raises(WeightsError, match="trained on a different base model"):
        shipped.check_lora_base(lora, other, method="everanimate", memory="plp")
    with pytest.raises(WeightsError, match="trained for the 'plp' memory layout"):
        shipped.check_lora_base(lora, base, method="wan_animate", memory="pixel_carry")


def test_restamp_moves_loras_to_a_decoder_only_vae_change_and_refuses_anything_else(tmp_path):
    from safetensors.torch import load_file, save_file

    from bench.models.lora import LoRAConfig, add_lora, save_lora

    base = wan.save_components(wan.tiny_components(seed=0), tmp_path / "base")
    tr = wan.tiny_components(seed=0).transformer
    add_lora(tr, LoRAConfig(rank=2))
    lora = save_lora(tr, tmp_path / "lora.safetensors", {"memory": "plp", "base_fingerprint": wan.fingerprint(base)})
    shutil.copytree(base / "vae", tmp_path / "old_vae")
    weights = base / "vae/diffusion_pytorch_model.safetensors"

    def change(prefix):
        tensors = load_file(str(weights))
        key = next(k for k in sorted(tensors) if k.startswith(prefix))
        tensors[key] = tensors[key] + 0.01
        save_file(tensors, str(weights))

    def restamp():
        return subprocess.run([sys.executable, "scripts/restamp_lora_base.py", "--base", str(base), "--old-vae",
                               str(tmp_path / "old_vae"), str(lora)], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[1])

    change("encoder.")
    result = restamp()
    assert result.returncode != 0 and "encoder tensors differ" in result.stderr
    shutil.copy(tmp_path / "old_vae/diffusion_pytorch_model.safetensors", weights)
    change("decoder.")
    with pytest.raises(WeightsError, match="trained on a different base model"):
        shipped.check_lora_base(lora, base, method="everanimate", memory="plp")
    result = restamp()
    assert result.returncode == 0, result.stderr
    shipped.check_lora_base(lora, base, method="everanimate", memory="plp")
    meta = shipped.lora_metadata(lora)
    assert meta["base_fingerprint_before"] != meta["base_fingerprint"] and meta["rank"] == "2"
    assert restamp().returncode != 0  # the LoRA now records the new base, not the old one


def test_method_variants_resolve_to_their_base_class():
    from bench.errors import ConfigError
    from bench.registry import method_class

    assert method_class("everanimate@no_rfm").__name__ == "EverAnimate"
    assert method_class("wan_animate@no_plp").__name__ == "WanAnimate"
    with pytest.raises(ConfigError, match="unknown method 'everanimat'"):
        method_class("everanimat@x")


def test_lab_presets_use_the_shipped_models_and_the_ablation_layout():
    from bench.config import build_config

    lab = build_config("lab", methods=["everanimate", "wan_animate"])
    assert lab.args_for("everanimate") == {"components": "lab", "steps": 12}
    assert lab.args_for("wan_animate") == {"components": "lab", "steps": 12}
    ablation = build_config("lab-ablation")
    assert ablation.table_layout == "ablation"
    assert ablation.methods == ("wan_animate", "wan_animate@no_plp", "everanimate@no_rfm", "everanimate")
    assert ablation.args_for("everanimate@no_rfm") == {"components": "lab", "steps": 12,
                                                      "lora": "lab:everanimate/stage1/lora.safetensors"}
    assert ablation.args_for("wan_animate@no_plp")["steps"] == 12
    # a variant starts from its method's arguments, at every layer: the CLI's steps reach the variant too,
    # and a variant's own weight source replaces the method's
    cli = build_config("lab-ablation", method_args={"everanimate": {"steps": 20},
                                                    "wan_animate@no_plp": {"model_dir": "/weights"}})
    assert cli.args_for("everanimate@no_rfm")["steps"] == 20
    assert cli.args_for("wan_animate@no_plp") == {"model_dir": "/weights", "steps": 12,
                                                  "lora": "lab:ablations/no_plp/lora.safetensors"}
    assert shipped.resolve_lab_path("lab:x/y.safetensors") == str(shipped.lab_root() / "x/y.safetensors")


def test_lab_training_commands_write_loadable_models(tmp_path):
    """Both lab training commands, a few steps each, on two lab train clips: real folders that load."""
    cache = str(tmp_path / "cache")
    vae_log = training.train_vae(training.config_with(training.VaeTrainConfig, [
        f"out={tmp_path / 'vae'}", "phases=[[5, 2, 1, 0.004, 32], [9, 1, 1, 0.002, 64]]", "clips=10", "stats_frames=16",
        f"cache_root={cache}"]),
        progress=False)
    assert vae_log["steps"] == 2 and len(vae_log["latents_std"]) == 16 and vae_log["lab_version"] == LAB_VERSION
    vae_cfg = json.loads((tmp_path / "vae/config.json").read_text())
    assert vae_cfg["latents_std"] == pytest.approx(vae_log["latents_std"]) and vae_cfg["dim_mult"] == [1, 2, 2]
    assert (vae_cfg["scale_factor_spatial"], vae_cfg["scale_factor_temporal"]) == (4, 4)
    # decoder only: the encoder and the latent standardisation stay bit-identical, the decoder moves
    dec_log = training.train_vae(training.config_with(training.VaeTrainConfig, [
        f"out={tmp_path / 'vae_dec'}", f"init={tmp_path / 'vae'}", "decoder_only=true", "loss=mse",
        "phases=[[9, 1, 2, 0.004, 64]]", "clips=10", f"cache_root={cache}"]), progress=False)
    from diffusers import AutoencoderKLWan

    before, after = (AutoencoderKLWan.from_pretrained(tmp_path / d).state_dict() for d in ("vae", "vae_dec"))
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("encoder.", "quant_conv.")))
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    assert dec_log["latents_std"] == vae_log["latents_std"] and "mse_last100" in dec_log
    with pytest.raises(ConfigError, match="no init= was given"):
        training.train_vae(training.config_with(training.VaeTrainConfig, ["decoder_only=true"]), progress=False)
    base_log = training.train_base(training.config_with(training.BaseTrainConfig, [
        f"out={tmp_path / 'base'}", f"vae={tmp_path / 'vae'}", "steps=2", "clips=2", "windows_per_clip=1",
        "batch_size=1", "chunk_frames=9", f"cache_root={cache}"]), progress=False)
    assert base_log["steps"] == 2 and base_log["loss_last100"] == base_log["loss_last100"]
    comps = wan.load_components(tmp_path / "base", dtype=torch.float32)
    assert comps.trained and comps.config == training.lab_architecture()
    assert comps.transformer.config.num_layers == 4 and comps.vae.config.latents_std == vae_cfg["latents_std"]
    assert wan.vae_spatial_factor(comps.vae) == 4 and tuple(comps.transformer.config.patch_size) == (1, 4, 4)

    common = [f"vae={tmp_path / 'vae'}", "steps=1", "clips=2", "windows_per_clip=1", "batch_size=1", "chunk_frames=9",
              f"cache_root={cache}"]
    more = training.train_base(training.config_with(training.BaseTrainConfig, common + [
        f"out={tmp_path / 'more'}", f"init={tmp_path / 'base'}"]), progress=False)
    assert more["steps_total"] == 3 and more["init_digest"] == wan.fingerprint(tmp_path / "base")
    narrower = training.train_base(training.config_with(training.BaseTrainConfig, common + [
        f"out={tmp_path / 'narrow'}", 'dit={"num_heads": 2}']), progress=False)
    narrow = wan.load_components(tmp_path / "narrow", dtype=torch.float32)
    assert narrow.transformer.config.num_attention_heads == 2 and narrow.config.num_heads == 2
    assert narrower["digest"] != base_log["digest"]
    with pytest.raises(ConfigError, match="num_heads 2 \\(this run: 6\\)"):
        training.train_base(training.config_with(training.BaseTrainConfig, common + [
            f"out={tmp_path / 'mismatch'}", f"init={tmp_path / 'narrow'}"]), progress=False)
    weighted = training.train_base(training.config_with(training.BaseTrainConfig, common[1:] + [
        f"vae={tmp_path / 'vae_dec'}", f"out={tmp_path / 'weighted'}", "person_loss_weight=4"]), progress=False)
    assert weighted["digest"] != more["digest"] and weighted["config"]["person_loss_weight"] == 4
    with pytest.raises(ConfigError, match="person_loss_weight must be >= 1"):
        training.train_base(training.config_with(training.BaseTrainConfig, common + [
            f"out={tmp_path / 'bad'}", "person_loss_weight=0.5"]), progress=False)
    # one window encoding for all four: the decoder-only VAE encodes bit-identically, so it shares the cache
    assert len(list((tmp_path / "cache/lab_base_windows").glob("*.pt"))) == 1
    with pytest.raises(ConfigError, match="vae_z_dim"):
        training.base_architecture(training.config_with(training.BaseTrainConfig, ['dit={"vae_z_dim": 8}']))


@pytest.mark.skipif(not SHIPPED, reason="the lab models are not shipped in this checkout")
def test_shipped_lab_models_verify_and_fit_the_budget():
    manifest = shipped.read_manifest(REPO / "models/lab")
    assert manifest["total_bytes"] <= 40 * 2**20
    names = sorted({rel.rsplit("/", 1)[0] for rel in manifest["files"] if "/" in rel})
    shipped.verify_lab_models(names, root=REPO / "models/lab")
    comps = wan.load_components(REPO / "models/lab/wan_animate_base", dtype=torch.float32)
    assert comps.trained and comps.config.num_layers == comps.transformer.config.num_layers == 4


@pytest.mark.skipif(not SHIPPED, reason="the lab models are not shipped in this checkout")
def test_altered_shipped_checkpoint_fails_before_generation(tmp_path):
    copy = tmp_path / "lab"
    shutil.copytree(REPO / "models/lab", copy)
    weights = copy / "wan_animate_base/transformer/diffusion_pytorch_model-00003-of-00003.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    env = {**__import__("os").environ, "BENCH_LAB_MODELS": str(copy)}
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--methods", "wan_animate", "--durations", "1",
                           "--max-samples", "1", "--results", str(tmp_path / "results"), "--no-progress"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode != 0
    assert "failed verification" in proc.stderr and "does not match the manifest" in proc.stderr
    assert not list((tmp_path / "results").glob("runs/wan_animate/*/chunks/*.mp4"))


def test_no_plp_ablation_trains_on_the_wan_animate_layout_and_loads_into_wan_animate(tmp_path, monkeypatch):
    """``memory="pixel_carry"``: RFM LoRA on [reference slot | targets] with the carried frame re-encoded; the
    file records its layout, loads into ``wan_animate`` (and changes its frames) and is refused by everanimate."""
    import numpy as np

    import everanimate.train as train_mod
    from baselines.wan_animate import WanAnimate
    from bench.animator import AnimationRequest
    from everanimate.animator import EverAnimate
    from everanimate.config import load_train_config
    from tests.everanimate_helpers import MovingSquareSample
    from tests.wan_helpers import ArraySample, collect

    samples = [MovingSquareSample(20)]
    monkeypatch.setattr(train_mod, "load_samples", lambda config: samples)
    cfg = load_train_config(None, ["data.context_frames=9", "data.target_frames=9", "memory=pixel_carry", "steps=2",
                                   "lr=1e-2", f"output_dir={tmp_path / 'no_plp'}", "data.first_chunk_p=0.5"], stage=2)
    assert cfg.memory_slots == 1 and cfg.init_lora is None
    result = train_mod.train(cfg, samples, progress=False)
    lora = tmp_path / "no_plp/lora.safetensors"
    assert result["step"] == 2 and shipped.lora_metadata(lora)["memory"] == "pixel_carry"

    sample = ArraySample(n_frames=9)
    req = AnimationRequest(sample=sample, n_frames=9, fps=25, height=32, width=32, seed=0)
    plain = WanAnimate(components="tiny-random", chunk_frames=9, steps=2)
    with_lora = WanAnimate(components="tiny-random", chunk_frames=9, steps=2, lora=str(lora))
    assert "lora" in with_lora.weight_fingerprints() and with_lora.identity()["lora"] == str(lora)
    plain.load("cpu")
    with_lora.load("cpu")
    frames_plain, _ = collect(plain, req)
    frames_lora, _ = collect(with_lora, req)
    assert with_lora.lora_info is not None and not np.array_equal(frames_plain, frames_lora)
    with pytest.raises(WeightsError, match="'pixel_carry' memory layout"):
        EverAnimate(components="tiny-random", lora=str(lora)).check_ready()


def test_vae_checkpoint_at_a_phase_boundary_continues_under_changed_later_phases(tmp_path, monkeypatch):
    from bench.errors import ConfigError

    cache, out = str(tmp_path / "cache"), tmp_path / "vae"
    calls = []
    real = training._held_out_psnr

    def interrupted_once(vae, clips):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # after the boundary checkpoint of step 1
        return real(vae, clips)

    monkeypatch.setattr(training, "_held_out_psnr", interrupted_once)
    common = [f"out={out}", "clips=10", "stats_frames=16", f"cache_root={cache}", "eval_every=1", "checkpoint_every=1"]
    with pytest.raises(KeyboardInterrupt):
        training.train_vae(training.config_with(training.VaeTrainConfig, common + [
            "phases=[[5, 2, 1, 0.004, 32], [9, 1, 1, 0.002, 64]]"]), progress=False)
    assert torch.load(out / "checkpoint.pt", weights_only=False)["phases_used"] == 1
    with pytest.raises(ConfigError, match="different training config"):  # the finished phase changed
        training.train_vae(training.config_with(training.VaeTrainConfig, common + [
            "phases=[[5, 2, 1, 0.001, 32], [9, 1, 1, 0.002, 64]]"]), progress=False)
    log = training.train_vae(training.config_with(training.VaeTrainConfig, common + [
        "phases=[[5, 2, 1, 0.004, 32], [13, 1, 2, 0.001, 64]]"]), progress=False)  # only the later phase changed
    assert log["steps"] == 3 and [s for s, _ in log["held_out_psnr_by_step"]] == [1, 2, 3]


def test_person_cover_is_the_mask_share_of_each_latent_cell():
    class Masked:
        id = "masked"

        def masks(self, start, stop):
            m = np.zeros((stop - start, 8, 8), bool)
            m[:, :4, :2] = True  # the top-left 4x4 cell, half covered, in every frame
            m[1:5, 4:, 4:] = True  # the bottom-right cell, fully covered in latent slice 1 only
            return m

    data = {"clip_index": torch.tensor([0]), "start": torch.tensor([3])}
    cover = training.person_cover([Masked()], data, chunk_frames=9, temporal=4, spatial=4, progress=False)
    assert cover.shape == (1, 3, 2, 2)
    assert cover[0, :, 0, 0].tolist() == [0.5, 0.5, 0.5]
    assert cover[0, :, 1, 1].tolist() == [0.0, 1.0, 0.0]


def test_vae_encoder_fingerprint_follows_the_encoder_only():
    vae = wan.tiny_components(seed=0).vae
    before = wan.vae_encoder_fingerprint(vae)
    with torch.no_grad():
        next(p for n, p in vae.named_parameters() if n.startswith("decoder.")).add_(0.01)
    assert wan.vae_encoder_fingerprint(vae) == before
    with torch.no_grad():
        next(p for n, p in vae.named_parameters() if n.startswith("encoder.")).add_(0.01)
    assert wan.vae_encoder_fingerprint(vae) != before
