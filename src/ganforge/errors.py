"""Errors a user can cause. The CLI prints their message (no traceback) and exits with the
error class's ``exit_code``:

====  ========================================================================================
0     success
1     the run failed (``RunFailed``: it diverged, a tuning worker or a process of a distributed
      run stopped)
2     usage: a command-line option, a config, an override, a spec or an output path is wrong
3     data: a dataset cannot be found or read, or does not fit the model (``DataError``)
4     checkpoint: a run directory or checkpoint is missing, corrupt or does not match the model
      (``CheckpointError``)
130   interrupted (SIGINT; 143 for SIGTERM): a checkpoint was written, ``--resume`` continues
====  ========================================================================================
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DATA = 3
EXIT_CHECKPOINT = 4


class GanforgeError(Exception):
    """Base class: the message says what is wrong and how to fix it. Errors raised as this base
    class are usage errors (a bad option value or output path): exit status 2."""

    exit_code: int = EXIT_USAGE


class SpecError(GanforgeError):
    """An architecture spec is invalid (unknown layer, bad argument, shape mismatch)."""


class ConfigError(GanforgeError):
    """A run config, preset name or override is invalid."""


class DataError(GanforgeError):
    """A dataset cannot be found or read, or does not fit the model."""

    exit_code = EXIT_DATA


class CheckpointError(GanforgeError):
    """A checkpoint or run directory is missing, corrupt or does not match the model."""

    exit_code = EXIT_CHECKPOINT


class RunFailed(GanforgeError):
    """The input was fine but the work failed (a run diverged, a worker stopped)."""

    exit_code = EXIT_FAILED


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' Did you mean ...?' hint, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""
