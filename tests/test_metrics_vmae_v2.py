"""The VideoMAE-v2 (CD-FVD ViT-g) backbone of the V-MAE metrics, through its real loading code, with tiny
random checkpoints in the exact ViT-g key layout (``module`` -> ``patch_embed.proj``, ``blocks.N.attn.qkv`` +
``q_bias`` / ``v_bias``, ``fc_norm``, ``head``), checked against a plain-torch forward written from the
checkpoint tensors."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from bench.errors import ConfigError, DataError, WeightsError
from bench.metrics import weights as W
from bench.metrics.base import FrameBatch
from bench.metrics.vmae import (
    VIT_G_14,
    VideoMAEv2Geometry,
    VMAEFrechet,
    VMAEPaired,
    backbone_name,
    load_videomae_v2,
)

TINY = VideoMAEv2Geometry(image_size=28, patch_size=14, num_frames=16, tubelet_size=2, hidden_size=64,
                          num_hidden_layers=2, num_attention_heads=4, intermediate_size=96)
FILENAME = "vit_g_hybrid_pt_1200e_ssv2_ft.pth"


def tiny_state(g: VideoMAEv2Geometry = TINY, seed: int = 0, classes: int = 5) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.05):
        return torch.randn(*shape, generator=gen) * scale

    D, M, p = g.hidden_size, g.intermediate_size, g.patch_size
    sd = {"patch_embed.proj.weight": r(D, 3, g.tubelet_size, p, p, scale=0.1), "patch_embed.proj.bias": r(D)}
    for i in range(g.num_hidden_layers):
        b = f"blocks.{i}."
        sd.update({b + "norm1.weight": 1 + r(D), b + "norm1.bias": r(D),
                   b + "attn.q_bias": r(D, scale=0.5), b + "attn.v_bias": r(D, scale=0.5),
                   b + "attn.qkv.weight": r(3 * D, D, scale=0.2),
                   b + "attn.proj.weight": r(D, D, scale=0.2), b + "attn.proj.bias": r(D),
                   b + "norm2.weight": 1 + r(D), b + "norm2.bias": r(D),
                   b + "mlp.fc1.weight": r(M, D, scale=0.2), b + "mlp.fc1.bias": r(M),
                   b + "mlp.fc2.weight": r(D, M, scale=0.2), b + "mlp.fc2.bias": r(D)})
    sd.update({"fc_norm.weight": 1 + r(D), "fc_norm.bias": r(D), "head.weight": r(classes, D), "head.bias": r(classes)})
    return sd


def save(path, state, wrapper="module"):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({wrapper: state} if wrapper else state, path)
    return path


def reference_features(sd: dict, g: VideoMAEv2Geometry, clips: torch.Tensor,
                       dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Plain forward of VideoMAEv2's fine-tune ViT: clips ``(B, T, 3, S, S)`` -> fc_norm(token mean)."""
    sd = {k: v.to(dtype) for k, v in sd.items()}
    D, H, eps = g.hidden_size, g.num_attention_heads, g.layer_norm_eps
    x = F.conv3d(clips.to(dtype).permute(0, 2, 1, 3, 4), sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"],
                 stride=(g.tubelet_size, g.patch_size, g.patch_size)).flatten(2).transpose(1, 2)
    B, N, _ = x.shape
    position = torch.arange(N, dtype=torch.float64)[:, None]
    angle = position / torch.pow(10000.0, 2 * (torch.arange(D) // 2).double() / D)[None]
    table = torch.where(torch.arange(D) % 2 == 0, torch.sin(angle), torch.cos(angle))
    x = x + table.to(dtype)
    for i in range(g.num_hidden_layers):
        def w(name, i=i):
            return sd[f"blocks.{i}.{name}"]

        h = F.layer_norm(x, (D,), w("norm1.weight"), w("norm1.bias"), eps)
        bias = torch.cat([w("attn.q_bias"), torch.zeros_like(w("attn.v_bias")), w("attn.v_bias")])
        q, k, v = F.linear(h, w("attn.qkv.weight"), bias).reshape(B, N, 3, H, D // H).permute(2, 0, 3, 1, 4)
        attn = torch.softmax((q * (D // H) ** -0.5) @ k.transpose(-2, -1), dim=-1)
        x = x + F.linear((attn @ v).transpose(1, 2).reshape(B, N, D), w("attn.proj.weight"), w("attn.proj.bias"))
        h = F.layer_norm(x, (D,), w("norm2.weight"), w("norm2.bias"), eps)
        h = F.gelu(F.linear(h, w("mlp.fc1.weight"), w("mlp.fc1.bias")))
        x = x + F.linear(h, w("mlp.fc2.weight"), w("mlp.fc2.bias"))
    return F.layer_norm(x.mean(1), (D,), sd["fc_norm.weight"], sd["fc_norm.bias"], eps)


def moving_video(frames=32, height=48, width=64):
    image = data.astronaut()
    return np.stack([image[2 * t:2 * t + height, 3 * t:3 * t + width] for t in range(frames)])


def clip_inputs(frames: np.ndarray, g: VideoMAEv2Geometry = TINY) -> torch.Tensor:
    """The declared preprocessing, written out: full frame bilinear antialias to S x S, /255, no mean/std."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, size=(g.image_size, g.image_size), mode="bilinear", align_corners=False, antialias=True)
    return x.reshape(-1, g.num_frames, 3, g.image_size, g.image_size)


def test_default_geometry_is_vit_g_14():
    assert (VIT_G_14.patch_size, VIT_G_14.hidden_size, VIT_G_14.num_hidden_layers, VIT_G_14.num_attention_heads,
            VIT_G_14.tubelet_size, VIT_G_14.num_frames, VIT_G_14.image_size) == (14, 1408, 40, 16, 2, 16, 224)
    assert VIT_G_14.intermediate_size == int(1408 * 48 / 11) == 6144 and VIT_G_14.layer_norm_eps == 1e-6


@pytest.mark.parametrize("wrapper", ["module", "model", None])
def test_features_equal_plain_forward(tmp_path, wrapper):
    sd = tiny_state()
    path = save(tmp_path / FILENAME, sd, wrapper)
    model, records = load_videomae_v2(path, geometry=TINY)
    assert [r.name for r in records] == ["videomae_v2_g"]
    assert records[0].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    clips = torch.rand(3, 16, 3, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(pixel_values=clips).double()
    ref = reference_features(sd, TINY, clips)
    assert ours.shape == (3, 64)
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), atol=1e-5, rtol=0)
    # every parameter came from the checkpoint: the query/value biases and the split qkv rows
    layer = model.videomae.encoder.layer[1].attention.attention
    assert torch.equal(layer.query.bias, sd["blocks.1.attn.q_bias"])
    assert torch.equal(layer.key.weight, sd["blocks.1.attn.qkv.weight"][64:128])
    assert layer.key.bias is None


def _broken(tmp_path, name, edit):
    sd = tiny_state()
    edit(sd)
    return save(tmp_path / name / FILENAME, sd)


@pytest.mark.parametrize("name, edit, message", [
    ("no_q_bias", lambda sd: sd.pop("blocks.1.attn.q_bias"), r"missing \['blocks.1.attn.q_bias'\]"),
    ("zero_v_bias", lambda sd: sd["blocks.0.attn.v_bias"].zero_(), r"all zero \(\['blocks.0.attn.v_bias'\]"),
    ("no_fc2", lambda sd: sd.pop("blocks.0.mlp.fc2.weight"), r"missing \['blocks.0.mlp.fc2.weight'\]"),
    ("no_qkv", lambda sd: sd.pop("blocks.1.attn.qkv.weight"), r"missing \['blocks.1.attn.qkv.weight'\]"),
    ("no_fc_norm", lambda sd: sd.pop("fc_norm.bias"), r"missing \['fc_norm.bias'\]"),
    ("layer_scale", lambda sd: sd.update({"blocks.0.gamma_1": torch.ones(64)}),
     r"does not use: \['blocks.0.gamma_1'\]"),
    ("cls_norm", lambda sd: sd.update({"norm.weight": torch.ones(64)}), r"does not use: \['norm.weight'\]"),
    ("deeper", lambda sd: sd.update({"blocks.2.norm1.weight": torch.ones(64)}), "does not use"),
    ("mlp_width", lambda sd: sd.update({"blocks.0.mlp.fc1.weight": torch.ones(80, 64)}),
     r"does not match.*blocks.0.mlp.fc1.weight: \(80, 64\) != \(96, 64\)"),
])
def test_loader_rejects_broken_checkpoints(tmp_path, name, edit, message):
    path = _broken(tmp_path, name, edit)
    with pytest.raises(WeightsError, match=message) as err:
        load_videomae_v2(path, geometry=TINY)
    assert FILENAME in err.value.fix


def test_loader_rejects_truncated_missing_and_foreign_files(tmp_path, monkeypatch):
    good = save(tmp_path / "good" / FILENAME, tiny_state())
    cut = tmp_path / "cut" / FILENAME
    cut.parent.mkdir()
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        load_videomae_v2(cut, geometry=TINY)
    foreign = save(tmp_path / "foreign" / FILENAME, {"encoder.patch_embed.proj.weight": torch.ones(1)}, "state_dict")
    with pytest.raises(WeightsError, match="no VideoMAEv2 state dict"):
        load_videomae_v2(foreign, geometry=TINY)
    # nothing given: $BENCH_VIDEOMAE_V2_PATH, else the torch.hub checkpoints folder, named in the error
    monkeypatch.delenv("BENCH_VIDEOMAE_V2_PATH", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsError, match=FILENAME) as err:
        load_videomae_v2(geometry=TINY)
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / FILENAME) in err.value.fix
    save(tmp_path / "torch" / "hub" / "checkpoints" / FILENAME, tiny_state())
    assert load_videomae_v2(geometry=TINY)[1][0].path == str(tmp_path / "torch" / "hub" / "checkpoints" / FILENAME)
    monkeypatch.setenv("BENCH_VIDEOMAE_V2_PATH", str(good.parent))  # a folder: the file name inside it
    assert load_videomae_v2(geometry=TINY)[1][0].path == str(good)


def test_paired_and_frechet_end_to_end(tmp_path, monkeypatch):
    sd = tiny_state(seed=3)
    path = save(tmp_path / FILENAME, sd)
    gt = moving_video()
    rng = np.random.default_rng(0)
    pred = np.clip(np.round(gt + rng.normal(0, 25.0, gt.shape)), 0, 255).astype(np.uint8)
    options = {"backbone": "videomae-v2-g", "model_path": str(path), "geometry": TINY, "horizons": (16, 32)}
    paired, fd = VMAEPaired(**options), VMAEFrechet(**options)
    for start in range(0, 32, 12):  # chunks that do not align with 16-frame clips
        batch = FrameBatch(start, gt[start:start + 12], pred[start:start + 12])
        paired.update(batch)
        fd.update(batch)
    series = paired.series()
    np.testing.assert_array_equal(series.last_frame, [15, 31])
    fg, fp = (reference_features(sd, TINY, clip_inputs(v)).numpy() for v in (gt, pred))
    cos = (fg * fp).sum(1) / np.linalg.norm(fg, axis=1) / np.linalg.norm(fp, axis=1)
    np.testing.assert_allclose(series.values, 1 - cos, atol=1e-6)
    assert (series.values > 1e-4).all()
    info = paired.info()
    assert info["backbone"] == "videomae-v2-g" and "no mean/std" in info["preprocessing"]
    assert "videomae-v2-g" in info["preprocessing"] and "28x28" in info["preprocessing"]
    assert [r.name for r in paired.weights()] == ["videomae_v2_g"] == [r.name for r in fd.weights()]

    state = fd.pooled_state()
    assert state["pred"].shape == (2, 64) and str(state["backbone"]) == "videomae-v2-g"
    result = VMAEFrechet.pooled_compute([state, state])
    assert result[32][0] > 0 and result[32][1]["backbone"] == "videomae-v2-g"
    assert result[32][1]["n"] == 2  # 1 clip per video and horizon (shortest horizon 16 frames), 2 videos

    same_paired, same_fd = VMAEPaired(**options), VMAEFrechet(**options)
    for start in (0, 16):
        batch = FrameBatch(start, gt[start:start + 16], gt[start:start + 16])
        same_paired.update(batch)
        same_fd.update(batch)
    np.testing.assert_allclose(same_paired.series().values, 0.0, atol=1e-6)
    assert abs(VMAEFrechet.pooled_compute([same_fd.pooled_state()] * 3)[32][0]) < 1e-6

    base_state = dict(state, backbone=np.asarray("videomae-base"))
    with pytest.raises(DataError, match="different VideoMAE backbones"):
        VMAEFrechet.pooled_compute([state, base_state])


def test_backbone_from_environment_and_doctor(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_VIDEOMAE_BACKBONE", raising=False)
    assert backbone_name() == "videomae-base"
    with pytest.raises(ConfigError, match="unknown VideoMAE backbone"):
        backbone_name("videomae-v3")
    with pytest.raises(ConfigError, match="geometry"):
        VMAEPaired(backbone="videomae-base", geometry=TINY)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("BENCH_VIDEOMAE_V2_PATH", raising=False)
    entry = {e["key"]: e for e in W.doctor_report()}["videomae_v2_g"]
    assert entry["optional"] and entry["status"] == "missing"
    assert entry["expected_location"] == str(tmp_path / "torch" / "hub" / "checkpoints" / FILENAME)
    assert "(optional)" in W.format_doctor_report([entry])

    path = save(tmp_path / "elsewhere.pth", tiny_state(seed=5))
    monkeypatch.setenv("BENCH_VIDEOMAE_BACKBONE", "videomae-v2-g")
    monkeypatch.setenv("BENCH_VIDEOMAE_V2_PATH", str(path))
    records = VMAEPaired.check_weights()
    assert [(r.name, r.path) for r in records] == [("videomae_v2_g", str(path))]
    metric = VMAEFrechet(geometry=TINY)
    assert metric.info()["backbone"] == "videomae-v2-g" and metric.weights() == records
    entry = {e["key"]: e for e in W.doctor_report()}["videomae_v2_g"]
    assert entry["status"] == "present" and entry["sha256"] == records[0].sha256
