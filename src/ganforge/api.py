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

from ganforge import checkpoint as ckpt
from ganforge import config as _config
from ganforge.config import RunConfig
from ganforge.errors import CheckpointError, GanforgeError
from ganforge.run import Run, read_run_config, user_networks
from ganforge.tasks import check_config, task_class
from ganforge.training.trainer import Trainer


def load_config(source: str | Path | dict[str, Any], overrides: list[str] | None = None
                ) -> RunConfig:
    """A preset name, YAML path or dict (with ``key=value`` overrides) as a RunConfig,
    validated by the schema and by its task's checks (shapes, objective compatibility)."""
    cfg = _config.load_config(source, overrides)
    check_config(cfg)
    return cfg


def default_run_dir(cfg: RunConfig) -> Path:
    return Path("runs") / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(config: str | Path | dict[str, Any] | RunConfig | None = None, *,
          overrides: list[str] | None = None, run_dir: str | Path | None = None,
          resume: str | Path | None = None, callbacks: Any = ()) -> Run:
    """Train from a preset name, YAML path, dict or RunConfig; or resume a run directory.

    ``resume="auto"`` with ``run_dir``: continue that run if it has a checkpoint that verifies,
    else start it (the same call can be repeated after a crash)."""
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
        trainer = Trainer(cfg, run_dir or default_run_dir(cfg), callbacks=callbacks)
    trainer.fit()
    return trainer.task.trained_run(trainer)


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
    """Load a run's networks from its latest (or a given) checkpoint, as its task's run class."""
    cfg = read_run_config(run_dir)
    users = user_networks(run_dir)
    if users:
        raise CheckpointError(f"'{run_dir}' was trained with your own "
                              f"{' and '.join(users)} ({', '.join(users.values())}): load it "
                              f"from Python with fresh instances, ganforge.GAN.load(path, "
                              f"{next(iter(users))}=MyNet(...)), then .sample() / .evaluate().")
    return task_class(cfg.task).load_run(run_dir, cfg, device, checkpoint)


__all__ = ["Run", "load", "load_config", "read_run_config", "resolve_auto_resume", "train"]
