"""Image-to-image layers: ``residual`` blocks, ``reflection_pad`` and a ``unet``.

- ``residual: {layers: [...]}`` is a ResNet block ``x + body(x)``; the body is itself a list of
  layer specs, shape-checked like a network, and its output must have the input's shape.
- ``reflection_pad: {pad: 3}`` pads H and W by mirroring (CycleGAN's generator uses it before
  its 7x7 and 3x3 convolutions instead of zero padding).
- ``unet: {out_channels: 1, filters: 64, depth: 4}`` is pix2pix's U-Net: ``depth`` stride-2
  4x4 convolutions down (LeakyReLU 0.2, a norm on all but the first), the same number of
  stride-2 transposed convolutions up (ReLU, norm, dropout on the ``dropout_levels`` innermost
  ones), each decoder level concatenated with the encoder output of the same resolution (skip
  connections). Inputs whose H or W is not a multiple of 2**depth are edge-padded up to one and
  the output cropped back (28x28 MNIST runs at 32x32 inside a depth-4+ U-Net); the output is
  ``out_channels x H x W`` with no final activation (end the spec with ``tanh``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ganforge.architecture.builder import SpecNet, plan_network
from ganforge.architecture.layers import Dropout, Shape, ShapeError, _fmt, _need, register_layer
from ganforge.errors import SpecError


# ------------------------------------------------------------------------------- residual
def _body_plans(shape: Shape, a: dict[str, Any]) -> list[Any]:
    body = a["layers"]
    if not isinstance(body, list) or not body:
        raise ShapeError("layers must be a non-empty list of layer specs (the block's body)")
    try:
        return plan_network({"layers": body}, shape, "body")
    except SpecError as exc:
        raise ShapeError(str(exc).rstrip(".")) from None


@register_layer("residual", {"layers": None}, required=("layers",),
                doc="ResNet block x + body(x); body is a list of layers keeping the shape")
def _residual(shape: Shape, a: dict[str, Any]) -> Shape:
    plans = _body_plans(shape, a)
    out = plans[-1].out_shape
    if tuple(out) != tuple(shape):
        raise ShapeError(f"the body maps {_fmt(shape)} to {_fmt(out)}, but a residual block "
                         f"adds its input back, so the body must keep the shape {_fmt(shape)}")
    return shape


class Residual(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@_residual.builder
def _residual_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    return Residual(SpecNet(_body_plans(shape, a), shape, "body"))


# ------------------------------------------------------------------------- reflection_pad
@register_layer("reflection_pad", {"pad": 1}, doc="mirror-pad H and W by pad on each side")
def _reflection_pad(shape: Shape, a: dict[str, Any]) -> Shape:
    _need(shape, 3, "an image (C, H, W)")
    p = int(a["pad"])
    if p < 0:
        raise ShapeError(f"pad must be >= 0, got {p}")
    if p >= shape[1] or p >= shape[2]:
        raise ShapeError(f"reflection pad {p} needs H and W > {p}, got {_fmt(shape)}")
    return (shape[0], shape[1] + 2 * p, shape[2] + 2 * p)


@_reflection_pad.builder
def _reflection_pad_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    return nn.ReflectionPad2d(int(a["pad"]))


# ----------------------------------------------------------------------------------- unet
def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    return nn.Identity()


class UNet(nn.Module):
    """Encoder-decoder with skip connections (pix2pix, Isola et al. 2017)."""

    def __init__(self, in_channels: int, out_channels: int, filters: int, depth: int,
                 max_filters: int, norm: str, dropout: float, dropout_levels: int) -> None:
        super().__init__()
        widths = [min(filters * 2 ** i, max_filters) for i in range(depth)]
        use_bias = norm != "batch"  # a norm with a shift makes the conv bias redundant
        self.down = nn.ModuleList()
        prev = in_channels
        for i, w in enumerate(widths):
            first, last = i == 0, i == depth - 1
            layers: list[nn.Module] = [] if first else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(prev, w, 4, stride=2, padding=1, bias=use_bias or first
                                    or last))
            if not first and not last:
                layers.append(_norm(norm, w))
            self.down.append(nn.Sequential(*layers))
            prev = w
        # up[j] undoes down[depth-1-j]; its input is the previous decoder output concatenated
        # with the encoder output of the same resolution (except the innermost one).
        self.up = nn.ModuleList()
        for j in range(depth):
            level = depth - 1 - j  # encoder level this decoder step mirrors
            inner = j == 0
            outermost = level == 0
            in_ch = widths[level] if inner else 2 * widths[level]
            out_ch = out_channels if outermost else widths[level - 1]
            layers = [nn.ReLU(), nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1,
                                                    bias=use_bias or outermost)]
            if not outermost:
                layers.append(_norm(norm, out_ch))
                if dropout > 0 and 1 <= j <= dropout_levels:
                    layers.append(Dropout(dropout))
            self.up.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = 2 ** len(self.down)
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:  # edge-pad to a multiple of 2**depth, crop the output back
            x = nn.functional.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2),
                                  mode="replicate")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = self.up[0](skips.pop())
        for block in self.up[1:]:
            x = block(torch.cat([x, skips.pop()], dim=1))
        if ph or pw:
            x = x[..., ph // 2:ph // 2 + h, pw // 2:pw // 2 + w]
        return x


@register_layer("unet", {"out_channels": None, "filters": 64, "depth": 4, "max_filters": 512,
                         "norm": "batch", "dropout": 0.5, "dropout_levels": 3},
                required=("out_channels",), choices={"norm": ("batch", "instance", "none")},
                doc="pix2pix U-Net with skip connections (edge-pads H, W to a multiple of 2**depth)")
def _unet(shape: Shape, a: dict[str, Any]) -> Shape:
    _need(shape, 3, "an image (C, H, W)")
    depth = int(a["depth"])
    if depth < 1:
        raise ShapeError(f"depth must be >= 1, got {depth}")
    if int(a["filters"]) < 1 or int(a["out_channels"]) < 1 or int(a["max_filters"]) < 1:
        raise ShapeError("filters, max_filters and out_channels must be >= 1")
    if not 0.0 <= float(a["dropout"]) < 1.0:
        raise ShapeError(f"dropout must be in [0, 1), got {a['dropout']}")
    _, h, w = shape
    if 2 ** depth > 4 * max(h, w):
        raise ShapeError(f"a U-Net of depth {depth} halves H and W {depth} times, too many for "
                         f"{_fmt(shape)}; lower depth")
    return (int(a["out_channels"]), h, w)


@_unet.builder
def _unet_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    return UNet(shape[0], int(a["out_channels"]), int(a["filters"]), int(a["depth"]),
                int(a["max_filters"]), str(a["norm"]), float(a["dropout"]),
                int(a["dropout_levels"]))
