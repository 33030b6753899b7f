"""Text-image agreement: does a generated image show what its caption asked for?

- ``digit_acc``: the ``mnist`` classifier's accuracy on the digit the caption names (chance
  10%);
- ``thickness_agree``, ``slant_agree``, ``size_agree``: the fraction of images whose measured
  bin (``ganforge.data.captions.measure_bins``, against the asked digit's terciles) equals the
  bin the caption asked for (chance about 1/3 each); size only over the captions that state
  it (``attrs["size_stated"]``, first caption per image);
- ``fid``: FID between the generated images and real images in the ``mnist`` extractor's
  128-d feature space (not comparable with Inception FIDs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ganforge.data.captions import ATTRIBUTES, CaptionBins, measure_bins
from ganforge.errors import DataError
from ganforge.metrics.features import get_extractor
from ganforge.metrics.scores import fid


def agreement(images: torch.Tensor, attrs: dict[str, np.ndarray],
              bins: CaptionBins | None = None, classifier: Any = "mnist") -> dict[str, float]:
    """Digit accuracy and per-attribute bin agreement of images made for captions with
    attributes ``attrs`` (``digit``, ``thickness``, ``slant``, ``size``; one per image)."""
    digits = np.asarray(attrs["digit"], dtype=np.int64)
    if len(digits) != images.shape[0]:
        raise DataError(f"{images.shape[0]} images for {len(digits)} captions; give one "
                        f"image per caption.")
    clf = get_extractor(classifier)
    pred = clf.logits(images).argmax(1).numpy()
    out = {"digit_acc": float((pred == digits).mean())}
    got = measure_bins(images, digits, bins)
    for a in ATTRIBUTES:
        hit = got[a] == np.asarray(attrs[a])
        if a == "size" and "size_stated" in attrs:  # captions that leave the size out
            stated = np.asarray(attrs["size_stated"]).reshape(len(digits), -1)[:, 0]
            hit = hit[stated]
        out[f"{a}_agree"] = float(hit.mean()) if hit.size else float("nan")
    return out


def text_image_scores(images: torch.Tensor, attrs: dict[str, np.ndarray],
                      real: torch.Tensor | None = None, bins: CaptionBins | None = None,
                      extractor: Any = "mnist") -> dict[str, float]:
    """``agreement`` plus FID against ``real`` images (when given)."""
    out = agreement(images, attrs, bins, extractor)
    if real is not None:
        out["fid"] = float(fid(real, images, extractor))
    return out


__all__ = ["agreement", "text_image_scores"]
