"""Optimizers from their config section (``optim.g`` / ``optim.d``); every task builds its
optimizers here, and the learning-rate schedules (``optim.g.schedule``) the loop applies."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


def build_optimizer(params: Iterable[nn.Parameter], cfg: Any) -> torch.optim.Optimizer:
    """Adam / AdamW / RMSprop / SGD with the implementation ``cfg.impl`` picks: ``foreach`` (one
    multi-tensor kernel per update step), ``fused`` (one fused kernel; Adam and SGD) or
    ``loop`` (PyTorch's per-parameter reference implementation)."""
    params = list(params)
    impl = {"foreach": {"foreach": True}, "fused": {"fused": True},
            "loop": {"foreach": False}}[getattr(cfg, "impl", "foreach")]
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                                weight_decay=cfg.weight_decay, **impl)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                                 weight_decay=cfg.weight_decay, **impl)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps,
                                   momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                   **impl)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay, **impl)


def schedule_factor(schedule: Any, step: int, total_steps: int) -> float:
    """The factor on the configured lr for the update numbered ``step`` (0-based) of
    ``total_steps``: linear warm-up ((step + 1) / warmup), then constant, linear or cosine decay
    from 1 to ``min_factor`` at the last step. None (no schedule) is 1."""
    if schedule is None:
        return 1.0
    warmup = int(schedule.warmup)
    if step < warmup:
        return (step + 1) / warmup
    if schedule.kind == "constant":
        return 1.0
    span = max(1, total_steps - warmup - 1)
    progress = min(1.0, max(0.0, (step - warmup) / span))
    lo = float(schedule.min_factor)
    if schedule.kind == "linear":
        return 1.0 - (1.0 - lo) * progress
    return lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * progress))


class LrSchedules:
    """Sets every scheduled optimizer's lr before each step from its configured lr, the
    schedule's factor at that step and the NaN-rollback scale. Stateless beyond the step the
    checkpoint already holds, so resuming reproduces the learning rates exactly."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer],
                 configs: dict[str, Any]) -> None:
        self.items = [(optimizers[name], cfg) for name, cfg in configs.items()
                      if cfg.schedule is not None and name in optimizers]

    def __bool__(self) -> bool:
        return bool(self.items)

    def apply(self, step: int, total_steps: int, scale: float = 1.0) -> None:
        for opt, cfg in self.items:
            lr = cfg.lr * schedule_factor(cfg.schedule, step, total_steps) * scale
            for group in opt.param_groups:
                group["lr"] = lr
