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
                             trainer.cfg.train.d_steps, objective=trainer.cfg.objective,
                             step=lambda: trainer.step)


def task_networks(name: str) -> Callable[[Any], tuple[Any, Any]] | None:
    """The task's own ``build_networks(trainer) -> (G, D)``, or None to build from the specs."""
    return getattr(TASKS.get(name), "build_networks", None)


def task_run_loader(name: str) -> Callable[..., Any] | None:
    """The task's own ``load_run(run_dir, cfg, device, checkpoint) -> Run``, if it has one."""
    return getattr(TASKS.get(name), "load_run", None)


def task_modules(name: str) -> Callable[[Any, tuple[int, ...]], dict[str, Any]] | None:
    """The task's own ``build_modules(cfg, data_shape) -> {name: module}`` for loading a run
    whose networks are not the spec-built G and D ("generator" maps the latent to data, for
    sampling), or None.

    All three hooks (``build_networks``, ``load_run``, ``build_modules``) are attributes set on
    the task's registered factory, next to the task's code."""
    return getattr(TASKS.get(name), "build_modules", None)


@register_task("timegan")
def _timegan(trainer: Any) -> Any:
    from ganforge.tasks.timegan import TimeGANTask

    return TimeGANTask(trainer)


def _timegan_modules(cfg: Any, data_shape: tuple[int, ...]) -> dict[str, Any]:
    from ganforge.tasks.timegan import build_modules

    return build_modules(cfg, data_shape)


_timegan.build_modules = _timegan_modules  # type: ignore[attr-defined]


def _check_timegan(cfg: Any, data_shape: tuple[int, ...] | None) -> None:
    from ganforge.objectives.compat import check_objective
    from ganforge.tasks.timegan import check_timegan

    check_objective(cfg, data_shape)
    if data_shape is not None:  # user files: checked once the data is loaded
        check_timegan(cfg, tuple(data_shape))


TASK_CHECKS["timegan"] = _check_timegan


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


from ganforge.tasks import conditional as _conditional  # noqa: F401  (conditional task)
from ganforge.tasks import ctgan as _ctgan  # noqa: F401  (registers the ctgan task)
from ganforge.tasks import stackgan as _stackgan  # noqa: F401  (text-to-image, two stages)

__all__ = ["TASKS", "TASK_CHECKS", "UnconditionalTask", "build_task",
           "register_task", "task_modules", "task_networks", "task_run_loader"]
