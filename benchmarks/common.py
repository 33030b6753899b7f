"""Helpers the benchmark scripts share (run as ``python benchmarks/X.py``, so this folder is on
``sys.path`` and ``from common import ...`` finds this file)."""

from __future__ import annotations


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
