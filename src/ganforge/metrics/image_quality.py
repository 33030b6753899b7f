"""Full-reference image quality: PSNR, SSIM and L1 of outputs against ground truth.

Inputs are (N, C, H, W) tensors; ``data_range`` is the span of the pixel scale (2 for images in
[-1, 1], 1 for [0, 1], 255 for uint8 values). Each function returns one value per image
(``reduction="none"``) or their mean.

SSIM follows Wang et al. 2004 as in scikit-image's ``structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``: an 11x11 Gaussian window
(sigma 1.5), K1 = 0.01, K2 = 0.03, averaged over the positions where the window fits inside the
image and over channels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _check(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"expected two (N, C, H, W) tensors of the same shape, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    return x.double(), y.double()


def _reduce(v: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return v
    if reduction == "mean":
        return v.mean()
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def l1(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean absolute difference per image, in the inputs' units."""
    x, y = _check(x, y)
    return _reduce((x - y).abs().flatten(1).mean(1), reduction)


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0,
         reduction: str = "mean") -> torch.Tensor:
    """10 log10(data_range^2 / MSE) per image (inf for identical images), in dB."""
    x, y = _check(x, y)
    mse = (x - y).pow(2).flatten(1).mean(1)
    return _reduce(10 * torch.log10(data_range ** 2 / mse), reduction)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0, sigma: float = 1.5,
         reduction: str = "mean") -> torch.Tensor:
    """Mean structural similarity per image (Gaussian window, valid positions only)."""
    x, y = _check(x, y)
    size = 2 * int(3.5 * sigma + 0.5) + 1  # scikit-image's truncate=3.5 -> 11 for sigma 1.5
    if min(x.shape[-2:]) < size:
        raise ValueError(f"SSIM with sigma {sigma} needs images of at least {size}x{size}")
    c = x.shape[1]
    w = gaussian_window(size, sigma).to(x)[None, None].expand(c, 1, size, size)

    def filt(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=c)

    mx, my = filt(x), filt(y)
    vx = filt(x * x) - mx * mx
    vy = filt(y * y) - my * my
    cxy = filt(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return _reduce(s.flatten(1).mean(1), reduction)


def quality_table(output: torch.Tensor, target: torch.Tensor,
                  data_range: float = 2.0) -> dict[str, float]:
    """{'psnr', 'ssim', 'l1'} means; L1 is reported on a [0, 1] pixel scale."""
    return {"psnr": float(psnr(output, target, data_range)),
            "ssim": float(ssim(output, target, data_range)),
            "l1": float(l1(output, target)) / data_range}


def psnr_from_mse(mse: float, data_range: float = 2.0) -> float:
    return 10 * math.log10(data_range ** 2 / mse)
