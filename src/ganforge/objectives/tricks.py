"""Stabilization tricks as small pure functions and classes.

- ``smoothed_targets``: D's real/fake targets under none / one-sided / two-sided smoothing
  (Salimans et al. 2016: one-sided, real target 0.9).
- ``instance_noise_std``: Gaussian noise std on D's inputs, annealed linearly to 0
  (Sønderby et al. 2017; Arjovsky & Bottou 2017); ``add_instance_noise`` applies it.
- ``feature_matching_loss``: ||E f(x) - E f(G(z))||^2 on an intermediate D layer f
  (Salimans et al. 2016).
- ``pack``: PacGAN's packing, m consecutive samples concatenated along the first data axis
  (features of vectors, channels of images) (Lin et al. 2018).
- ``mode_seeking_loss`` / ``pair_halves``: MSGAN's mode-seeking regularizer, G pays
  1 / (mean |G(z1) - G(z2)| / mean |z1 - z2| + eps) on a batch whose two halves share their
  conditions (Mao et al. 2019).
- ``top_k``: top-k training, G's loss on the generated samples D rates most real only
  (Sinha et al. 2020); ``top_k_fraction`` anneals the kept fraction.
- ``EMA``: exponential moving average of G's weights, used for sampling (Yazici et al. 2019).
- ``diff_augment``: DiffAugment's translation / cutout / color, differentiable, applied to D's
  real and fake inputs alike (Zhao et al. 2020).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from ganforge.errors import ConfigError

# ------------------------------------------------------------------------ label smoothing
SMOOTHING = ("none", "one_sided", "two_sided")


def smoothed_targets(mode: str, real: float = 0.9, fake: float = 0.1) -> tuple[float, float]:
    """(real_target, fake_target): one-sided smooths only the real target."""
    if mode == "none":
        return 1.0, 0.0
    if mode == "one_sided":
        return float(real), 0.0
    if mode == "two_sided":
        return float(real), float(fake)
    raise ConfigError(f"label smoothing must be one of {', '.join(SMOOTHING)}, got '{mode}'.")


# ------------------------------------------------------------------------- instance noise
def instance_noise_std(step: int, std: float, anneal_steps: int) -> float:
    """std * max(0, 1 - step / anneal_steps); constant std when anneal_steps is 0."""
    if std <= 0:
        return 0.0
    if anneal_steps <= 0:
        return float(std)
    return float(std) * max(0.0, 1.0 - step / anneal_steps)


def add_instance_noise(x: torch.Tensor, std: float) -> torch.Tensor:
    return x + std * torch.randn_like(x) if std > 0 else x


# ----------------------------------------------------------------------- feature matching
def feature_matching_loss(real_features: torch.Tensor,
                          fake_features: torch.Tensor) -> torch.Tensor:
    """||mean_batch f(x) - mean_batch f(G(z))||_2^2 (real features are treated as constants)."""
    diff = real_features.detach().flatten(1).mean(0) - fake_features.flatten(1).mean(0)
    return (diff ** 2).sum()


# ---------------------------------------------------------------------------- mode seeking
def pair_halves(y: torch.Tensor) -> torch.Tensor:
    """``y`` with rows h..2h-1 replaced by rows 0..h-1 (h = n // 2), so the two halves of a
    batch ask G for the same conditions (an odd last row keeps its own)."""
    h = y.shape[0] // 2
    return torch.cat([y[:h], y[:h], y[2 * h:]])


def mode_seeking_loss(fake: torch.Tensor, z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """MSGAN (Mao et al. 2019): 1 / (mean |G(z1) - G(z2)| / mean |z1 - z2| + eps), the first
    half of the batch against the second (same conditions, see ``pair_halves``). Small when
    different latents give different samples, large when G maps them to one mode."""
    h = fake.shape[0] // 2
    if h == 0:
        raise ConfigError("objective.mode_seeking needs at least 2 samples per batch; raise "
                          "train.batch_size.")
    images = (fake[:h] - fake[h:2 * h]).abs().float().mean()
    latents = (z[:h] - z[h:2 * h]).abs().float().mean()
    return 1.0 / (images / latents + eps)


# -------------------------------------------------------------------------------- packing
def top_k_fraction(step: int, final: float, anneal_steps: int) -> float:
    """Fraction of G's batch kept by top-k training at ``step``: 1 annealed linearly to
    ``final`` over ``anneal_steps`` steps (``final`` from the start when 0)."""
    if anneal_steps <= 0 or step >= anneal_steps:
        return final
    return 1.0 - (1.0 - final) * step / anneal_steps


def top_k(logits: torch.Tensor, fraction: float) -> torch.Tensor:
    """Top-k training (Sinha et al. 2020): the ``ceil(fraction * n)`` rows of D's outputs on
    generated samples that D rates most real; G's loss on them alone ignores the samples D
    already rejects, whose gradients point toward the nearest mode less reliably."""
    n = logits.shape[0]
    k = max(1, math.ceil(fraction * n))
    if k >= n:
        return logits
    flat = logits.reshape(n, -1).mean(dim=1)
    return logits[flat.topk(k).indices]


def packed_shape(data_shape: Sequence[int], m: int) -> tuple[int, ...]:
    """D's input shape under packing m: (m*F,) for vectors, (m*C, H, W) for images,
    (T, m*F) for sequences (concatenated per time step)."""
    shape = tuple(int(s) for s in data_shape)
    if m == 1:
        return shape
    if len(shape) == 2:
        return (shape[0], shape[1] * m)
    return (shape[0] * m, *shape[1:])


def pack(x: torch.Tensor, m: int) -> torch.Tensor:
    """(N, ...) -> (N/m, ...) with samples i*m .. i*m+m-1 concatenated into packed sample i."""
    if m == 1:
        return x
    n = x.shape[0]
    if n % m:
        raise ValueError(f"cannot pack a batch of {n} samples into groups of {m}")
    if x.dim() == 3:  # sequences (N, T, F): concatenate features per time step
        return x.reshape(n // m, m, *x.shape[1:]).permute(0, 2, 1, 3).reshape(
            n // m, x.shape[1], m * x.shape[2])
    return x.reshape(n // m, m * x.shape[1], *x.shape[2:])


# ------------------------------------------------------------------------------------ EMA
class EMA:
    """theta_ema <- decay * theta_ema + (1 - decay) * theta after every G update.

    Buffers (batch-norm statistics) are copied from G (``stats="copy"``), or, with
    ``stats="own"``, tracked by the EMA generator itself: after each update it runs once in
    train mode, without gradients, on the inputs G was just trained on, so its running
    statistics belong to the averaged weights (copied statistics belong to G's current weights,
    which smears the samples of a G with batch norm). ``start`` steps of plain copying let the
    average skip the random initial weights.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, start: int = 0,
                 stats: str = "copy") -> None:
        if stats not in ("copy", "own"):
            raise ValueError(f"EMA stats must be 'copy' or 'own', got {stats!r}")
        self.model = model
        self.decay = float(decay)
        self.start = int(start)
        self.stats = stats
        self.ema = copy.deepcopy(model)
        self.ema.requires_grad_(False)
        self.ema.eval()
        self._src = [p for p in model.parameters()]
        self._dst = [p for p in self.ema.parameters()]

    @torch.no_grad()
    def update(self, step: int,
               inputs: torch.Tensor | tuple[torch.Tensor, ...] | None = None) -> None:
        """Average (or, while warming up, copy) G's weights; then copy G's buffers, or with
        ``stats="own"`` and ``inputs`` given (G's input, or a tuple of its inputs such as
        ``(z, labels)``), refresh the EMA generator's own statistics."""
        warming = step <= self.start
        if warming:
            torch._foreach_copy_(self._dst, self._src)
        else:
            torch._foreach_lerp_(self._dst, self._src, 1.0 - self.decay)
        if self.stats == "own" and inputs is not None and not warming:
            self.ema.train()
            self.ema(*(inputs if isinstance(inputs, tuple) else (inputs,)))
            self.ema.eval()
            return
        for b_dst, b_src in zip(self.ema.buffers(), self.model.buffers(), strict=True):
            b_dst.copy_(b_src)


