"""Progress display shared by training, evaluation and sampling: a tqdm bar on a terminal,
one line per 5% otherwise (logs, CI, a pipe), nothing with ``TQDM_DISABLE=1``."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


class Progress:
    """The progress display: a redrawn tqdm bar on a terminal; when stdout or stderr is not a
    terminal (a log file, CI), one stderr line per 5% of the run instead."""

    def __init__(self, enabled: bool, total: int, initial: int, name: str,
                 unit: str = "step") -> None:
        quiet = os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
        tty = sys.stdout.isatty() and sys.stderr.isatty()
        self.lines = enabled and not quiet and not tty
        self.total, self.n, self.name = total, initial, name
        self.every = max(1, total // 20)
        self._bucket = initial // self.every
        self.postfix: dict[str, str] = {}
        self.bar = tqdm(total=total, initial=initial, disable=not enabled or self.lines,
                        desc=name, unit=unit, dynamic_ncols=True)
        self.unit = unit

    def update(self, k: int = 1) -> None:
        self.bar.update(k)
        self.n += k
        bucket = self.n // self.every  # updates of k > 1 (samples) cross a 5% mark or not
        if self.lines and (bucket > self._bucket or self.n == self.total):
            self._bucket = bucket
            stats = "".join(f" {k}={v}" for k, v in self.postfix.items())
            sys.stderr.write(f"{self.name}: {self.unit} {self.n}/{self.total} "
                             f"({100 * self.n // max(1, self.total)}%){stats}\n")
            sys.stderr.flush()

    def set_postfix(self, values: dict[str, str], refresh: bool = False) -> None:
        self.postfix = dict(values)
        self.bar.set_postfix(values, refresh=refresh)

    def reset_to(self, n: int) -> None:
        self.n = n
        self.bar.n = n

    def close(self) -> None:
        self.bar.close()


__all__ = ["Progress"]
