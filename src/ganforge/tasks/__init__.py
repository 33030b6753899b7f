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


def build_task(name: str, trainer: Any) -> Any:
    from ganforge.errors import ConfigError, did_you_mean

    if name not in TASKS:
        raise ConfigError(f"unknown task '{name}'.{did_you_mean(name, TASKS)} "
                          f"Tasks: {', '.join(TASKS)}.")
    return TASKS[name](trainer)


from ganforge.tasks import conditional as _conditional  # noqa: F401  (conditional task)
from ganforge.tasks import ctgan as _ctgan  # noqa: F401  (registers the ctgan task)

__all__ = ["TASKS", "UnconditionalTask", "build_task", "register_task", "task_networks",
           "task_run_loader"]