# ----------------------------------------------------------------------------- DiffAugment
AUGMENTS = ("translation", "cutout", "color")


def brightness(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """x + shift, one shift per sample (DiffAugment draws it from U(-0.5, 0.5))."""
    return x + shift.view(-1, 1, 1, 1)


def saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale each pixel's deviation from its channel mean (factor ~ U(0, 2))."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * factor.view(-1, 1, 1, 1) + mean


def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale each image's deviation from its mean (factor ~ U(0.5, 1.5))."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * factor.view(-1, 1, 1, 1) + mean


def translate(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Shift each image by integer (dy, dx) pixels with zero fill: out[i, :, r, c] =
    x[i, :, r - dy_i, c - dx_i] when inside the image, else 0."""
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h, 1) - dy.view(n, 1, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w) - dx.view(n, 1, 1)
    valid = ((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)).unsqueeze(1)
    flat = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).view(n, 1, h * w)
    out = x.flatten(2).gather(2, flat.expand(n, x.shape[1], h * w)).view_as(x)
    return out * valid.to(x.dtype)


def cutout(x: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, size: tuple[int, int]
           ) -> torch.Tensor:
    """Zero a size[0] x size[1] square whose top-left corner is (cy - size/2, cx - size/2),
    clipped to the image."""
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    top = (cy - size[0] // 2).view(n, 1, 1)
    left = (cx - size[1] // 2).view(n, 1, 1)
    inside = (rows >= top) & (rows < top + size[0]) & (cols >= left) & (cols < left + size[1])
    return x * (~inside).unsqueeze(1).to(x.dtype)


def diff_augment(x: torch.Tensor, policy: Sequence[str], translation_ratio: float = 0.125,
                 cutout_ratio: float = 0.5) -> torch.Tensor:
    """DiffAugment with the paper's defaults: color (brightness U(-.5,.5), saturation U(0,2),
    contrast U(.5,1.5)), translation up to 1/8 of the size, cutout of half the size."""
    if not policy:
        return x
    if x.dim() != 4:
        raise ValueError("DiffAugment applies to images (N, C, H, W)")
    n, _, h, w = x.shape
    dev, dt = x.device, x.dtype
    for p in policy:
        if p == "color":
            x = brightness(x, torch.rand(n, device=dev, dtype=dt) - 0.5)
            x = saturation(x, torch.rand(n, device=dev, dtype=dt) * 2)
            x = contrast(x, torch.rand(n, device=dev, dtype=dt) + 0.5)
        elif p == "translation":
            sy, sx = int(h * translation_ratio + 0.5), int(w * translation_ratio + 0.5)
            dy = torch.randint(-sy, sy + 1, (n,), device=dev)
            dx = torch.randint(-sx, sx + 1, (n,), device=dev)
            x = translate(x, dy, dx)
        elif p == "cutout":
            size = (int(h * cutout_ratio + 0.5), int(w * cutout_ratio + 0.5))
            cy = torch.randint(0, h + (1 - size[0] % 2), (n,), device=dev)
            cx = torch.randint(0, w + (1 - size[1] % 2), (n,), device=dev)
            x = cutout(x, cy, cx, size)
        else:
            raise ValueError(f"unknown DiffAugment policy '{p}'; use {', '.join(AUGMENTS)}")
    return x

