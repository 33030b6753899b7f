"""Optimizers from their config section (``optim.g`` / ``optim.d``); every task builds its
optimizers here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


def build_optimizer(params: Iterable[nn.Parameter], cfg: Any) -> torch.optim.Optimizer:
    """Adam / RMSprop / SGD with the implementation ``cfg.impl`` picks: ``foreach`` (one
    multi-tensor kernel per update step), ``fused`` (one fused kernel; Adam and SGD) or
    ``loop`` (PyTorch's per-parameter reference implementation)."""
    params = list(params)
    impl = {"foreach": {"foreach": True}, "fused": {"fused": True},
            "loop": {"foreach": False}}[getattr(cfg, "impl", "foreach")]
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                                weight_decay=cfg.weight_decay, **impl)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps,
                                   momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                   **impl)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay, **impl)
