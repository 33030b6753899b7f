"""Errors a user can cause. The CLI prints their message (no traceback) and exits non-zero."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GanforgeError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class SpecError(GanforgeError):
    """An architecture spec is invalid (unknown layer, bad argument, shape mismatch)."""


class ConfigError(GanforgeError):
    """A run config, preset name or override is invalid."""


class DataError(GanforgeError):
    """A dataset cannot be found or read, or does not fit the model."""


class CheckpointError(GanforgeError):
    """A checkpoint or run directory is missing, corrupt or does not match the model."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' Did you mean ...?' hint, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""
