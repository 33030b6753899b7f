"""The task interface: what one GAN family declares to the training loop, the loader of runs,
the monitor and the distributed code.

A task is a subclass of :class:`Task`. The loop (``training/trainer.py``) knows nothing about a
family beyond what is declared here; nothing is probed with ``hasattr``. Two halves:

- class level (no training state): ``check(cfg, data_shape)`` validates a config before any
  tensor is allocated; ``build_networks(ctx)`` builds the family's own G and D (or returns
  None: the loop builds them from the ``generator`` / ``discriminator`` specs);
  ``build_modules(cfg, data_shape)`` and ``load_run(...)`` rebuild a trained run for sampling;
  ``run_class`` is the :class:`~ganforge.run.Run` subclass a loaded run gets.
- instance level (one training run): ``__init__(ctx)`` takes the :class:`TaskContext` (the
  pieces the loop built: config, data, networks, optimizers, latents); ``train_step`` runs one
  iteration and returns :class:`StepStats`; ``modules()`` / ``optimizers()`` are what
  checkpoints hold; ``sampling_generator`` is what sample grids and evaluation draw from;
  ``state_dict()`` / ``load_state_dict()`` carry task-owned state (image pools, data order);
  ``save_samples`` writes the periodic sample picture when the default grid does not fit;
  ``callbacks()`` adds the family's own loop callbacks.

Declared signals: ``distributed_modules`` (attributes wrapped in DistributedDataParallel under
torchrun; empty: one process only) and ``probabilities`` (whether D's outputs are
probabilities, which the monitor's alarms read).

A new family: copy ``tasks/template.py``; register it in ``tasks/__init__.py`` or name it in a
config as ``task: mypackage.module:MyTask``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypedDict

import torch
from torch import nn

from ganforge import checkpoint as ckpt
from ganforge.architecture import build_network, validate_gan
from ganforge.errors import ConfigError
from ganforge.objectives.compat import check_objective
from ganforge.objectives.tricks import packed_shape
from ganforge.run import Run, run_data_shape
from ganforge.seeding import resolve_device


class StepStats(TypedDict, total=False):
    """What ``train_step`` returns: detached scalar tensors (no host sync in the step), plus
    ``images`` (an int: training samples consumed). The loop averages every tensor over the
    steps of the log window that returned it and writes it to metrics.jsonl; ``d_loss`` / ``g_loss`` are watched for NaN;
    the monitor reads ``d_real`` / ``d_fake`` (D's mean output on real / generated samples)
    when present. A task returns the keys that mean something for it, and may add its own."""

    images: int
    d_loss: torch.Tensor
    g_loss: torch.Tensor
    d_real: torch.Tensor
    d_fake: torch.Tensor


class TaskContext(Protocol):
    """What a task may read from the loop that runs it (the Trainer implements it). Tasks read
    these; they never assign to them."""

    cfg: Any
    data: Any
    device: torch.device
    run_dir: Path
    G: nn.Module  # spec-built (or ``build_networks``-built) networks
    D: nn.Module
    opt_g: torch.optim.Optimizer  # optimizers of G and D from ``optim.g`` / ``optim.d``
    opt_d: torch.optim.Optimizer
    latent_gen: torch.Generator  # the seeded generator of latents (checkpointed)
    fixed_z: torch.Tensor  # the latents of the sample grids
    step: int  # finished iterations
    total_steps: int
    scalers: dict[str, Any] | None  # fp16: one GradScaler per network ("d", "g"); else None

    def latent(self, n: int) -> torch.Tensor: ...

    @property
    def sampling_generator(self) -> nn.Module:
        """The task's sampling generator, unwrapped from DistributedDataParallel."""
        ...

    @property
    def lr_scale(self) -> float:
        """Factor on every configured learning rate (lowered by NaN rollbacks); a task that
        sets its own learning rates multiplies by it."""
        ...


def d_input_shape(cfg: Any, data_shape: tuple[int, ...]) -> tuple[int, ...]:
    """D's input shape: the data shape, or m samples concatenated under packing m."""
    return packed_shape(data_shape, cfg.objective.packing)


def spec_networks(cfg: Any, data_shape: tuple[int, ...]) -> dict[str, nn.Module]:
    """G (latent -> data) and D (data -> logit) built from the config's specs."""
    return {"generator": build_network(cfg.generator.model_dump(), cfg.latent.full_shape,
                                       "generator"),
            "discriminator": build_network(cfg.discriminator.model_dump(),
                                           d_input_shape(cfg, data_shape), "discriminator")}


def load_weights(run_dir: str | Path, modules: dict[str, nn.Module], device: str = "cpu",
                 checkpoint: str | Path | None = None) -> int:
    """Load each module (keyed by its name in the checkpoint) from the run's latest or a given
    checkpoint, on ``device``, in eval mode; return the checkpoint's step."""
    path = Path(checkpoint) if checkpoint else ckpt.latest_checkpoint(Path(run_dir))
    step, weights, _ = ckpt.load_checkpoint(path)
    dev = resolve_device(device)
    for name, module in modules.items():
        module.to(dev)
        ckpt.load_module_weights(module, weights, name, path)
        module.eval()
    return step


# the task-specific config sections, and the tasks that read them
OPTIONAL_SECTIONS = {"tabular": "ctgan", "translation": "cyclegan or pix2pix",
                     "task_options": "timegan or stackgan"}


class Task(ABC):
    """Base class of every task (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    # the task-specific config sections this task reads (of tabular, translation,
    # task_options); one of them set under another task is an error, not silently ignored
    sections: ClassVar[tuple[str, ...]] = ()
    run_class: ClassVar[type[Run]] = Run
    distributed_modules: ClassVar[tuple[str, ...]] = ()
    # whether D's outputs are probabilities (None: the monitor decides from objective.loss)
    probabilities: bool | None = None
    # whether the task sets its own learning rates every step (then optim.*.schedule, which
    # the loop applies, is rejected instead of being silently overwritten)
    own_lr_schedule: ClassVar[bool] = False
    # the objective section's keys this task's step reads (None: all of them, as the G/D
    # tasks do); another one set is rejected, naming where this task's losses are configured.
    # ``d_norm`` rewrites the discriminator spec and is not checked here.
    objective_keys: ClassVar[tuple[str, ...] | None] = None
    objective_elsewhere: ClassVar[str] = ""

    # ----------------------------------------------------------------- class level
    @classmethod
    def check(cls, cfg: Any, data_shape: tuple[int, ...] | None) -> None:
        """Reject a config this task cannot train, naming the key to change. ``data_shape``
        is None for user files not loaded yet (the loop calls this again with the shape).
        Default: the objective's compatibility rules and the latent -> data -> logit specs."""
        check_objective(cfg, data_shape)
        if data_shape is None:
            return
        validate_gan(cfg.generator.model_dump(), cfg.discriminator.model_dump(),
                     cfg.latent.full_shape, data_shape,
                     d_in_shape=d_input_shape(cfg, data_shape))

    @classmethod
    def build_networks(cls, ctx: TaskContext) -> tuple[nn.Module, nn.Module] | None:
        """The family's own (G, D) from the loaded data, or None to build the specs."""
        return None

    @classmethod
    def build_modules(cls, cfg: Any, data_shape: tuple[int, ...]) -> dict[str, nn.Module]:
        """The networks of a trained run, keyed as in its checkpoints; ``generator`` maps the
        latent to data (what ``Run.sample`` calls), ``discriminator`` is kept for scoring."""
        return spec_networks(cfg, data_shape)

    @classmethod
    def sampling_module(cls, cfg: Any) -> str:
        """The checkpointed module a loaded run samples from: ``generator_ema`` when
        ``objective.ema`` is set (a task that reads that key keeps its EMA copy under this
        name; one that does not has it rejected by ``check_sections``), else ``generator``."""
        return "generator_ema" if cfg.objective.ema is not None else "generator"

    @classmethod
    def load_run(cls, run_dir: str | Path, cfg: Any, device: str = "cpu",
                 checkpoint: str | Path | None = None) -> Run:
        """A trained run of this task from its latest (or a given) checkpoint; its generator
        holds the weights of ``sampling_module``."""
        data_shape, kind = run_data_shape(run_dir, cfg)
        mods = cls.build_modules(cfg, data_shape)
        G, D = mods["generator"], mods["discriminator"]
        step = load_weights(run_dir, {cls.sampling_module(cfg): G, "discriminator": D}, device,
                            checkpoint)
        return cls.run_class(run_dir, cfg, G, D, step, tuple(data_shape), kind)

    @classmethod
    def check_sections(cls, cfg: Any) -> None:
        """Reject a task-specific section this task would not read."""
        fields = type(cfg).model_fields
        for section, readers in OPTIONAL_SECTIONS.items():
            default = fields[section].get_default(call_default_factory=True)
            if section not in cls.sections and getattr(cfg, section) != default:
                raise ConfigError(f"the '{section}' section is set, but task '{cfg.task}' does "
                                  f"not read it (it is read by task {readers}). Remove the "
                                  f"section, or set the task that reads it.")
        if cls.objective_keys is None:
            return
        default = type(cfg.objective)()
        for key in type(cfg.objective).model_fields:
            if key in cls.objective_keys or key == "d_norm":
                continue
            if getattr(cfg.objective, key) != getattr(default, key):
                reads = (f"it reads objective.{', objective.'.join(cls.objective_keys)} only"
                         if cls.objective_keys else "it reads no objective key")
                where = f"; {cls.objective_elsewhere}" if cls.objective_elsewhere else ""
                raise ConfigError(f"objective.{key} is set, but task '{cfg.task}' would ignore "
                                  f"it ({reads}{where}). Remove objective.{key}.")

    # -------------------------------------------------------------- instance level
    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def train_step(self, next_batch: Any) -> StepStats:
        """One iteration: ``next_batch()`` returns (x, y or None). Detached tensors out."""

    def modules(self) -> dict[str, nn.Module]:
        """Every network a checkpoint holds, by name."""
        return {"generator": self.ctx.G, "discriminator": self.ctx.D}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimizer a checkpoint holds, by name."""
        return {"generator": self.ctx.opt_g, "discriminator": self.ctx.opt_d}

    @property
    def sampling_generator(self) -> nn.Module:
        """The network sample grids and evaluation during training draw from."""
        return self.modules()["generator"]

    def state_dict(self) -> dict[str, Any]:
        """Task-owned state a checkpoint must carry (tensors, numbers, strings, lists)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""

    def save_samples(self, ctx: TaskContext) -> Path | None:
        """Write this step's sample picture and return its path, or None for the loop's
        default grid of ``sampling_generator(fixed_z)``."""
        return None

    def trained_run(self, ctx: TaskContext) -> Run:
        """The run ``ganforge.train`` returns when training ends: the networks in memory.
        A run class that needs files the run wrote (encoders, texts) loads it instead."""
        return self.run_class(ctx.run_dir, ctx.cfg, ctx.sampling_generator, ctx.D, ctx.step,
                              ctx.data.shape, ctx.data.kind)

    def callbacks(self, ctx: TaskContext) -> list[Any]:
        """The family's own loop callbacks (e.g. class-conditional scores)."""
        return []
