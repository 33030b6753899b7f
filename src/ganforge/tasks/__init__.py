"""What one training step is, per GAN family.

A task factory takes the Trainer (which has built the data, G, D and optimizers from the
config) and returns an object with ``train_step(next_batch) -> dict``, ``modules()`` and
``optimizers()``. Register new families with ``register_task``; the config picks one with
``task: NAME``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ganforge.tasks.unconditional import UnconditionalTask

TaskFactory = Callable[[Any], Any]
TASKS: dict[str, TaskFactory] = {}
# Optional per-task spec check ``fn(cfg, data_shape | None)``, used by config.check_networks
# instead of the latent -> data / data -> logit check (translation tasks map images to images).
TASK_CHECKS: dict[str, Callable[[Any, Any], None]] = {}


def register_task(name: str) -> Callable[[TaskFactory], TaskFactory]:
    def deco(fn: TaskFactory) -> TaskFactory:
        TASKS[name] = fn
        return fn

    return deco


@register_task("unconditional")
def _unconditional(trainer: Any) -> UnconditionalTask:
    from ganforge.objectives import get_loss

    return UnconditionalTask(trainer.G, trainer.D, trainer.opt_g, trainer.opt_d,
                             get_loss(trainer.cfg.objective.loss), trainer.latent,
                             trainer.cfg.train.d_steps)


@register_task("cyclegan")
def _cyclegan(trainer: Any) -> Any:
    from ganforge.tasks.cyclegan import CycleGANTask

    return CycleGANTask(trainer)


@register_task("pix2pix")
def _pix2pix(trainer: Any) -> Any:
    from ganforge.tasks.pix2pix import Pix2PixTask

    return Pix2PixTask(trainer)


def _check_cyclegan(cfg: Any, data_shape: Any) -> None:
    from ganforge.tasks.translation import check_cyclegan

    check_cyclegan(cfg, data_shape)


def _check_pix2pix(cfg: Any, data_shape: Any) -> None:
    from ganforge.tasks.translation import check_pix2pix

    check_pix2pix(cfg, data_shape)


TASK_CHECKS["cyclegan"] = _check_cyclegan
TASK_CHECKS["pix2pix"] = _check_pix2pix


def build_task(name: str, trainer: Any) -> Any:
    from ganforge.errors import ConfigError, did_you_mean

    if name not in TASKS:
        raise ConfigError(f"unknown task '{name}'.{did_you_mean(name, TASKS)} "
                          f"Tasks: {', '.join(TASKS)}.")
    return TASKS[name](trainer)


__all__ = ["TASKS", "TASK_CHECKS", "UnconditionalTask", "build_task", "register_task"]
