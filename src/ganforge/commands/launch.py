"""``ganforge train --nproc N``: check the config once, then start torchrun with N processes
running the same ``ganforge train`` command (without ``--nproc``)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from ganforge import api
from ganforge.errors import GanforgeError
from ganforge.training.distributed import launched

SKIP = {"nproc", "func", "train_parser", "command"}


def rebuild_argv(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The ``train`` arguments that produce ``args`` (all but ``--nproc``), from the parser's
    own actions, so options added to ``train`` later are passed on too."""
    positional: list[str] = []
    options: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.dest in SKIP:
            continue
        value = getattr(args, action.dest, None)
        if not action.option_strings:
            if value is not None:
                positional.append(str(value))
            continue
        if value is None or value == action.default:
            continue
        flag = action.option_strings[-1]
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            options.append(flag)
        elif isinstance(action, argparse._AppendAction):
            for v in value:
                options += [flag, str(v)]
        else:
            options += [flag, str(value)]
    return positional + options


def _checked_config(args: argparse.Namespace) -> Any:
    """The run's config, validated here so a bad one fails before any process starts."""
    if args.config is not None:
        return api.load_config(args.config, list(args.overrides))
    if args.resume not in (None, "auto"):
        return api.read_run_config(args.resume, list(args.overrides))
    raise GanforgeError("give a preset name or YAML config to train, or --resume RUN_DIR.")


def launch_train(args: argparse.Namespace,
                 train_here: Callable[[argparse.Namespace], int]) -> int:
    """``ganforge train --nproc N``: check the config, then run ``train_here(args)`` in this
    process (N = 1) or torchrun with N processes of the same command."""

    n = int(args.nproc)
    if n < 1:
        raise GanforgeError(f"--nproc must be >= 1, got {n}.")
    if launched():
        raise GanforgeError("--nproc starts torchrun itself; inside a torchrun launch leave it "
                            "out (torchrun's --nproc-per-node sets the number of processes).")
    cfg = _checked_config(args)
    if cfg.train.batch_size % n:
        raise GanforgeError(
            f"train.batch_size {cfg.train.batch_size} is the global batch and must split evenly "
            f"over {n} processes. Use a multiple of {n} (--set train.batch_size=...) or "
            f"another --nproc.")
    if args.run_dir is None and args.resume is None:
        args.run_dir = str(api.default_run_dir(cfg))  # one directory for all ranks
    if n == 1:
        args.nproc = None
        return train_here(args)
    argv = rebuild_argv(args.train_parser, args)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={n}", "-m", "ganforge", "train", *argv]
    proc = subprocess.Popen(cmd)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # torchrun forwards the signal; wait for the checkpoint
            continue
