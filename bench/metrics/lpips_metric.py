"""LPIPS (``lpips`` v0.1, ``net='alex'``), inputs in [-1, 1], full resolution, one value per frame.

The network is ``lpips.LPIPS`` itself (no re-implementation): its AlexNet backbone is read by torchvision
from ``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth`` and its linear layers from the ``lpips``
wheel. Both files are checked (present, hash) *before* the library is called, so the library never
reaches its download path.
"""
from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np

from bench.metrics import weights as W
from bench.metrics.base import FrameBatch, PerFrameMetric, WeightRecord


def load_lpips_alex(device: str = "cpu"):
    """``lpips.LPIPS(net='alex', version='0.1')`` in eval mode, after verifying both weight files."""
    W.resolve_torch_hub("alexnet")
    W.resolve_lpips_linear()
    import lpips

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # torchvision's `pretrained=` deprecation notice inside lpips
        model = lpips.LPIPS(net="alex", version="0.1", verbose=False)
    return model.eval().to(device)


class LPIPS(PerFrameMetric):
    name = "lpips"
    display = "LPIPS"
    higher_is_better = False
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
                out.append(self._model(pred, gt).reshape(-1).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)


def _to_signed_unit(frames: np.ndarray, device: str):
    """uint8 (T, H, W, 3) -> float32 (T, 3, H, W) in [-1, 1] (x / 127.5 - 1)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float()
    return x.div_(127.5).sub_(1.0)
