"""TensorBoard event files (optional: ``pip install ganforge[tensorboard]``).

Scalars of every train/eval record, the sample grids, histograms of D's outputs on real and
generated data, and alarms as text. Events go to ``RUN/tensorboard/``.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

SKIP_KEYS = ("step", "kind", "epoch", "time")


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class TensorBoardWriter:
    def __init__(self, log_dir: str | Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def scalars(self, prefix: str, record: dict[str, Any], step: int) -> int:
        """Write every finite numeric key of ``record`` as ``prefix/key``; returns how many."""
        n = 0
        for k, v in record.items():
            if k in SKIP_KEYS or isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if math.isfinite(v):
                self.writer.add_scalar(f"{prefix}/{k}", float(v), step)
                n += 1
        return n

    def image(self, tag: str, picture: np.ndarray, step: int) -> None:
        """``picture``: (H, W) or (H, W, 3) uint8."""
        if picture.ndim == 2:
            picture = picture[..., None]
        self.writer.add_image(tag, picture, step, dataformats="HWC")

    def histogram(self, tag: str, values: torch.Tensor, step: int) -> None:
        values = values.detach().float().cpu().reshape(-1)
        values = values[torch.isfinite(values)]
        if values.numel():
            self.writer.add_histogram(tag, values, step)

    def text(self, tag: str, text: str, step: int) -> None:
        self.writer.add_text(tag, text, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
