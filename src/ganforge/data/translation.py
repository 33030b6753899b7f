"""Datasets for image-to-image translation.

- ``unpaired`` (CycleGAN): ``options: {a: SOURCE, b: SOURCE, image_size: [C, H, W]}``; ``x`` is
  domain b, ``info["a"]`` domain a (any sources: bundled names, ``folder:PATH``, ``npy:PATH``),
  both resized to ``image_size``. Bundled demo: ``a: digits`` (scikit-learn's 8x8 digits,
  upscaled) and ``b: mnist``.
- ``paired`` (pix2pix): ``options: {a: DIR, b: DIR, image_size: [C, H, W], a_channels: C}``;
  files are paired by their path relative to each folder; ``x`` stacks ``[a, b]`` on channels.
- ``mnist-inpaint``: a = the MNIST digit with a random ``mask`` x ``mask`` square set to grey
  (0), b = the digit; ``mnist-sr2x``: a = the digit averaged down to 14x14 then bicubic-upscaled
  back to 28x28 (so the generator keeps H and W), b = the digit. Both keep the labels in ``y``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ganforge.data.base import TensorData
from ganforge.data.registry import IMAGE_SUFFIXES, load_dataset, register_dataset
from ganforge.errors import DataError


def fit_images(x: torch.Tensor, image_size: tuple[int, ...] | None) -> torch.Tensor:
    """Resize (N, C, H, W) images in [-1, 1] to ``image_size`` (bicubic, antialiased when
    shrinking) and convert 1 <-> 3 channels."""
    if image_size is None:
        return x
    c, h, w = (int(v) for v in image_size)
    if x.shape[1] != c:
        if x.shape[1] == 1 and c == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 3 and c == 1:
            x = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        else:
            raise DataError(f"cannot convert {x.shape[1]}-channel images to {c} channels; "
                            f"use image_size with 1 or 3 channels.")
    if tuple(x.shape[-2:]) != (h, w):
        shrink = h < x.shape[-2] or w < x.shape[-1]
        x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False,
                          antialias=shrink).clamp(-1, 1)
    return x.contiguous()


def _load_domain(source: Any, split: str, image_size: tuple[int, ...] | None,
                 which: str) -> TensorData:
    if not isinstance(source, str) or not source:
        raise DataError(f"data.options.{which} must name a dataset (e.g. mnist, digits, "
                        f"folder:PATH), got {source!r}.")
    try:
        d = load_dataset(source, split=split, image_size=image_size)
    except TypeError:  # bundled sets with a fixed size (mnist) take no image_size
        d = load_dataset(source, split=split)
    if d.kind != "image" or d.x.ndim != 4:
        raise DataError(f"domain {which} ('{source}') is not a set of images "
                        f"(shape {list(d.shape)}).")
    d.x = fit_images(d.x, image_size)
    return d


@register_dataset("unpaired")
def unpaired(split: str = "train", a: Any = None, b: Any = None,
             image_size: tuple[int, ...] | None = None) -> TensorData:
    """Two unpaired image domains: ``x`` = b, ``info['a']`` = a (labels in y / info['a_y'])."""
    if a is None or b is None:
        raise DataError("unpaired data needs both domains: data.options: {a: SOURCE, b: SOURCE} "
                        "(e.g. a: digits, b: mnist, or folder:PATH for your own images).")
    da = _load_domain(a, split, image_size, "a")
    db = _load_domain(b, split, image_size, "b")
    return TensorData(name=f"unpaired:{a}->{b}", x=db.x, y=db.y, kind="image", split=split,
                      num_classes=db.num_classes,
                      info={"a": da.x, "a_y": da.y, "a_name": a, "b_name": b})


def _read_folder(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        raise DataError(f"image folder '{root}' does not exist or is not a directory.")
    return {str(p.relative_to(root).with_suffix("")): p for p in sorted(root.rglob("*"))
            if p.suffix.lower() in IMAGE_SUFFIXES}


def read_image(path: Path, channels: int) -> torch.Tensor:
    """One image file -> (C, H, W) float in [-1, 1] at its own size."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"cannot read image '{path}': {exc}. Remove or fix the file.") from None
    t = torch.from_numpy(arr.copy()).float() / 127.5 - 1.0
    return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)


