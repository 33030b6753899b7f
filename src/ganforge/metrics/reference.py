"""Reference features of real data, cached on disk.

The cache key is a SHA-256 of (dataset, split, dataset options, number of samples, subsample
seed, extractor name, extractor weights' sha256, preprocessing, cache format). Changing any of
them (new weights, a new resize filter) gives a new file, so a stale statistic is never reused.
Files are ``.npz`` (loaded with ``allow_pickle=False``) written atomically; a corrupt file is
recomputed. The directory is ``$GANFORGE_CACHE/reference`` (default
``~/.cache/ganforge/reference``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.data import load_dataset
from ganforge.data.registry import cache_dir as root_cache
from ganforge.errors import DataError
from ganforge.fileio import atomic_path
from ganforge.metrics.features import Extractor, get_extractor

CACHE_FORMAT = 1


def cache_dir(override: str | Path | None = None) -> Path:
    if override is not None:
        return Path(override)

    return root_cache() / "reference"


def subsample(x: torch.Tensor, n: int | None, seed: int) -> torch.Tensor:
    """The first ``n`` of a seeded permutation (all of x when n is None or >= len(x))."""
    if n is None or n >= x.shape[0]:
        return x
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    return x.index_select(0, idx.to(x.device))


def reference_key(meta: dict[str, Any]) -> str:
    text = json.dumps(meta, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def real_features(source: str, split: str, extractor: Any, n: int | None = None, seed: int = 0,
                  options: dict[str, Any] | None = None, cache: str | Path | None | bool = None,
                  data: torch.Tensor | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """(features float32 (n, D), protocol meta) of real data, from the cache when present.

    ``data`` may hold the already-loaded samples of (source, split, options); otherwise the
    dataset is loaded through the registry. ``cache=False`` disables the disk cache.
    """
    ext: Extractor = get_extractor(extractor)
    meta = {"dataset": source, "split": split, "options": options or {}, "n": n,
            "seed": seed, **ext.describe(), "format": CACHE_FORMAT}
    path = None
    if cache is not False:
        path = cache_dir(None if cache is True else cache) / f"{reference_key(meta)}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    feats = z["features"]
                    stored = json.loads(str(z["meta"]))
                if stored == json.loads(json.dumps(meta, default=str)):
                    return feats, {**meta, "n": len(feats), "cached": True}
            except (OSError, ValueError, KeyError, json.JSONDecodeError):
                pass  # unreadable or foreign file: recompute and overwrite
    if data is None:
        data = load_dataset(source, split=split, **(options or {})).x
    x = subsample(data, n, seed)
    if x.shape[0] < 2:
        raise DataError(f"the real data '{source}' ({split}) has {x.shape[0]} samples; metrics "
                        f"need at least 2.")
    feats = ext.features(x.cpu()).numpy().astype(np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, features=feats, meta=np.array(json.dumps(meta, default=str)))
    return feats, {**meta, "n": len(feats), "cached": False}
