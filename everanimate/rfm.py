"""Restorative Flow Matching: the training target, its alpha(t) schedule, the loss weight and the gates.

Diffusers convention: ``x_sigma = (1 - sigma) x0 + sigma eps``, the model predicts ``v = eps - x0``,
``t = 1000 sigma``. Each piece is a small function so it can be tested against the spec on its own. The
plain flow-matching pieces (the shifted grids, ``noised``, timestep draws) are shared with the lab base
training and live in ``bench.models.flow_matching``.
"""
from __future__ import annotations

import torch

from bench.models import flow_matching
from bench.models.flow_matching import noised, sampling_sigmas, shifted_sigmas  # noqa: F401 (the shared grid)
from everanimate.config import RFMConfig


def train_timesteps(config: RFMConfig = RFMConfig()) -> torch.Tensor:
    """``t = 1000 sigma`` on the shift-5 training grid (1000 values)."""
    return shifted_sigmas(config.num_train_timesteps, config.shift) * 1000.0


def bell(t: torch.Tensor | float) -> torch.Tensor:
    """``g(t) = exp(-2 ((t - 500) / 1000)^2)``."""
    t = torch.as_tensor(t, dtype=torch.float64)
    return torch.exp(-2.0 * ((t - 500.0) / 1000.0) ** 2)


def alpha(t: torch.Tensor | float, config: RFMConfig = RFMConfig()) -> torch.Tensor:
    """``alpha(t) = lambda (g(t) - min g) / (max g - min g)``, min/max over the training grid, clamped at 0."""
    g_grid = bell(train_timesteps(config))
    lo, hi = g_grid.min(), g_grid.max()
    return (config.lam * (bell(t) - lo) / (hi - lo)).clamp(min=0.0)


def loss_weight(t: torch.Tensor | float, config: RFMConfig = RFMConfig()) -> torch.Tensor:
    """Per-sample timestep weight: the bell curve shifted to min 0 and normalised to mean 1 on the grid."""
    g_grid = bell(train_timesteps(config))
    shifted = g_grid - g_grid.min()
    return ((bell(t) - g_grid.min()) / shifted.mean()).clamp(min=0.0)


def rfm_target(x0: torch.Tensor, x0_aug: torch.Tensor, eps: torch.Tensor, sigma: torch.Tensor,
               config: RFMConfig = RFMConfig()) -> torch.Tensor:
    """``u = (eps - x0) + alpha(t) (1 - sigma) (x0_aug - x0)``; plain FM ``eps - x0`` when ``x0_aug == x0``."""
    s = sigma.view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    a = alpha(sigma.double() * 1000.0, config).view_as(s).to(x0.dtype)
    return (eps - x0) + a * (1 - s) * (x0_aug - x0)


def perturb_gate(sigma: torch.Tensor, generator: torch.Generator | None = None,
                 config: RFMConfig = RFMConfig()) -> torch.Tensor:
    """Bool ``(B,)``: perturb this sample? With probability ``prob`` and only where ``sigma >= min_sigma``."""
    draw = torch.rand(sigma.shape, generator=generator, dtype=torch.float64)
    return (draw < config.prob) & (sigma.double() >= config.min_sigma)


def sample_sigmas(batch: int, generator: torch.Generator | None = None,
                  config: RFMConfig = RFMConfig()) -> torch.Tensor:
    """Timesteps drawn uniformly from the 1000-step shift-5 grid; returns ``sigma`` ``(B,)`` (float32)."""
    return flow_matching.sample_sigmas(batch, generator, config.shift, config.num_train_timesteps)


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, sigma: torch.Tensor,
                 config: RFMConfig = RFMConfig()) -> torch.Tensor:
    """``mean_b w(t_b) * MSE_b(pred, target)``: the loss on the target slots."""
    per_sample = ((pred.float() - target.float()) ** 2).flatten(1).mean(1)
    w = loss_weight(sigma.double() * 1000.0, config).to(per_sample)
    return (w * per_sample).mean()