@register_dataset("paired")
def paired(split: str = "all", a: Any = None, b: Any = None,
           image_size: tuple[int, ...] | None = None, a_channels: int | None = None
           ) -> TensorData:
    """Image pairs from two folders matched by relative path (without extension)."""
    if not isinstance(a, str) or not isinstance(b, str):
        raise DataError("paired data needs two folders: data.options: {a: DIR_OF_INPUTS, "
                        "b: DIR_OF_TARGETS, image_size: [C, H, W]}; files pair up by name.")
    if image_size is None:
        raise DataError("paired data needs data.options.image_size: [C, H, W] (the target b "
                        "images; inputs get the same H and W).")
    c, h, w = (int(v) for v in image_size)
    ca = int(a_channels or c)
    fa, fb = _read_folder(Path(a).expanduser()), _read_folder(Path(b).expanduser())
    names = sorted(set(fa) & set(fb))
    if not names:
        raise DataError(f"no file names in '{a}' match one in '{b}' (pairs match by name, "
                        f"e.g. a/001.png with b/001.png); {len(fa)} and {len(fb)} images found.")
    xa = torch.stack([fit_images(read_image(fa[n], ca)[None], (ca, h, w))[0] for n in names])
    xb = torch.stack([fit_images(read_image(fb[n], c)[None], (c, h, w))[0] for n in names])
    return TensorData(name=f"paired:{a}|{b}", x=torch.cat([xa, xb], dim=1), kind="image",
                      split=split, info={"a_channels": ca, "files": names,
                                         "unmatched": len(fa) + len(fb) - 2 * len(names)})


# ------------------------------------------------------------------ MNIST paired demos
def mask_squares(x: torch.Tensor, size: int, seed: int, fill: float = 0.0) -> torch.Tensor:
    """Each image with one ``size`` x ``size`` square, placed at random (seeded) over the
    central part where the digits are, set to ``fill``."""
    n, _, h, w = x.shape
    if not 1 <= size <= min(h, w) - 8:
        raise DataError(f"mask must be between 1 and {min(h, w) - 8} pixels, got {size}.")
    g = torch.Generator().manual_seed(seed)
    top = torch.randint(4, h - 4 - size + 1, (n,), generator=g)
    left = torch.randint(4, w - 4 - size + 1, (n,), generator=g)
    rows = torch.arange(h)[None, :, None]
    cols = torch.arange(w)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < top[:, None, None] + size) &
              (cols >= left[:, None, None]) & (cols < left[:, None, None] + size))
    out = x.clone()
    out[inside[:, None].expand_as(x)] = fill
    return out


def downscale_upscale(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Average ``factor`` x ``factor`` blocks (the low-resolution image), then bicubic back to
    the original size: the input of the super-resolution task and its bicubic baseline."""
    low = F.avg_pool2d(x, factor)
    return F.interpolate(low, size=x.shape[-2:], mode="bicubic", align_corners=False).clamp(-1, 1)


_SPLIT_SEED = {"train": 0, "test": 1, "all": 2}


@register_dataset("mnist-inpaint")
def mnist_inpaint(split: str = "train", mask: int = 12) -> TensorData:
    """MNIST pairs [digit with a grey mask x mask square, digit] stacked on channels."""
    m = load_dataset("mnist", split=split)
    a = mask_squares(m.x, int(mask), seed=1000 + _SPLIT_SEED[split])
    return TensorData(name="mnist-inpaint", x=torch.cat([a, m.x], dim=1), y=m.y, kind="image",
                      split=split, num_classes=10, info={"a_channels": 1, "mask": int(mask)})


@register_dataset("mnist-sr2x")
def mnist_sr2x(split: str = "train") -> TensorData:
    """MNIST pairs [14x14 average-pooled digit, bicubic-upscaled to 28x28; digit]."""
    m = load_dataset("mnist", split=split)
    return TensorData(name="mnist-sr2x", x=torch.cat([downscale_upscale(m.x, 2), m.x], dim=1),
                      y=m.y, kind="image", split=split, num_classes=10,
                      info={"a_channels": 1, "factor": 2})
