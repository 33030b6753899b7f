"""Helpers the benchmark scripts share (run as ``python benchmarks/X.py``, so this folder is on
``sys.path`` and ``from common import ...`` finds this file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganforge.monitor.log import read_log


def parse_seeds(text: str) -> list[int]:
    """A seed list from the command line: ``0`` -> [0], ``0-2`` -> [0, 1, 2], ``0,3`` -> [0, 3],
    ``0-1,5`` -> [0, 1, 5]."""
    seeds: list[int] = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            seeds.extend(range(int(lo), int(hi) + 1))
        elif part:
            seeds.append(int(part))
    return seeds


def last_train_record(run_dir: str | Path) -> dict[str, Any]:
    """The last ``train`` line of RUN/metrics.jsonl: its ``time`` is the trainer's own clock
    (training only, not loading or scoring) and ``step`` the steps run."""
    return [r for r in read_log(Path(run_dir) / "metrics.jsonl") if r.get("kind") == "train"][-1]
