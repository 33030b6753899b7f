"""Adversarial losses as pure functions of D's logits.

Each loss gives ``d_loss(real_logits, fake_logits)`` and ``g_loss(fake_logits)``; ``real_target``
and ``fake_target`` let label smoothing change D's targets without touching the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ganforge.errors import ConfigError, did_you_mean


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@dataclass(frozen=True)
class GanLoss:
    name: str
    d_loss: Callable[..., torch.Tensor]
    g_loss: Callable[[torch.Tensor], torch.Tensor]
    probabilities: bool  # D's output is a logit of P(real); False for critics (Wasserstein)


def bce_d_loss(real: torch.Tensor, fake: torch.Tensor, real_target: float = 1.0,
               fake_target: float = 0.0) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))] (with optional smoothed targets)."""
    return _bce(real, real_target) + _bce(fake, fake_target)


def minimax_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """The original saturating objective: G minimises E[log(1 - D(G(z)))] = -BCE(fake, 0)."""
    return -_bce(fake, 0.0)


def non_saturating_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """Goodfellow's heuristic: G maximises E[log D(G(z))], i.e. minimises BCE(fake, 1)."""
    return _bce(fake, 1.0)


LOSSES: dict[str, GanLoss] = {
    "minimax": GanLoss("minimax", bce_d_loss, minimax_g_loss, True),
    "non_saturating": GanLoss("non_saturating", bce_d_loss, non_saturating_g_loss, True),
}


def get_loss(name: str) -> GanLoss:
    if name not in LOSSES:
        raise ConfigError(f"unknown loss '{name}'.{did_you_mean(name, LOSSES)} "
                          f"Losses: {', '.join(LOSSES)}.")
    return LOSSES[name]
