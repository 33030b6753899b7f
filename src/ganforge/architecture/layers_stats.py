"""Discriminator layers that look across the batch, plus maxout.

- ``minibatch_discrimination`` (Salimans et al. 2016): on a vector f (A features), M = f T with
  T of shape (A, kernels, dim); for each kernel b, o_b(x_i) = sum_{j != i} exp(-||M_i,b -
  M_j,b||_1); the output is [f, o] (A + kernels features).
- ``minibatch_stddev`` (Karras et al. 2018): split the batch into groups of ``group_size``,
  take the standard deviation of every feature over each group, average it over all features
  (and pixels) and append it as one extra constant channel (images) or feature (vectors).
- ``maxout`` (Goodfellow et al. 2013): a dense layer with ``units * pieces`` outputs followed by
  the max over each unit's ``pieces`` (PacGAN's 2-D discriminator uses 5 pieces).
- ``dense_concat`` (CTGAN's generator block): dense + batch_norm + relu, concatenated with
  the input.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.architecture.layers import Shape, ShapeError, _need, register_layer


# ------------------------------------------------------------------ minibatch discrimination
class MinibatchDiscrimination(nn.Module):
    def __init__(self, in_features: int, kernels: int, dim: int) -> None:
        super().__init__()
        self.kernels, self.dim = kernels, dim
        self.weight = nn.Parameter(torch.randn(in_features, kernels * dim) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = (x @ self.weight).view(-1, self.kernels, self.dim)  # (N, B, C)
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(3)  # (N, N, B)
        o = torch.exp(-l1).sum(1) - 1.0  # drop j == i, where exp(-0) = 1
        return torch.cat([x, o], dim=1)

    def extra_repr(self) -> str:
        return f"kernels={self.kernels}, dim={self.dim}"


@register_layer("minibatch_discrimination", {"kernels": 100, "dim": 5}, weighted=True,
                doc="Salimans et al.'s minibatch features appended to a vector (A -> A+kernels)")
def _mbd(shape: Shape, a: dict[str, Any]) -> Shape:
    _need(shape, 1, "a vector (F); add flatten before it")
    if int(a["kernels"]) < 1 or int(a["dim"]) < 1:
        raise ShapeError("kernels and dim must be >= 1")
    return (shape[0] + int(a["kernels"]),)


@_mbd.builder
def _mbd_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    return MinibatchDiscrimination(shape[0], int(a["kernels"]), int(a["dim"]))


# ------------------------------------------------------------------------ minibatch stddev
class MinibatchStddev(nn.Module):
    def __init__(self, group_size: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.group_size, self.eps = group_size, eps

    def group_for(self, n: int) -> int:
        """The largest group size <= group_size that divides the batch."""
        g = min(self.group_size, n)
        while n % g:
            g -= 1
        return g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        g = self.group_for(n)
        y = x.reshape(g, n // g, *x.shape[1:])  # sample i goes to group i % (n // g)
        std = (y.var(dim=0, unbiased=False) + self.eps).sqrt()  # (n/g, ...)
        s = std.flatten(1).mean(1)  # (n/g,)
        s = s.repeat(g)  # back to per-sample: sample i gets s[i % (n // g)]
        extra = s.view(n, *([1] * (x.dim() - 1))).expand(n, 1, *x.shape[2:])
        return torch.cat([x, extra], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}"


@register_layer("minibatch_stddev", {"group_size": 4},
                doc="Karras et al.'s batch std appended as one channel (C -> C+1) or feature")
def _mbstd(shape: Shape, a: dict[str, Any]) -> Shape:
    _need(shape, (1, 3), "a vector (F) or an image (C, H, W)")
    if int(a["group_size"]) < 1:
        raise ShapeError("group_size must be >= 1")
    return (shape[0] + 1, *shape[1:])


@_mbstd.builder
def _mbstd_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    return MinibatchStddev(int(a["group_size"]))


# ---------------------------------------------------------------------------------- maxout
class Maxout(nn.Linear):
    """Linear to units*pieces outputs, then the max over each unit's pieces."""

    def __init__(self, in_features: int, units: int, pieces: int, bias: bool = True) -> None:
        super().__init__(in_features, units * pieces, bias=bias)
        self.units, self.pieces = units, pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return y.view(*y.shape[:-1], self.units, self.pieces).amax(-1)


@register_layer("maxout", {"units": None, "pieces": 5, "bias": True}, required=("units",),
                weighted=True, doc="dense layer of units*pieces outputs, max over the pieces")
def _maxout(shape: Shape, a: dict[str, Any]) -> Shape:
    _need(shape, (1, 2), "a vector (F) or sequence (T, F)")
    if int(a["units"]) < 1 or int(a["pieces"]) < 1:
        raise ShapeError("units and pieces must be >= 1")
    return (*shape[:-1], int(a["units"]))


@_maxout.builder
def _maxout_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    return Maxout(shape[-1], int(a["units"]), int(a["pieces"]), bool(a["bias"]))


# ------------------------------------------------------------------- the residual block
@register_layer("dense_concat", {"units": None}, required=("units",),
                doc="CTGAN's generator block: dense + batch_norm + relu, output concatenated "
                    "with the input (F -> F + units)")
def _dense_concat(shape: Shape, a: dict[str, Any]) -> Shape:
    if len(shape) != 1:
        raise ShapeError(f"needs a vector (F) input, got shape {'x'.join(map(str, shape))}")
    if int(a["units"]) < 1:
        raise ShapeError("units must be >= 1")
    return (shape[0] + int(a["units"]),)


class DenseConcat(nn.Module):
    def __init__(self, in_features: int, units: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, units)
        self.bn = nn.BatchNorm1d(units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


@_dense_concat.builder
def _dense_concat_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    return DenseConcat(shape[0], int(a["units"]))


# ------------------------------------------------------------------ who looks across the batch
def couples_samples(module: nn.Module) -> bool:
    """True when one sample's output depends on the others in its batch: batch norm in
    training mode or a minibatch layer anywhere inside ``module``. A network without such a
    layer gives the same outputs for a concatenation of batches as for each batch alone, so
    a task may run it once on ``torch.cat`` of several batches (fewer, larger calls)."""
    return any((isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training)
               or isinstance(m, (MinibatchDiscrimination, MinibatchStddev))
               for m in module.modules())
