"""Sample pictures: image grids and 2-D scatter plots, written with Pillow (no torchvision)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2,
               scale: int = 1) -> Image.Image:
    """Tile (N, C, H, W) images in [-1, 1] into one picture, ``nrow`` images per row."""
    arr = to_uint8(images)
    n, h, w, c = arr.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    canvas = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        y0, x0 = pad + r * (h + pad), pad + q * (w + pad)
        canvas[y0:y0 + h, x0:x0 + w] = arr[i]
    img = Image.fromarray(canvas[..., 0] if c == 1 else canvas, mode="L" if c == 1 else "RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def scatter_2d(points: torch.Tensor, reference: torch.Tensor | None = None, size: int = 320,
               bounds: tuple[float, float] | None = None) -> Image.Image:
    """Scatter of 2-D samples (black) over reference points (light blue)."""
    pts = points.detach().float().cpu().numpy()
    allp = pts if reference is None else np.concatenate([pts, reference.cpu().numpy()])
    if bounds is None:
        lim = float(np.nanmax(np.abs(allp[np.isfinite(allp).all(1)]))) if len(allp) else 1.0
        bounds = (-lim * 1.15 - 1e-6, lim * 1.15 + 1e-6)
    lo, hi = bounds
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)

    def px(p: np.ndarray) -> tuple[float, float]:
        return ((p[0] - lo) / (hi - lo) * (size - 1), (hi - p[1]) / (hi - lo) * (size - 1))

    if reference is not None:
        for p in reference.cpu().numpy():
            x, y = px(p)
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=(150, 190, 255))
    for p in pts:
        if np.isfinite(p).all():
            x, y = px(p)
            draw.point((x, y), fill=(0, 0, 0))
    return img


def save_samples_picture(samples: torch.Tensor, path: str | Path, kind: str,
                         reference: torch.Tensor | None = None) -> Path:
    """Write the picture that suits the data kind: an image grid or a 2-D scatter."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "image":
        image_grid(samples, scale=2 if samples.shape[-1] <= 32 else 1).save(path)
    elif samples.ndim == 2 and samples.shape[1] == 2:
        scatter_2d(samples, reference).save(path)
    else:
        # Any other shape: show the values as a heat-map image, one row per sample.
        flat = samples.detach().float().cpu().reshape(samples.shape[0], -1)
        lo, hi = flat.min(), flat.max()
        norm = (flat - lo) / (hi - lo + 1e-12) * 2 - 1
        image_grid(norm.reshape(1, 1, *norm.shape), scale=4).save(path)
    return path
