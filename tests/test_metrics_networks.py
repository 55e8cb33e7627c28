"""LPIPS, FID and VideoMAE through their real loading paths, with random-weight files placed where the
libraries look (temporary TORCH_HOME / explicit VideoMAE folder), compared with the reference libraries."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from skimage import data

from bench.errors import WeightsError
from bench.metrics import weights as W
from bench.metrics.base import FrameBatch


def moving_video(image, frames, height, width, step=(2, 3)):
    return np.stack([image[t * step[0]:t * step[0] + height, t * step[1]:t * step[1] + width] for t in range(frames)])


def noisy(frames, std, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(np.round(frames + rng.normal(0, std, frames.shape)), 0, 255).astype(np.uint8)


def trust(monkeypatch, key, path):
    """Pin the expected sha256 of a weight entry to a test file (random weights cannot match the real hash)."""
    monkeypatch.setitem(W.KNOWN_WEIGHTS, key, dataclasses.replace(W.KNOWN_WEIGHTS[key], sha256=W.sha256_file(path)))


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory):
    """A TORCH_HOME with random-weight alexnet and FID-Inception files under the names torch.hub expects."""
    import torchvision
    from pytorch_fid import inception as fid_inception

    home = tmp_path_factory.mktemp("torch_home")
    ckpt = home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), ckpt / "alexnet-owt-7be5be79.pth")
    net = fid_inception._inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    net.Mixed_5b = fid_inception.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = fid_inception.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = fid_inception.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = fid_inception.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = fid_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = fid_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = fid_inception.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = fid_inception.FIDInceptionE_1(1280)
    net.Mixed_7c = fid_inception.FIDInceptionE_2(2048)
    torch.save(net.state_dict(), ckpt / "pt_inception-2015-12-05-6726825d.pth")
    return home


@pytest.fixture
def weights_env(torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    ckpt = torch_home / "hub" / "checkpoints"
    trust(monkeypatch, "alexnet", ckpt / "alexnet-owt-7be5be79.pth")
    trust(monkeypatch, "fid_inception", ckpt / "pt_inception-2015-12-05-6726825d.pth")
    return torch_home


# ------------------------------------------------------------------------------------------ weights
def test_missing_wrong_and_truncated_weights_are_clear_errors(torch_home, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError) as err:
        W.resolve_torch_hub("alexnet")
    assert "alexnet-owt-7be5be79.pth" in str(err.value) and str(tmp_path / "hub" / "checkpoints") in str(err.value)
    # random weights under the real name: the torch.hub hash prefix does not match
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    with pytest.raises(WeightsError, match="7be5be79"):
        W.resolve_torch_hub("alexnet")
    # a truncated copy of a trusted file
    src = torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    trust(monkeypatch, "alexnet", src)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    dst = tmp_path / "hub" / "checkpoints" / src.name
    dst.parent.mkdir(parents=True)
    dst.write_bytes(src.read_bytes()[: 1 << 20])
    with pytest.raises(WeightsError, match="corrupt, truncated"):
        W.resolve_torch_hub("alexnet")
    report = {e["key"]: e for e in W.doctor_report()}
    assert report["alexnet"]["status"] == "corrupt"
    assert report["fid_inception"]["status"] == "missing"
    assert report["fid_inception"]["expected_location"].endswith("hub/checkpoints/pt_inception-2015-12-05-6726825d.pth")
    assert report["lpips_alex_linear"]["status"] == "present"


# ------------------------------------------------------------------------------------------ LPIPS
def test_lpips_matches_lpips_library(weights_env):
    import lpips

    from bench.metrics.lpips_metric import LPIPS

    gt = moving_video(data.coffee(), 4, 64, 96)
    pred = noisy(gt, 12.0)
    metric = LPIPS(batch_size=3)
    for start in (0, 3):  # streamed in uneven chunks
        metric.update(FrameBatch(start, gt[start:start + 3], pred[start:start + 3]))
    ours = metric.series().values
    reference = lpips.LPIPS(net="alex", verbose=False).eval()  # loads the same files itself
    with torch.no_grad():
        to = lambda v: torch.from_numpy(v).permute(0, 3, 1, 2).float() / 127.5 - 1
        ref = reference(to(pred), to(gt)).reshape(-1).double().numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7)
    assert {r.name for r in metric.weights()} == {"alexnet", "lpips_alex_linear"}
    metric.reset()
    metric.update(FrameBatch(0, gt, gt))
    np.testing.assert_allclose(metric.series().values, 0.0, atol=1e-7)
    levels = [metric.frame_values(FrameBatch(0, gt, noisy(gt, s))).mean() for s in (3.0, 10.0, 30.0)]
    assert levels[0] < levels[1] < levels[2]


# ------------------------------------------------------------------------------------------ FID
def test_fid_matches_pytorch_fid(weights_env, tmp_path):
    from pytorch_fid.fid_score import calculate_frechet_distance
    from pytorch_fid.inception import InceptionV3

    from bench.metrics.fid import FID, frechet_distance, frechet_distance_low_rank, select_frames

    gt = moving_video(data.chelsea(), 8, 64, 64, step=(3, 4))
    pred = noisy(gt, 25.0)
    metric = FID(horizons=(4, 8), batch_size=8, gt_cache_dir=str(tmp_path))
    metric.set_gt_key("chelsea-demo")
    for start in range(0, 8, 3):
        metric.update(FrameBatch(start, gt[start:start + 3], pred[start:start + 3]))
    state = metric.pooled_state()
    assert sorted(state["frame_index"]) == [0, 1, 2, 3, 4, 6]  # 4 frames per horizon: 0-3 and 0,2,4,6
    result = FID.pooled_compute([state])
    assert result[4][1]["n"] == result[8][1]["n"] == 4  # same N for every horizon

    # the reference: pytorch-fid's own network on the same frames, np.mean / np.cov
    model = InceptionV3([3]).eval()
    with torch.no_grad():
        feats = lambda v: model(torch.from_numpy(v).permute(0, 3, 1, 2).float() / 255)[0].reshape(len(v), -1).double().numpy()
        f_gt, f_pred = feats(gt[select_frames(8, 4)]), feats(pred[select_frames(8, 4)])
    ours_pred = state["pred"][np.isin(state["frame_index"], select_frames(8, 4))]
    np.testing.assert_allclose(ours_pred, f_pred, rtol=1e-4, atol=1e-5)
    # the pooled value equals the distance of the reference features' statistics
    assert result[8][0] == pytest.approx(frechet_distance_low_rank(f_pred, f_gt), rel=1e-4)

    # the two Frechet routes vs pytorch-fid's sqrtm, on real-image features (a 96-d slice keeps it fast):
    # rank-deficient (4 samples) and full-rank (8 projected dims)
    sub_p, sub_g = f_pred[:, :96], f_gt[:, :96]
    stats = (sub_p.mean(0), np.cov(sub_p, rowvar=False), sub_g.mean(0), np.cov(sub_g, rowvar=False))
    assert frechet_distance(*stats) == pytest.approx(frechet_distance_low_rank(sub_p, sub_g), rel=1e-8)
    assert frechet_distance(*stats) == pytest.approx(calculate_frechet_distance(*stats), rel=1e-3)
    rng = np.random.default_rng(0)
    proj = rng.normal(size=(f_gt.shape[1], 8)) / 40
    a = np.concatenate([f_gt, f_pred, f_gt]) @ proj + rng.normal(0, 0.05, (12, 8))
    b = a[::-1] * 1.1 + 0.2 + rng.normal(0, 0.05, (12, 8))
    args = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert frechet_distance(*args) == pytest.approx(calculate_frechet_distance(*args), rel=1e-7)

    # identical inputs -> 0; the GT cache is written and reused
    metric.reset()
    metric.set_gt_key("chelsea-demo")
    assert metric._gt_cached is not None
    metric.update(FrameBatch(0, gt, gt))
    assert abs(FID.pooled_compute([metric.pooled_state()])[8][0]) < 1e-3


# ------------------------------------------------------------------------------------------ VideoMAE
def _tiny_videomae(folder, *, bias="random"):
    from transformers import VideoMAEConfig, VideoMAEModel

    torch.manual_seed(0)
    cfg = VideoMAEConfig(image_size=32, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=32,
                         num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    model = VideoMAEModel(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("query.bias", "value.bias", "q_bias", "v_bias")):
                p.copy_(torch.randn_like(p) if bias == "random" else torch.zeros_like(p))
    model.save_pretrained(folder)
    return model


def test_videomae_loader_rejects_missing_or_zero_biases(tmp_path):
    from safetensors.torch import load_file, save_file

    from bench.metrics.vmae import load_videomae

    _tiny_videomae(tmp_path / "zero", bias="zero")
    with pytest.raises(WeightsError, match="all zero"):
        load_videomae(tmp_path / "zero")
    _tiny_videomae(tmp_path / "missing")
    state = load_file(tmp_path / "missing" / "model.safetensors")
    state = {k: v for k, v in state.items() if not k.endswith(("query.bias", "q_bias"))}
    save_file(state, tmp_path / "missing" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(WeightsError, match="missing"):
        load_videomae(tmp_path / "missing")
    with pytest.raises(WeightsError, match="config.json"):
        load_videomae(tmp_path / "nowhere")


def test_videomae_paired_and_frechet(tmp_path, monkeypatch):
    import torch.nn.functional as F

    from bench.metrics.vmae import VMAEFrechet, VMAEPaired

    reference = _tiny_videomae(tmp_path / "vmae").eval()
    monkeypatch.setenv("BENCH_VIDEOMAE_PATH", str(tmp_path / "vmae"))
    gt = moving_video(data.astronaut(), 17, 48, 64)
    pred = noisy(gt, 30.0)
    paired, fd = VMAEPaired(horizons=(8, 16)), VMAEFrechet(horizons=(8, 16))
    for start in (0, 5, 10, 15):  # chunks that do not align with 4-frame clips
        batch = FrameBatch(start, gt[start:start + 5], pred[start:start + 5])
        paired.update(batch)
        fd.update(batch)
    series = paired.series()
    np.testing.assert_array_equal(series.last_frame, [3, 7, 11, 15])  # frame 16 is an incomplete clip

    def features(v):
        x = torch.from_numpy(v).permute(0, 3, 1, 2).float() / 255
        x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
        x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        with torch.no_grad():
            return reference(pixel_values=x.reshape(4, 4, 3, 32, 32)).last_hidden_state.mean(1).double().numpy()

    fg, fp = features(gt[:16]), features(pred[:16])
    cos = (fg * fp).sum(1) / np.linalg.norm(fg, axis=1) / np.linalg.norm(fp, axis=1)
    np.testing.assert_allclose(series.values, 1 - cos, atol=1e-5)
    state = fd.pooled_state()
    assert int(state["clips_per_horizon"]) == 2
    result = VMAEFrechet.pooled_compute([state, state])
    assert set(result) == {8, 16} and result[16][1]["n"] == 4  # 2 clips per video, 2 videos
    assert result[16][0] > 0
    same = VMAEPaired()
    same.update(FrameBatch(0, gt[:8], gt[:8]))
    np.testing.assert_allclose(same.series().values, 0.0, atol=1e-6)


def test_videomae_gt_features_are_cached_per_ground_truth(tmp_path, monkeypatch):
    """A second prediction of the same GT reuses the cached GT clip features: same values, no GT forward."""
    from bench.metrics import vmae
    from bench.metrics.vmae import VMAEFrechet, VMAEPaired

    _tiny_videomae(tmp_path / "vmae")
    monkeypatch.setenv("BENCH_VIDEOMAE_PATH", str(tmp_path / "vmae"))
    gt = moving_video(data.astronaut(), 16, 48, 64)
    preds = [noisy(gt, 20.0, seed=1), noisy(gt, 40.0, seed=2)]

    def score(pred, cache_dir, key="gt-a"):
        paired = VMAEPaired(horizons=(8, 16), gt_cache_dir=cache_dir)
        fd = VMAEFrechet(horizons=(8, 16), gt_cache_dir=cache_dir)
        for metric in (paired, fd):
            metric.set_gt_key(key)
        for start in (0, 8):
            batch = FrameBatch(start, gt[start:start + 8], pred[start:start + 8])
            paired.update(batch)
            fd.update(batch)
        return paired.series().values, fd.pooled_state(), paired.info()["gt_features_from_cache"]

    forwards = []
    original = vmae._SharedClipFeatures._features
    monkeypatch.setattr(vmae._SharedClipFeatures, "_features",
                        lambda self, clips: forwards.append(len(clips)) or original(self, clips))
    uncached = [score(p, None) for p in preds]
    assert len(forwards) == 8  # (gt + pred) x 2 batches x 2 predictions
    forwards.clear()
    first = score(preds[0], tmp_path / "cache")
    assert not first[2] and len(forwards) == 4 and len(list((tmp_path / "cache").glob("vmae-gt-*.npz"))) == 1
    forwards.clear()
    second = score(preds[1], tmp_path / "cache")
    assert second[2] and len(forwards) == 2  # prediction clips only
    for (values, state, _), (ref_values, ref_state, _) in zip((first, second), uncached):
        np.testing.assert_allclose(values, ref_values, rtol=0, atol=1e-12)
        np.testing.assert_allclose(state["gt"], ref_state["gt"], rtol=0, atol=1e-6)
    forwards.clear()
    score(preds[1], tmp_path / "cache", key="gt-b")  # another GT: computed, not taken from gt-a's cache
    assert len(forwards) == 4


def test_bench_score_reuses_gt_features_for_another_prediction(weights_env, tmp_path, monkeypatch):
    """`bench score` on a second prediction of one GT takes the GT-side Inception / VideoMAE features from
    <cache-dir>/gt_features: the values equal a cache-free scoring, and no GT frame goes through Inception."""
    from bench.metrics import fid
    from bench.metrics.pair import score_pair
    from bench.video import write_video

    _tiny_videomae(tmp_path / "vmae")
    monkeypatch.setenv("BENCH_VIDEOMAE_PATH", str(tmp_path / "vmae"))
    gt = moving_video(data.astronaut(), 16, 48, 64)
    write_video(tmp_path / "gt.mp4", gt, 25)
    for i, std in enumerate((10.0, 30.0)):
        write_video(tmp_path / f"pred{i}.mp4", noisy(gt, std, seed=i), 25)
    names = ["fid", "vmae_paired", "vmae_fd"]
    inception_frames = []
    original = fid.inception_features
    monkeypatch.setattr(fid, "inception_features",
                        lambda model, frames, *a, **k: inception_frames.append(len(frames)) or original(model, frames, *a, **k))

    def score(i, cache):
        result = score_pair(str(tmp_path / "gt.mp4"), str(tmp_path / f"pred{i}.mp4"), metrics=names, cache_dir=str(cache))
        return {name: result["metrics"][name] for name in names}

    fresh = score(1, tmp_path / "cache_fresh")
    score(0, tmp_path / "cache")
    inception_frames.clear()
    cached = score(1, tmp_path / "cache")
    assert sum(inception_frames) == 16  # the prediction's frames only
    assert cached["vmae_paired"]["gt_features_from_cache"] and not fresh["vmae_paired"]["gt_features_from_cache"]
    for name in names:
        assert cached[name]["value"] == pytest.approx(fresh[name]["value"], rel=1e-6, abs=1e-9)
