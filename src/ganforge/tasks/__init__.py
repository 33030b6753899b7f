"""GAN families as tasks: each a subclass of ``ganforge.tasks.base.Task``.

The registry maps a task name to ``"module:Class"`` and imports the module when the task is
first asked for. A config picks a task with ``task: NAME``; a task outside the package works
without registering it, as ``task: mypackage.tasks:MyTask``. ``register_task(name, target)``
adds a short name. ``tasks/template.py`` is a commented task to copy.
"""

from __future__ import annotations

import importlib
from typing import Any

from ganforge.config import known_data_shape, resolve_data_widths
from ganforge.errors import ConfigError, did_you_mean
from ganforge.objectives.compat import check_rejection_config
from ganforge.tasks.base import StepStats, Task, TaskContext

TASKS: dict[str, str | type[Task]] = {
    "unconditional": "ganforge.tasks.unconditional:UnconditionalTask",
    "conditional": "ganforge.tasks.conditional:ConditionalTask",
    "ctgan": "ganforge.tasks.ctgan:CTGANTask",
    "timegan": "ganforge.tasks.timegan:TimeGANTask",
    "cyclegan": "ganforge.tasks.cyclegan:CycleGANTask",
    "pix2pix": "ganforge.tasks.pix2pix:Pix2PixTask",
    "stackgan": "ganforge.tasks.stackgan:StackGANTask",
}


def register_task(name: str, target: str | type[Task]) -> None:
    """Make ``task: NAME`` pick ``target``: a Task subclass or a ``"module:Class"`` path."""
    if not isinstance(target, str) and not (isinstance(target, type)
                                            and issubclass(target, Task)):
        raise TypeError(f"register_task('{name}', ...) needs a Task subclass or a "
                        f"'module:Class' path, got {target!r}")
    TASKS[name] = target


def _import(path: str, name: str) -> Any:
    module, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"task '{name}': cannot import '{path}' ({type(exc).__name__}: "
                          f"{exc}). Give task as 'package.module:ClassName' of an importable "
                          f"module.") from None


def task_class(name: str) -> type[Task]:
    """The Task subclass a config's ``task`` names (a registered name or ``module:Class``)."""
    if name in TASKS:
        target = TASKS[name]
    elif ":" in name:
        target = name
    else:
        raise ConfigError(f"unknown task '{name}'.{did_you_mean(name, TASKS)} Tasks: "
                          f"{', '.join(TASKS)}; or your own as 'package.module:ClassName'.")
    cls = _import(target, name) if isinstance(target, str) else target
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ConfigError(f"task '{name}' is {cls!r}, not a subclass of "
                          f"ganforge.tasks.base.Task; see tasks/template.py.")
    return cls


def check_config(cfg: Any, data_shape: tuple[int, ...] | None = None) -> None:
    """The chosen task's checks of a schema-valid config (shapes from ``data_shape``, or from
    the config where the data is bundled or sized)."""
    cls = task_class(cfg.task)
    cls.check_sections(cfg)
    if cfg.sampling.rejection != "none":  # every task, whether or not its check reads objective
        check_rejection_config(cfg, cfg.sampling.rejection)
    shape = data_shape if data_shape is not None else known_data_shape(cfg)
    # widths written as steps / features are checked as the data fills them in
    cls.check(cfg if shape is None else resolve_data_widths(cfg, tuple(shape)), shape)


__all__ = ["TASKS", "StepStats", "Task", "TaskContext", "check_config", "register_task",
           "task_class"]
