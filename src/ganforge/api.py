"""The public Python API, used by the CLI and by users.

    import ganforge
    run = ganforge.train("gan-ring8", overrides=["train.steps=500"])
    x = run.sample(1000)
    run = ganforge.load("runs/gan-ring8-...")
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ganforge.architecture import build_network
from ganforge.config import RunConfig, apply_overrides, load_config, validate_config
from ganforge.data import TensorData
from ganforge.errors import CheckpointError, DataError, GanforgeError
from ganforge.training import checkpoint as ckpt
from ganforge.training.seeding import resolve_device, sample_latent


class Run:
    """A trained (or training) run directory with its networks loaded from a checkpoint."""

    def __init__(self, run_dir: str | Path, config: RunConfig, generator: torch.nn.Module,
                 discriminator: torch.nn.Module, step: int, data_shape: tuple[int, ...],
                 data_kind: str) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.generator = generator
        self.discriminator = discriminator
        self.step = step
        self.data_shape = data_shape
        self.data_kind = data_kind

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def latent(self, n: int, seed: int = 0) -> torch.Tensor:
        return sample_latent(n, self.config.latent.full_shape, self.config.latent.distribution,
                             torch.Generator().manual_seed(seed), self.device)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """G(z) in eval mode, in batches; returns a CPU tensor."""
        self.generator.eval()
        outs = [self.generator(z[i:i + batch_size].to(self.device)).float().cpu()
                for i in range(0, z.shape[0], batch_size)]
        return torch.cat(outs) if outs else torch.empty(0, *self.data_shape)

    def sample(self, n: int, seed: int = 0, truncation: float | None = None,
               truncation_method: str = "scale") -> torch.Tensor:
        """n samples of the data's shape (images in [-1, 1]). ``truncation`` (psi) pulls the
        latents toward the mean (``scale``) or redraws them inside [-psi, psi] (``resample``);
        see ``ganforge.apps.latent.truncate``."""
        if n < 1:
            raise GanforgeError(f"the number of samples must be >= 1, got {n}.")
        z = self.latent(n, seed)
        if truncation is not None:
            from ganforge.apps.latent import truncate

            z = truncate(z, truncation, self.config.latent.distribution, truncation_method,
                         seed=seed + 1_000_003)
        return self.generate(z)

    def save_samples(self, samples: torch.Tensor, out: str | Path) -> Path:
        """Write samples as a PNG grid, ``.npy`` or ``.csv`` (vectors), by the extension."""
        out = Path(out)
        suffix = out.suffix.lower()
        if suffix not in (".png", ".npy", ".csv"):
            raise GanforgeError(f"cannot write '{out}': use a .png, .npy or .csv file name.")
        out.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".png":
            from ganforge.monitor.images import save_samples_picture

            return save_samples_picture(samples, out, self.data_kind)
        arr = samples.numpy()
        if suffix == ".csv" and arr.ndim == 3:  # sequences: long format, original units
            from ganforge.data.sequences import write_sequence_csv

            return write_sequence_csv(arr, out, self.run_dir)
        if suffix == ".npy":
            np.save(out, arr)
        else:
            if arr.ndim != 2:
                raise GanforgeError(f"CSV holds vectors (one row per sample); these samples have "
                                    f"shape {tuple(arr.shape[1:])}. Use .npy or .png instead.")
            header = ",".join(f"x{i}" for i in range(arr.shape[1]))
            np.savetxt(out, arr, delimiter=",", header=header, comments="", fmt="%.6g")
        return out


def _default_run_dir(cfg: RunConfig) -> Path:
    return Path("runs") / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def read_run_config(run_dir: str | Path, overrides: list[str] | None = None) -> RunConfig:
    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory '{run_dir}' does not exist.")
    if not path.is_file():
        raise CheckpointError(f"'{run_dir}' is not a ganforge run: it has no config.yaml.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CheckpointError(f"'{path}' is not valid YAML: {exc}") from None
    return validate_config(apply_overrides(raw, overrides))


def train(config: str | Path | dict[str, Any] | RunConfig | None = None, *,
          overrides: list[str] | None = None, run_dir: str | Path | None = None,
          resume: str | Path | None = None, callbacks: Any = ()) -> Run:
    """Train from a preset name, YAML path, dict or RunConfig; or resume a run directory.

    ``resume="auto"`` with ``run_dir``: continue that run if it has a checkpoint that verifies,
    else start it (the same call can be repeated after a crash)."""
    from ganforge.training.trainer import Trainer

    if resume is not None and str(resume) == "auto":
        resume, config = resolve_auto_resume(config, run_dir)
    if resume is not None:
        cfg = (read_run_config(resume, overrides) if config is None else
               config if isinstance(config, RunConfig) else load_config(config, overrides))
        trainer = Trainer(cfg, resume, resume=True, callbacks=callbacks)
    else:
        if config is None:
            raise GanforgeError("give a config (preset name, YAML file or dict) or resume=RUN_DIR.")
        cfg = config if isinstance(config, RunConfig) else load_config(config, overrides)
        trainer = Trainer(cfg, run_dir or _default_run_dir(cfg), callbacks=callbacks)
    trainer.fit()
    from ganforge.tasks import task_run_loader

    if (loader := task_run_loader(cfg.task)) is not None:  # e.g. tables: a TableRun
        return loader(trainer.run_dir, cfg, str(trainer.device))
    return Run(trainer.run_dir, cfg, trainer.sampling_generator, trainer.D, trainer.step,
               trainer.data.shape, trainer.data.kind)


def resolve_auto_resume(config: Any, run_dir: str | Path | None) -> tuple[Path | None, Any]:
    """``resume="auto"``: continue ``run_dir`` from its newest checkpoint that verifies when it
    has checkpoints, else start it fresh from ``config`` (a re-run of the same command after a
    crash or preemption). Returns (resume_dir or None, config)."""
    if run_dir is None:
        raise GanforgeError("--resume auto needs --run-dir DIR: the run to continue if it has "
                            "checkpoints, or to start if it has none.")
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise GanforgeError(f"--run-dir '{run_dir}' is a file, not a directory.")
    if ckpt.list_checkpoints(run_dir):
        return run_dir, config
    if config is None:
        raise GanforgeError(f"--resume auto: '{run_dir}' has no checkpoint to continue and no "
                            f"config was given to start it. Give a preset name or YAML file.")
    # A previous attempt died before its first checkpoint: its log is from a run that restarts
    # at step 0, so it is dropped.
    (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    ckpt.clean_stale_temporaries(run_dir)
    return None, config


def load(run_dir: str | Path, device: str = "cpu", checkpoint: str | Path | None = None) -> Run:
    """Load a run's networks from its latest (or a given) checkpoint."""
    cfg = read_run_config(run_dir)
    from ganforge.tasks import task_run_loader

    if (loader := task_run_loader(cfg.task)) is not None:  # the task knows its own networks
        return loader(run_dir, cfg, device, checkpoint)
    from ganforge.config import known_data_shape

    data_shape = known_data_shape(cfg)
    kind = "image" if data_shape is not None and len(data_shape) == 3 else "vector"
    from ganforge.data.sequences import load_data_info

    stored = load_data_info(run_dir)
    if data_shape is None and stored is not None:  # sequences: shape kept with the run
        data_shape, kind = tuple(stored["shape"]), str(stored["kind"])
    if data_shape is None:
        from ganforge.training.trainer import load_training_data

        try:
            data: TensorData = load_training_data(cfg)
        except DataError as exc:
            raise CheckpointError(f"cannot infer the data shape of '{run_dir}': {exc}") from None
        data_shape, kind = data.shape, data.kind
    dev = resolve_device(device)
    from ganforge.config import discriminator_input_shape
    from ganforge.tasks import task_modules

    if (build_modules := task_modules(cfg.task)) is not None:  # own networks (timegan)
        mods = build_modules(cfg, tuple(data_shape))
        G, D = mods["generator"].to(dev), mods["discriminator"].to(dev)
    else:
        G = build_network(cfg.generator.model_dump(), cfg.latent.full_shape, "generator").to(dev)
        D = build_network(cfg.discriminator.model_dump(),
                          discriminator_input_shape(cfg, data_shape), "discriminator").to(dev)
    path = Path(checkpoint) if checkpoint else ckpt.latest_checkpoint(Path(run_dir))
    step, weights, _ = ckpt.load_checkpoint(path)
    # with EMA on, samples come from the averaged generator
    g_name = "generator_ema" if cfg.objective.ema is not None else "generator"
    ckpt.load_module_weights(G, weights, g_name, path)
    ckpt.load_module_weights(D, weights, "discriminator", path)
    G.eval()
    D.eval()
    return Run(run_dir, cfg, G, D, step, tuple(data_shape), kind)
