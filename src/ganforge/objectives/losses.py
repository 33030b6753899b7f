"""Adversarial losses as pure functions of D's outputs (logits, or critic values).

Each loss gives ``d_loss(real, fake, real_target, fake_target)`` and ``g_loss(fake)``;
``real_target`` and ``fake_target`` let label smoothing change D's targets without touching
the loss (losses without targets ignore them, and the config rejects smoothing for them).

=================  ==========================================  ==============================
loss               D minimises                                 G minimises
=================  ==========================================  ==============================
minimax            BCE(D(x), 1) + BCE(D(G(z)), 0)              -BCE(D(G(z)), 0)
non_saturating     same                                        BCE(D(G(z)), 1)
wasserstein        E[D(G(z))] - E[D(x)]                        -E[D(G(z))]
wgan_gp            same as wasserstein (+ gradient penalty)    -E[D(G(z))]
hinge              E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]    -E[D(G(z))]
least_squares      .5 E[(D(x) - b)^2] + .5 E[(D(G(z)) - a)^2]  .5 E[(D(G(z)) - c)^2]
=================  ==========================================  ==============================

LSGAN uses a = 0, b = c = 1 (Mao et al. 2017, the 0-1 coding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ganforge.errors import ConfigError, did_you_mean


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Mean binary cross-entropy of logits against one target value (1 real, 0 fake)."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@dataclass(frozen=True)
class GanLoss:
    name: str
    d_loss: Callable[..., torch.Tensor]
    g_loss: Callable[[torch.Tensor], torch.Tensor]
    probabilities: bool  # D's output is a logit of P(real); False for critics (Wasserstein)
    targets: bool = True  # d_loss uses real/fake targets (label smoothing applies)


def bce_d_loss(real: torch.Tensor, fake: torch.Tensor, real_target: float = 1.0,
               fake_target: float = 0.0) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))] (with optional smoothed targets)."""
    return bce(real, real_target) + bce(fake, fake_target)


def minimax_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """The original saturating objective: G minimises E[log(1 - D(G(z)))] = -BCE(fake, 0)."""
    return -bce(fake, 0.0)


def non_saturating_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """Goodfellow's heuristic: G maximises E[log D(G(z))], i.e. minimises BCE(fake, 1)."""
    return bce(fake, 1.0)


def wasserstein_d_loss(real: torch.Tensor, fake: torch.Tensor, real_target: float = 1.0,
                       fake_target: float = 0.0) -> torch.Tensor:
    """The critic maximises E[D(x)] - E[D(G(z))] (Arjovsky et al. 2017)."""
    return fake.mean() - real.mean()


def critic_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """G maximises the critic's value of its samples (WGAN, hinge)."""
    return -fake.mean()


def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor, real_target: float = 1.0,
                 fake_target: float = 0.0) -> torch.Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))] (Lim & Ye 2017; Miyato et al. 2018)."""
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def least_squares_d_loss(real: torch.Tensor, fake: torch.Tensor, real_target: float = 1.0,
                         fake_target: float = 0.0) -> torch.Tensor:
    """LSGAN: 1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2] with b = real_target, a = fake_target."""
    return 0.5 * ((real - real_target) ** 2).mean() + 0.5 * ((fake - fake_target) ** 2).mean()


def least_squares_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """LSGAN: 1/2 E[(D(G(z)) - c)^2] with c = 1."""
    return 0.5 * ((fake - 1.0) ** 2).mean()


LOSSES: dict[str, GanLoss] = {
    "minimax": GanLoss("minimax", bce_d_loss, minimax_g_loss, True),
    "non_saturating": GanLoss("non_saturating", bce_d_loss, non_saturating_g_loss, True),
    "wasserstein": GanLoss("wasserstein", wasserstein_d_loss, critic_g_loss, False, False),
    "wgan_gp": GanLoss("wgan_gp", wasserstein_d_loss, critic_g_loss, False, False),
    "hinge": GanLoss("hinge", hinge_d_loss, critic_g_loss, False, False),
    "least_squares": GanLoss("least_squares", least_squares_d_loss, least_squares_g_loss,
                             False, True),
}


def get_loss(name: str) -> GanLoss:
    if name not in LOSSES:
        raise ConfigError(f"unknown loss '{name}'.{did_you_mean(name, LOSSES)} "
                          f"Losses: {', '.join(LOSSES)}.")
    return LOSSES[name]
