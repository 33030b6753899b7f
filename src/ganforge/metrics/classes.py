"""Classifier-based mode statistics for labelled data (MNIST, Stacked MNIST).

A pretrained classifier (the ``mnist`` extractor by default) labels every sample; a *mode* is a
predicted class. For C-channel images each channel is classified on its own and the mode is the
tuple of C digits (Stacked MNIST: 3 channels, 1,000 modes, as in VEEGAN and PacGAN). Reported:
modes covered (classes predicted at least once), KL(predicted-mode histogram || uniform) (0 for
a perfectly even spread, log(modes) when everything collapses to one mode), and the mean
classifier confidence (max softmax probability).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ganforge.errors import DataError
from ganforge.metrics.features import as_tensor, get_extractor


@dataclass
class ClassModes:
    modes: int
    total_modes: int
    kl: float  # KL(p_gen || uniform over total_modes)
    confidence: float  # mean max softmax probability
    counts: list[int]  # per mode (only when total_modes <= 1000)
    n_samples: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def histogram_stats(labels: np.ndarray, total_modes: int) -> tuple[int, float, np.ndarray]:
    """(modes covered, KL(p || uniform), counts) of integer labels in [0, total_modes)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=total_modes)
    p = counts / max(counts.sum(), 1)
    nz = p > 0
    kl = float((p[nz] * np.log(p[nz] * total_modes)).sum())
    return int(nz.sum()), kl, counts


def class_modes(samples: Any, extractor: Any = "mnist", num_classes: int | None = None
                ) -> ClassModes:
    """Mode statistics of generated images by a classifier's predictions.

    ``samples``: images (N, C, H, W) or (N, H, W). With ``extractor=None`` the input is taken as
    logits (N, classes) or (N, C, classes) for C channels.
    """
    if extractor is None:
        logits = torch.as_tensor(np.asarray(samples) if not isinstance(samples, torch.Tensor)
                                 else samples).detach().cpu().double()
        if logits.ndim == 2:
            logits = logits.unsqueeze(1)
        if logits.ndim != 3:
            raise DataError(f"class_modes: logits must be (N, classes) or (N, channels, "
                            f"classes), got shape {tuple(logits.shape)}.")
    else:
        ext = get_extractor(extractor)
        x = as_tensor(samples)
        if x.ndim == 3:
            x = x.unsqueeze(1)
        if x.ndim != 4:
            raise DataError(f"class_modes takes images (N, C, H, W), got shape "
                            f"{tuple(x.shape)}. For 2-D mixtures use mode_coverage.")
        n, c = x.shape[:2]
        flat = x.reshape(n * c, 1, *x.shape[2:])
        logits = ext.logits(flat).double().reshape(n, c, -1)
    n, c, k = logits.shape
    k = int(num_classes or k)
    probs = torch.softmax(logits, dim=2)
    conf, pred = probs.max(dim=2)
    place = torch.tensor([k ** (c - 1 - j) for j in range(c)], dtype=torch.int64)
    labels = (pred.long() * place).sum(1).numpy()
    total = k ** c
    modes, kl, counts = histogram_stats(labels, total)
    return ClassModes(modes=modes, total_modes=total, kl=kl, confidence=float(conf.mean()),
                      counts=[int(v) for v in counts] if total <= 1000 else [],
                      n_samples=int(n))
