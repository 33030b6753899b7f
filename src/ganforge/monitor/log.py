"""The metric log: one JSON object per line in ``metrics.jsonl``.

Schema: every line has ``step`` (generator updates so far) and ``kind`` (``train`` for training
signals, ``eval`` for metric evaluations, ``alarm`` for health alarms). Training lines hold
``epoch``, ``time`` (seconds since start of this process), ``d_loss``, ``g_loss``, ``d_real``
and ``d_fake`` (mean D probability on real and generated batches; raw critic values for
losses without probabilities) and ``images_per_s``; the MonitorCallback adds the health
signals (``logit_gap``, ``g_grad_norm``, ``d_grad_norm``, ``diversity*``, ``lr_*``,
``wasserstein``). Eval lines hold metric values and a ``protocol`` dict; alarm lines hold
``alarm``, ``title`` and ``message``. Full schema: docs/monitor.md.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ganforge.fileio import atomic_write_text


class MetricLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                 for k, v in record.items()}
        with self.path.open("a") as f:
            f.write(json.dumps(clean) + "\n")

    def read(self) -> list[dict[str, Any]]:
        return read_log(self.path)

    def read_from(self, offset: int) -> tuple[list[dict[str, Any]], int]:
        """The complete lines written after byte ``offset`` and the offset after them, so a
        reader that polls the log reads each line once. A log rewritten shorter than
        ``offset`` (truncated on resume or rollback) yields nothing and its current end."""
        if not self.path.exists():
            return [], 0
        with self.path.open("rb") as f:
            f.seek(0, 2)
            end = f.tell()
            if end < offset:
                return [], end
            f.seek(offset)
            data = f.read()
        complete = data[:data.rfind(b"\n") + 1]  # a line being written is read next time
        return _parse(complete.decode()), offset + len(complete)

    def truncate_after(self, step: int) -> None:
        """Drop lines logged after ``step`` (used on resume, so the log has no duplicates)."""
        if not self.path.exists():
            return
        keep = [r for r in self.read() if int(r.get("step", 0)) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))


def read_log(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    return _parse(path.read_text())


def _parse(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn last line after a crash
    return out
