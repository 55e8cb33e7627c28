"""Flow-matching helpers shared by every Wan-style model here (the lab base training, EverAnimate's RFM).

Diffusers convention: ``x_sigma = (1 - sigma) x0 + sigma eps``, the model predicts ``v = eps - x0``,
``t = 1000 sigma``; the shifted grid ``sigma = shift s / (1 + (shift - 1) s)``.
"""
from __future__ import annotations

import torch


def shifted_sigmas(n: int = 1000, shift: float = 5.0) -> torch.Tensor:
    """The training grid: ``s`` uniform on ``(0, 1]`` (``n`` values, 1 first), ``sigma = shift s / (1 + (shift-1) s)``."""
    s = torch.linspace(1.0, 0.0, n + 1, dtype=torch.float64)[:-1]
    return shift * s / (1 + (shift - 1) * s)


def sampling_sigmas(steps: int = 20, shift: float = 5.0) -> torch.Tensor:
    """The inference grid (the release's, and the training grid's family): ``s = 1, 1 - 1/steps, ..., 1/steps``,
    ``sigma = shift s / (1 + (shift - 1) s)``, then a final 0: ``steps + 1`` values (float64). With 20 steps and
    shift 5 the last four before 0 are 0.5556, 0.4688, 0.3571, 0.2083. (diffusers'
    ``FlowMatchEulerDiscreteScheduler`` spaces its grid differently and ends at 0.0244: not used here.)"""
    return torch.cat([shifted_sigmas(steps, shift), torch.zeros(1, dtype=torch.float64)])


def noised(x0: torch.Tensor, eps: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``(1 - sigma) x0 + sigma eps`` with ``sigma`` per sample ``(B,)``."""
    s = sigma.view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1 - s) * x0 + s * eps


def sample_sigmas(batch: int, generator: torch.Generator | None = None, shift: float = 5.0,
                  num_train_timesteps: int = 1000) -> torch.Tensor:
    """Timesteps drawn uniformly from the ``num_train_timesteps``-step shifted grid; returns ``sigma`` ``(B,)``
    (float32)."""
    grid = shifted_sigmas(num_train_timesteps, shift)
    idx = torch.randint(0, len(grid), (batch,), generator=generator)
    return grid[idx].float()
