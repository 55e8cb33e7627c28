"""LPIPS (``lpips`` v0.1, ``net='alex'``), inputs in [-1, 1], full resolution, one value per frame.

The network is ``lpips.LPIPS`` itself: its AlexNet backbone is read by torchvision from
``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth`` and its linear layers from the ``lpips`` wheel.
Both files are checked (present, hash) *before* the library is called, so the library never reaches its
download path. On a CPU the library's scaling layer and backbone run as they are, and its head (per-layer
feature normalisation, squared difference, 1x1 linear layer, spatial mean) is one compiled pass per layer
(``kernels.lpips_layer_distance``), equal to ``lpips.LPIPS.forward`` within float32 rounding.
"""
from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np

from bench.metrics import weights as W
from bench.metrics.base import FrameBatch, PerFrameMetric, WeightRecord


def load_lpips_alex(device: str = "cpu"):
    """``lpips.LPIPS(net='alex', version='0.1')`` in eval mode, after verifying both weight files; weights
    kept channels-last, the layout frames arrive in (faster on a CPU, same values)."""
    W.resolve_torch_hub("alexnet")
    W.resolve_lpips_linear()
    import lpips
    import torch

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # torchvision's `pretrained=` deprecation notice inside lpips
        model = lpips.LPIPS(net="alex", version="0.1", verbose=False)
    return model.eval().to(device, memory_format=torch.channels_last)


class LPIPS(PerFrameMetric):
    name = "lpips"
    description = "lpips v0.1 AlexNet distance, inputs in [-1, 1], full resolution, per frame"

    def __init__(self, *, batch_size: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.batch_size = int(batch_size)
        self._records = type(self).check_weights()
        self._model = load_lpips_alex(self.device)

    @classmethod
    def check_weights(cls) -> list[WeightRecord]:
        return [W.resolve_torch_hub("alexnet"), W.resolve_lpips_linear()]

    def weights(self) -> list[WeightRecord]:
        return list(self._records)

    def frame_values(self, batch: FrameBatch) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for a in range(0, len(batch), self.batch_size):
                gt = _to_signed_unit(batch.gt[a:a + self.batch_size], self.device)
                pred = _to_signed_unit(batch.pred[a:a + self.batch_size], self.device)
                out.append(lpips_distance(self._model, pred, gt))
        return np.concatenate(out) if out else np.zeros(0)


def lpips_distance(model, in0, in1) -> np.ndarray:
    """``model(in0, in1)`` per image (float64): ``lpips.LPIPS`` v0.1's scaling layer and backbone, its head
    (unit-normalised features, squared difference, 1x1 linear layer, spatial mean) fused into one compiled
    pass per layer on a CPU; equal to the library's value within float32 rounding (tests/test_metrics_networks)."""
    if in0.device.type != "cpu":
        return model(in0, in1).reshape(-1).double().cpu().numpy()
    from bench.metrics.kernels import lpips_layer_distance, thread_pool

    outs0, outs1 = model.net(model.scaling_layer(in0)), model.net(model.scaling_layer(in1))
    n = len(in0)
    halves = [slice(0, (n + 1) // 2), slice((n + 1) // 2, n)] if n > 1 else [slice(0, n)]
    tasks = []
    for kk in range(model.L):
        weights = model.lins[kk].model[-1].weight.detach().reshape(-1).float().numpy()
        f0, f1 = (o[kk].permute(0, 2, 3, 1).reshape(n, -1, o[kk].shape[1]).contiguous().numpy() for o in (outs0, outs1))
        tasks += [(f0[part], f1[part], weights, part) for part in halves]
    total = np.zeros(n, np.float64)
    eps = np.float32(1e-10)  # lpips.normalize_tensor's
    for part, value in thread_pool().map(lambda t: (t[3], lpips_layer_distance(t[0], t[1], t[2], eps)), tasks):
        total[part] += value
    return total


def _to_signed_unit(frames: np.ndarray, device: str):
    """uint8 (T, H, W, 3) -> float32 (T, 3, H, W) in [-1, 1] (x / 127.5 - 1), channels-last, one pass on a CPU."""
    import torch

    from bench.metrics.kernels import signed_unit_float32

    frames = np.ascontiguousarray(frames)
    if torch.device(device).type != "cpu":
        x = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float()
        return x.div_(127.5).sub_(1.0)
    out = np.empty(frames.shape, np.float32)
    signed_unit_float32(frames, out)
    return torch.from_numpy(out).permute(0, 3, 1, 2)
