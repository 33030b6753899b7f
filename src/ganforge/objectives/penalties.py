"""Penalties on the discriminator, usable with any loss.

- ``gradient_penalty``: lambda * E[(||grad D(x_hat)|| - center)^2] on random interpolates
  x_hat = eps * x + (1 - eps) * G(z), eps ~ U(0, 1) per sample (Gulrajani et al. 2017).
- ``r1_penalty``: gamma / 2 * E[||grad D(x)||^2] on real samples (Mescheder et al. 2018); with
  a lazy interval k it is applied every k-th D step and multiplied by k (Karras et al. 2020).
- ``clip_weights``: clamp every parameter of D to [-c, c] after its update (Arjovsky et al.).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _grad_norms(d: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                group: int = 1) -> torch.Tensor:
    """L2 norms of dD/dx per sample (per group of ``group`` consecutive samples), keeping the
    graph so the penalty can be backpropagated."""
    x = x.detach().requires_grad_(True)
    out = d(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad.reshape(x.shape[0] // group, -1).norm(2, dim=1)


def interpolates(real: torch.Tensor, fake: torch.Tensor,
                 eps: torch.Tensor | None = None) -> torch.Tensor:
    """eps * real + (1 - eps) * fake with one eps ~ U(0, 1) per sample (or the given eps)."""
    if eps is None:
        eps = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    eps = eps.reshape(-1, *([1] * (real.dim() - 1)))
    return eps * real.detach() + (1 - eps) * fake.detach()


def gradient_penalty(d: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor, weight: float = 10.0, center: float = 1.0,
                     eps: torch.Tensor | None = None, group: int = 1) -> torch.Tensor:
    """WGAN-GP's two-sided penalty on interpolates between real and fake samples. ``group``
    > 1: one eps and one gradient norm per group of consecutive samples, for a D that reads
    each group as one input (PacGAN packing, as CTGAN's critic does)."""
    if eps is None and group > 1:
        eps = torch.rand(real.shape[0] // group, device=real.device,
                         dtype=real.dtype).repeat_interleave(group)
    norms = _grad_norms(d, interpolates(real, fake, eps), group)
    return weight * ((norms - center) ** 2).mean()


def r1_penalty(d: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
               gamma: float = 10.0) -> torch.Tensor:
    """gamma / 2 * E[||grad_x D(x)||^2] on real samples."""
    norms = _grad_norms(d, real)
    return 0.5 * gamma * (norms ** 2).mean()


@torch.no_grad()
def clip_weights(module: nn.Module, clip: float) -> None:
    """Clamp every parameter of ``module`` to [-clip, clip] in place (WGAN's Lipschitz hack)."""
    params = [p for p in module.parameters()]
    if params:
        torch._foreach_clamp_min_(params, -clip)
        torch._foreach_clamp_max_(params, clip)
