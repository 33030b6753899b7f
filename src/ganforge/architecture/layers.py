"""The layer vocabulary: for each layer type, its arguments, its shape rule and its builder.

Shapes never include the batch dimension: images are (C, H, W), vectors (F,), sequences (T, F).
Shape inference is pure arithmetic, so a spec is checked before any tensor is allocated; the
tests check every rule against a real forward pass.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

Shape = tuple[int, ...]


class ShapeError(ValueError):
    """Raised by a shape rule; the builder adds the spec path and turns it into a SpecError."""


@dataclass
class LayerType:
    name: str
    defaults: dict[str, Any]
    infer: Callable[[Shape, dict[str, Any]], Shape]
    build: Callable[[Shape, dict[str, Any]], nn.Module]
    required: tuple[str, ...] = ()
    weighted: bool = False  # may carry spectral_norm
    doc: str = ""
    choices: dict[str, tuple[Any, ...]] = field(default_factory=dict)


LAYERS: dict[str, LayerType] = {}


def register_layer(
    name: str,
    defaults: dict[str, Any] | None = None,
    *,
    required: tuple[str, ...] = (),
    weighted: bool = False,
    doc: str = "",
    choices: dict[str, tuple[Any, ...]] | None = None,
) -> Callable[[Callable[[Shape, dict[str, Any]], Shape]], Callable[..., Any]]:
    """Register a layer type. Decorate the shape rule; attach the builder with ``.builder``."""

    def deco(infer: Callable[[Shape, dict[str, Any]], Shape]) -> Any:
        lt = LayerType(name, dict(defaults or {}), infer, _missing_builder, required, weighted,
                       doc, dict(choices or {}))
        LAYERS[name] = lt

        def builder(fn: Callable[[Shape, dict[str, Any]], nn.Module]) -> Any:
            lt.build = fn
            return fn

        infer.builder = builder  # type: ignore[attr-defined]
        return infer

    return deco


def _missing_builder(shape: Shape, a: dict[str, Any]) -> nn.Module:  # pragma: no cover
    raise NotImplementedError("layer registered without a builder")


def _need(shape: Shape, ndim: int | tuple[int, ...], what: str) -> None:
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if len(shape) not in dims:
        raise ShapeError(f"needs {what} input, got shape {_fmt(shape)}")


def _fmt(shape: Shape) -> str:
    return "x".join(str(s) for s in shape) if shape else "scalar"


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ShapeError(f"expected one int or a pair, got {v}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


# ---------------------------------------------------------------------------------- dense
@register_layer("dense", {"units": None, "bias": True}, required=("units",), weighted=True,
                doc="fully connected; on (T, F) it acts per time step")
def _dense(shape: Shape, a: dict[str, Any]) -> Shape:
    _need(shape, (1, 2), "a vector (F) or sequence (T, F)")
    if int(a["units"]) < 1:
        raise ShapeError("units must be >= 1")
    return (*shape[:-1], int(a["units"]))


@_dense.builder
def _dense_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    return nn.Linear(shape[-1], int(a["units"]), bias=bool(a["bias"]))


# ------------------------------------------------------------------------------- conv2d
def _same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _conv_out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


@register_layer("conv2d", {"filters": None, "kernel": 3, "stride": 1, "padding": "same",
                           "bias": True}, required=("filters",), weighted=True,
                doc="2-D convolution; padding same (Keras rule: out = ceil(in/stride)), valid or int")
def _conv2d(shape: Shape, a: dict[str, Any]) -> Shape:
    _need(shape, 3, "an image (C, H, W)")
    kh, kw = _pair(a["kernel"])
    sh, sw = _pair(a["stride"])
    pad = a["padding"]
    _, h, w = shape
    if pad == "same":
        oh, ow = math.ceil(h / sh), math.ceil(w / sw)
    elif pad == "valid":
        oh, ow = _conv_out(h, kh, sh, 0), _conv_out(w, kw, sw, 0)
    elif isinstance(pad, int) and not isinstance(pad, bool) and pad >= 0:
        oh, ow = _conv_out(h, kh, sh, pad), _conv_out(w, kw, sw, pad)
    else:
        raise ShapeError(f"padding must be 'same', 'valid' or an int >= 0, got {pad!r}")
    if oh < 1 or ow < 1:
        raise ShapeError(f"kernel {kh}x{kw} does not fit input {_fmt(shape)}")
    return (int(a["filters"]), oh, ow)


@_conv2d.builder
def _conv2d_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    kh, kw = _pair(a["kernel"])
    sh, sw = _pair(a["stride"])
    pad = a["padding"]
    conv_kw = {"kernel_size": (kh, kw), "stride": (sh, sw), "bias": bool(a["bias"])}
    if pad == "same":
        top, bottom = _same_pads(shape[1], kh, sh)
        left, right = _same_pads(shape[2], kw, sw)
        if top == bottom and left == right:
            return nn.Conv2d(shape[0], int(a["filters"]), padding=(top, left), **conv_kw)
        # Asymmetric 'same' padding (TensorFlow puts the extra row/column at the bottom/right).
        return nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)),
                             nn.Conv2d(shape[0], int(a["filters"]), padding=0, **conv_kw))
    p = 0 if pad == "valid" else int(pad)
    return nn.Conv2d(shape[0], int(a["filters"]), padding=p, **conv_kw)


# --------------------------------------------------------------------- conv_transpose2d
def _convt_same(k: int, s: int) -> tuple[int, int]:
    """padding and output_padding so that out = in * stride."""
    p = max(math.ceil((k - s) / 2), 0)
    op = s + 2 * p - k
    if not 0 <= op < max(s, 1) or (s == 1 and op != 0):
        raise ShapeError(f"padding 'same' cannot give out = in*stride with kernel {k} and "
                         f"stride {s}; use an odd kernel or an int padding")
    return p, op


@register_layer("conv_transpose2d", {"filters": None, "kernel": 4, "stride": 2,
                                     "padding": "same", "output_padding": 0, "bias": True},
                required=("filters",), weighted=True,
                doc="transposed convolution; padding same gives out = in*stride")
def _convt(shape: Shape, a: dict[str, Any]) -> Shape:
    _need(shape, 3, "an image (C, H, W)")
    kh, kw = _pair(a["kernel"])
    sh, sw = _pair(a["stride"])
    pad = a["padding"]
    _, h, w = shape
    if pad == "same":
        _convt_same(kh, sh)
        _convt_same(kw, sw)
        oh, ow = h * sh, w * sw
    else:
        if pad == "valid":
            p = 0
        elif isinstance(pad, int) and not isinstance(pad, bool) and pad >= 0:
            p = pad
        else:
            raise ShapeError(f"padding must be 'same', 'valid' or an int >= 0, got {pad!r}")
        op = int(a["output_padding"])
        oh = (h - 1) * sh - 2 * p + kh + op
        ow = (w - 1) * sw - 2 * p + kw + op
    if oh < 1 or ow < 1:
        raise ShapeError(f"output would be empty for input {_fmt(shape)}")
    return (int(a["filters"]), oh, ow)


@_convt.builder
def _convt_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    kh, kw = _pair(a["kernel"])
    sh, sw = _pair(a["stride"])
    pad = a["padding"]
    if pad == "same":
        ph, oph = _convt_same(kh, sh)
        pw, opw = _convt_same(kw, sw)
        padding, out_pad = (ph, pw), (oph, opw)
    else:
        p = 0 if pad == "valid" else int(pad)
        padding, out_pad = (p, p), _pair(a["output_padding"])
    return nn.ConvTranspose2d(shape[0], int(a["filters"]), (kh, kw), stride=(sh, sw),
                              padding=padding, output_padding=out_pad, bias=bool(a["bias"]))


# ----------------------------------------------------------------------- shape plumbing
@register_layer("upsample", {"scale": 2, "mode": "nearest"},
                choices={"mode": ("nearest", "bilinear")}, doc="resize an image by an integer factor")
def _upsample(shape: Shape, a: dict[str, Any]) -> Shape:
    _need(shape, 3, "an image (C, H, W)")
    s = int(a["scale"])
    if s < 1:
        raise ShapeError("scale must be >= 1")
    return (shape[0], shape[1] * s, shape[2] * s)


@_upsample.builder
def _upsample_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    return nn.Upsample(scale_factor=int(a["scale"]), mode=a["mode"])


@register_layer("reshape", {"shape": None}, required=("shape",), doc="reshape (batch kept)")
def _reshape(shape: Shape, a: dict[str, Any]) -> Shape:
    target = tuple(int(v) for v in a["shape"])
    if math.prod(target) != math.prod(shape):
        raise ShapeError(f"cannot reshape {_fmt(shape)} ({math.prod(shape)} values) to "
                         f"{_fmt(target)} ({math.prod(target)} values)")
    return target


class Reshape(nn.Module):
    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


@_reshape.builder
def _reshape_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    return Reshape(tuple(int(v) for v in a["shape"]))


@register_layer("flatten", {}, doc="flatten to a vector")
def _flatten(shape: Shape, a: dict[str, Any]) -> Shape:
    return (math.prod(shape),)


@_flatten.builder
def _flatten_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    return nn.Flatten()


@register_layer("repeat", {"times": None}, required=("times",),
                doc="a vector repeated at every step: (d,) -> (times, d) (Keras' RepeatVector)")
def _repeat(shape: Shape, a: dict[str, Any]) -> Shape:
    _need(shape, 1, "a vector (d,)")
    times = a["times"]
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ShapeError(f"repeat needs times: a whole number >= 1 (or steps, the data's "
                         f"sequence length); got {times!r}")
    return (times, shape[0])


class Repeat(nn.Module):
    def __init__(self, times: int) -> None:
        super().__init__()
        self.times = int(times)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1).expand(-1, self.times, -1)

    def extra_repr(self) -> str:
        return f"times={self.times}"


@_repeat.builder
def _repeat_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    return Repeat(a["times"])


@register_layer("hold", {"channels": None}, required=("channels",),
                doc="the first `channels` channels of a sequence (T, d) held at their first "
                    "step's values: a per-sequence latent beside per-step noise")
def _hold(shape: Shape, a: dict[str, Any]) -> Shape:
    _need(shape, 2, "a sequence (T, d)")
    k = a["channels"]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= shape[1]:
        raise ShapeError(f"hold needs channels: a whole number from 1 to the input's "
                         f"{shape[1]} channels; got {k!r}")
    return shape


class Hold(nn.Module):
    """A G's latent sequence (N, T, d) whose first ``channels`` channels keep their step-0
    values at every step: those channels become one draw per sequence (a melody's key, a
    series' level), the others stay fresh noise per step."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = int(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.channels
        return torch.cat([x[:, :1, :k].expand(-1, x.shape[1], -1), x[:, :, k:]], dim=-1)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


@_hold.builder
def _hold_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    return Hold(a["channels"])


# -------------------------------------------------------------------------------- norms
class SequenceBatchNorm(nn.Module):
    """BatchNorm over the feature axis of (N, T, F) sequences."""

    def __init__(self, features: int, momentum: float, eps: float) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(features, momentum=momentum, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x.transpose(1, 2)).transpose(1, 2)


@register_layer("batch_norm", {"momentum": 0.1, "eps": 1e-5}, doc="batch normalization")
def _bn(shape: Shape, a: dict[str, Any]) -> Shape:
    _need(shape, (1, 2, 3), "a vector, sequence or image")
    return shape


@_bn.builder
def _bn_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    m, e = float(a["momentum"]), float(a["eps"])
    if len(shape) == 1:
        return nn.BatchNorm1d(shape[0], momentum=m, eps=e)
    if len(shape) == 2:
        return SequenceBatchNorm(shape[1], m, e)
    return nn.BatchNorm2d(shape[0], momentum=m, eps=e)


@register_layer("layer_norm", {"eps": 1e-5},
                doc="layer normalization (over C, H, W for images, features otherwise)")
def _ln(shape: Shape, a: dict[str, Any]) -> Shape:
    return shape


@_ln.builder
def _ln_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    normalized = shape if len(shape) == 3 else shape[-1:]
    return nn.LayerNorm(list(normalized), eps=float(a["eps"]))


@register_layer("instance_norm", {"affine": True, "eps": 1e-5}, doc="instance normalization")
def _in(shape: Shape, a: dict[str, Any]) -> Shape:
    _need(shape, 3, "an image (C, H, W)")
    return shape


@_in.builder
def _in_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    return nn.InstanceNorm2d(shape[0], affine=bool(a["affine"]), eps=float(a["eps"]))


@register_layer("dropout", {"p": 0.5}, doc="dropout with probability p")
def _dropout(shape: Shape, a: dict[str, Any]) -> Shape:
    if not 0.0 <= float(a["p"]) < 1.0:
        raise ShapeError(f"p must be in [0, 1), got {a['p']}")
    return shape


@_dropout.builder
def _dropout_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    return Dropout(float(a["p"]))


class _BitsDropout(torch.autograd.Function):
    """x * mask / keep with the mask drawn as 16-bit random integers below a threshold; saves
    the boolean mask (1 byte per element) and rebuilds the scaled mask in backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, keep: float) -> torch.Tensor:
        n = x.numel()
        # int32 draws cover [-2**31, 2**31 - 1): each viewed as two uniform int16 halves
        bits = torch.randint(-2**31, 2**31 - 1, ((n + 1) // 2,), dtype=torch.int32,
                             device=x.device).view(torch.int16)[:n]
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
            b, c, h, w = x.shape  # the mask in x's own layout: elementwise ops stay dense
            bits = bits.view(b, h, w, c).permute(0, 3, 1, 2)
        else:
            bits = bits.view(x.shape)
        mask = bits < round(keep * 65536) - 32768
        ctx.save_for_backward(mask)
        ctx.scale = 1.0 / keep
        return x * mask.to(x.dtype).mul_(ctx.scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (mask,) = ctx.saved_tensors
        return grad * mask.to(grad.dtype).mul_(ctx.scale), None


class Dropout(nn.Dropout):
    """nn.Dropout with a faster CPU path: on CPU, ``bernoulli_`` (what nn.Dropout draws with)
    took about 27 ms for 3.2M elements on 2 cores, while 16-bit integer draws compared to a
    threshold take about a third of that (benchmarks/throughput.py, docs/performance.md). The
    keep probability is quantized to 1/65536 (|error| <= 2**-17). Other devices, eval mode and
    p == 0 behave exactly as nn.Dropout. No state: checkpoints are those of nn.Dropout."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        return _BitsDropout.apply(x, 1.0 - self.p)


# -------------------------------------------------------------------------- activations
def _same(shape: Shape, a: dict[str, Any]) -> Shape:
    return shape


def _plain(module_cls: type[nn.Module]) -> Callable[[Shape, dict[str, Any]], nn.Module]:
    def build(shape: Shape, a: dict[str, Any]) -> nn.Module:
        return module_cls()

    return build


for _name, _mod in (("relu", nn.ReLU), ("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid)):
    register_layer(_name, {}, doc=f"{_name} activation")(_same)
    LAYERS[_name].build = _plain(_mod)

register_layer("leaky_relu", {"slope": 0.2}, doc="leaky ReLU with negative slope")(_same)
LAYERS["leaky_relu"].build = lambda shape, a: nn.LeakyReLU(float(a["slope"]))


def check_spans(shape: Shape, spans: Any) -> list[int]:
    """``spans`` (one width per one-hot variable of the last axis) checked against ``shape``:
    a non-empty list of integers >= 1 that add up to the last axis."""
    if not isinstance(spans, list) or not spans or not all(
            isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in spans):
        raise ShapeError(f"spans must be a list of widths >= 1 (spans: spans follows the "
                         f"data), got {spans!r}")
    if sum(spans) != shape[-1]:
        raise ShapeError(f"spans {spans} add up to {sum(spans)}, but the input has "
                         f"{shape[-1]} features {_fmt(shape)}")
    return spans


def sample_temperature_value(t: Any, n_spans: int) -> float | list[float] | None:
    """A ``sample_temperature`` as :class:`SpanSoftmax` keeps it: one float, or a list of
    floats with one per span (``n_spans``); None when ``t`` is neither (a list of another
    length, a value that is not a number, a number <= 0)."""
    values = t if isinstance(t, list) else [t]
    if isinstance(t, list) and len(t) != n_spans:
        return None
    if not all(not isinstance(v, bool) and isinstance(v, (int, float)) and v > 0
               for v in values):
        return None
    return [float(v) for v in t] if isinstance(t, list) else float(t)


class SpanSoftmax(nn.Module):
    """Softmax over consecutive spans of the last axis (one categorical variable per span),
    with Gumbel noise when ``tau`` is set: Gumbel-softmax(tau), as CTGAN's generator emits its
    one-hot columns. Without noise it is a plain softmax per span. The noise is drawn in eval
    mode too, so the argmax of a span is a draw from softmax(logits): what decoding reads.
    ``hard``: the forward pass emits the exact one-hot of each span's argmax and the backward
    pass the soft values' gradient (straight-through), so D cannot tell generated rows from
    real one-hot rows by their softness. A list of booleans, one per span, makes only those
    spans hard (a music G's pitch hard, its duration and delta soft).
    ``sample_temperature``: in eval mode (sampling) the logits are divided by it first, so each
    span's argmax is a draw from softmax(logits / sample_temperature): below 1, G's likelier
    categories more often (a truncation trick for categories; near 0, the most likely one).
    A list, one number per span, sets each span's own (a melody's pitch sharpened, its
    durations drawn as learned)."""

    def __init__(self, spans: list[int], tau: float | None, hard: bool | list[bool] = False,
                 sample_temperature: float | list[float] = 1.0) -> None:
        super().__init__()
        self.spans = [int(w) for w in spans]
        self.tau = None if tau is None else float(tau)
        self.hard = ([bool(h) for h in hard] if isinstance(hard, list)
                     else [bool(hard)] * len(self.spans))
        t = sample_temperature_value(sample_temperature, len(self.spans))
        if t is None:
            raise ValueError(f"sample_temperature {sample_temperature!r} is not a number > 0 "
                             f"or one per span of {self.spans}")
        self.sample_temperature = t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.sample_temperature
        if not self.training and isinstance(t, list):
            x = x / torch.tensor(t, dtype=x.dtype, device=x.device).repeat_interleave(
                torch.tensor(self.spans, device=x.device))
        elif not self.training and t != 1.0:
            x = x / t
        if self.tau is not None:
            u = torch.rand_like(x).clamp_min_(torch.finfo(x.dtype).tiny)
            x = (x - torch.log(-torch.log(u))) / self.tau
        parts = [torch.softmax(part, dim=-1) for part in torch.split(x, self.spans, dim=-1)]
        parts = [p + (torch.zeros_like(p).scatter_(-1, p.argmax(-1, keepdim=True), 1.0)
                      - p).detach() if hard else p for p, hard in zip(parts, self.hard, strict=True)]
        return torch.cat(parts, dim=-1)


@register_layer("span_softmax", {"spans": None, "tau": None, "hard": False,
                                 "sample_temperature": 1.0},
                required=("spans",),
                doc="softmax per span of the last axis (one-hot variables; spans: spans follows "
                    "the data), Gumbel-softmax when tau is set, straight-through one-hot when "
                    "hard (true, or one true/false per span); sample_temperature < 1 (or one "
                    "per span) draws G's likelier categories more often when sampling")
def _span_softmax(shape: Shape, a: dict[str, Any]) -> Shape:
    spans = check_spans(shape, a["spans"])
    if a["tau"] is not None and not float(a["tau"]) > 0:
        raise ShapeError(f"tau must be a positive temperature (or unset), got {a['tau']!r}")
    t = a["sample_temperature"]
    if sample_temperature_value(t, len(spans)) is None:
        raise ShapeError(f"sample_temperature must be a number > 0 (1 = G's own "
                         f"probabilities) or one per span ({len(spans)} spans), got {t!r}")
    hard = a["hard"]
    if not (isinstance(hard, bool) or (isinstance(hard, list) and len(hard) == len(spans)
                                       and all(isinstance(h, bool) for h in hard))):
        raise ShapeError(f"hard must be true, false or one true/false per span ({len(spans)} "
                         f"spans), got {hard!r}")
    return shape


LAYERS["span_softmax"].build = lambda shape, a: SpanSoftmax(a["spans"], a["tau"], a["hard"],
                                                             a["sample_temperature"])


# ---------------------------------------------------------------------------- recurrent
class Recurrent(nn.Module):
    """LSTM/GRU over (N, T, F), batch first; returns every step or only the last."""

    def __init__(self, cell: str, in_features: int, a: dict[str, Any]) -> None:
        super().__init__()
        cls = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = cls(in_features, int(a["units"]), num_layers=int(a["layers"]),
                       batch_first=True, bidirectional=bool(a["bidirectional"]),
                       dropout=float(a["dropout"]) if int(a["layers"]) > 1 else 0.0)
        self.return_sequences = bool(a["return_sequences"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        if self.return_sequences:
            return out
        if self.rnn.bidirectional:  # forward pass ends at the last step, backward at the first
            half = self.rnn.hidden_size
            return torch.cat([out[:, -1, :half], out[:, 0, half:]], dim=1)
        return out[:, -1]


_RNN_DEFAULTS = {"units": None, "layers": 1, "bidirectional": False, "return_sequences": True,
                 "dropout": 0.0}


def _rnn(shape: Shape, a: dict[str, Any]) -> Shape:
    _need(shape, 2, "a sequence (T, F)")
    width = int(a["units"]) * (2 if a["bidirectional"] else 1)
    return (shape[0], width) if a["return_sequences"] else (width,)


for _cell in ("lstm", "gru"):
    register_layer(_cell, _RNN_DEFAULTS, required=("units",),
                   doc=f"{_cell.upper()} over (T, F); stacked with layers, bidirectional for D")(_rnn)
    LAYERS[_cell].build = functools.partial(
        lambda cell, shape, a: Recurrent(cell, shape[-1], a), _cell)
