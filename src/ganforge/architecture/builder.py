"""Spec -> nn.Module, with shape inference before anything is built and a summary table.

A network spec is a dict ``{"layers": [...], "spectral_norm": false}``. Each layer entry is
``"relu"``, ``{"relu": null}``, ``{"dense": {"units": 64}}`` or ``{"type": "dense", "units": 64}``.
Any weighted layer accepts ``spectral_norm: true``; any layer accepts ``features: true`` to mark
its output as the feature layer (used by feature matching).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ganforge.architecture.layers import LAYERS, Shape, ShapeError, _fmt
from ganforge.errors import ConfigError, SpecError, did_you_mean

META_KEYS = ("spectral_norm", "features")
# words written where a width goes that the data fills in (config.resolve_data_widths)
DATA_WIDTHS = ("steps", "features", "spans")


@dataclass
class LayerPlan:
    index: int
    type: str
    args: dict[str, Any]
    in_shape: Shape
    out_shape: Shape
    spectral_norm: bool
    features: bool
    path: str


def parse_layer(entry: Any, path: str) -> tuple[str, dict[str, Any]]:
    """Normalise one layer entry to (type, args)."""
    if isinstance(entry, str):
        name, args = entry, {}
    elif isinstance(entry, dict) and "type" in entry:
        name = entry["type"]
        args = {k: v for k, v in entry.items() if k != "type"}
    elif isinstance(entry, dict) and len(entry) == 1:
        name, args = next(iter(entry.items()))
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise SpecError(f"{path} ({name}): arguments must be a mapping like "
                            f"{{{name}: {{...}}}}, got {args!r}")
    else:
        raise SpecError(f"{path}: a layer is a name ('relu'), a one-key mapping "
                        f"({{dense: {{units: 64}}}}) or a mapping with 'type'; got {entry!r}")
    if not isinstance(name, str) or name not in LAYERS:
        raise SpecError(f"{path}: unknown layer type '{name}'.{did_you_mean(name, LAYERS)} "
                        f"Known layers: {', '.join(sorted(LAYERS))}.")
    return name, dict(args)


def plan_network(spec: dict[str, Any], in_shape: Shape, name: str) -> list[LayerPlan]:
    """Infer every layer's output shape; raise SpecError naming the spec path on any problem."""
    layers = spec.get("layers")
    if not isinstance(layers, list) or not layers:
        raise SpecError(f"{name}.layers must be a non-empty list of layers.")
    net_sn = bool(spec.get("spectral_norm", False))
    plans: list[LayerPlan] = []
    shape = tuple(int(s) for s in in_shape)
    for i, entry in enumerate(layers):
        path = f"{name}.layers[{i}]"
        ltype, raw = parse_layer(entry, path)
        lt = LAYERS[ltype]
        meta = {k: raw.pop(k) for k in META_KEYS if k in raw}
        unknown = [k for k in raw if k not in lt.defaults]
        if unknown:
            allowed = list(lt.defaults) + list(META_KEYS if lt.weighted else ["features"])
            raise SpecError(f"{path} ({ltype}): unknown argument '{unknown[0]}'."
                            f"{did_you_mean(unknown[0], allowed)} Allowed: {', '.join(allowed)}.")
        missing = [k for k in lt.required if raw.get(k) is None]
        if missing:
            raise SpecError(f"{path} ({ltype}): missing required argument '{missing[0]}'.")
        args = {**lt.defaults, **raw}
        for key, value in args.items():
            if value in DATA_WIDTHS or (isinstance(value, list) and any(
                    v in DATA_WIDTHS for v in value if isinstance(v, str))):
                raise SpecError(f"{path} ({ltype}): {key} is {value!r}, which follows the data; "
                                f"it is filled in once the data is loaded (ganforge train, "
                                f"inspect).")
        for key, options in lt.choices.items():
            if args[key] not in options:
                raise SpecError(f"{path} ({ltype}): {key} must be one of {options}, "
                                f"got {args[key]!r}.")
        sn = bool(meta.get("spectral_norm", net_sn and lt.weighted))
        if sn and not lt.weighted:
            raise SpecError(f"{path} ({ltype}): spectral_norm applies only to weighted layers "
                            f"(dense, conv2d, conv_transpose2d, ...).")
        try:
            out = tuple(int(s) for s in lt.infer(shape, args))
        except ShapeError as exc:
            raise SpecError(f"{path} ({ltype}): {exc}.") from None
        except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
            raise SpecError(f"{path} ({ltype}): bad argument value ({exc}).") from None
        if not out or min(out) < 1:
            raise SpecError(f"{path} ({ltype}): output shape {list(out)} has a size below 1; "
                            f"check filters/units/kernel/stride/shape.")
        plans.append(LayerPlan(i, ltype, args, shape, out, sn, bool(meta.get("features", False)),
                               path))
        shape = out
    return plans


class SpecNet(nn.Module):
    """A network built from a spec: a list of layers applied in order.

    ``forward(x, return_features=True)`` also returns the output of the feature layer: the one
    marked ``features: true`` or, by default, the input of the last weighted layer.
    """

    def __init__(self, plans: list[LayerPlan], in_shape: Shape, name: str) -> None:
        super().__init__()
        self.name = name
        self.in_shape = tuple(in_shape)
        self.out_shape = plans[-1].out_shape
        self.plans = plans
        mods = []
        for p in plans:
            try:
                m = LAYERS[p.type].build(p.in_shape, p.args)
            except (TypeError, ValueError, OverflowError, RuntimeError) as exc:
                raise SpecError(f"{p.path} ({p.type}): bad argument value ({exc}).") from None
            if p.spectral_norm:
                m = _apply_spectral_norm(m)
            mods.append(m)
        self.layers = nn.ModuleList(mods)
        marked = [p.index for p in plans if p.features]
        if marked:
            self.feature_index = marked[-1]
        else:
            weighted = [p.index for p in plans if LAYERS[p.type].weighted]
            self.feature_index = weighted[-1] - 1 if weighted and weighted[-1] > 0 else len(plans) - 2

    def forward(self, x: torch.Tensor, return_features: bool = False) -> Any:
        feats = None
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == self.feature_index:
                feats = x
        return (x, feats) if return_features else x


def _apply_spectral_norm(m: nn.Module) -> nn.Module:
    from torch.nn.utils.parametrizations import spectral_norm

    if isinstance(m, nn.Sequential):  # padded conv
        m[-1] = spectral_norm(m[-1])
        return m
    return spectral_norm(m)


def build_network(spec: dict[str, Any], in_shape: Shape, name: str) -> SpecNet:
    return SpecNet(plan_network(spec, in_shape, name), in_shape, name)


def width_mismatch(plans: list[LayerPlan], data_shape: Shape, latent_shape: Shape | None = None
                   ) -> str | None:
    """For a network meant to output sequences (T, F): the config key whose number disagrees
    with the data (a layer's ``units`` for F, ``latent.shape[0]`` for T), said with what the
    data has; None when the mismatch is not one of these."""
    out = plans[-1].out_shape
    if len(out) != 2 or len(data_shape) != 2:
        return None
    t, f = data_shape
    if out[1] != f:
        for p in reversed(plans):  # the last layer with units that gave the final width
            if "units" in p.args and p.out_shape[-1] == out[1]:
                return (f"{p.path}.{p.type}.units is {p.args['units']}, but the data has {f} "
                        f"features per step (samples {_fmt(tuple(data_shape))}): set it to {f}, "
                        f"or to 'features' to follow the data.")
        return None
    if out[0] != t and latent_shape is not None and len(latent_shape) == 2 \
            and latent_shape[0] == out[0]:
        return (f"latent.shape[0] is {latent_shape[0]}, but the data's sequences have {t} steps "
                f"(samples {_fmt(tuple(data_shape))}): set it to {t}, or to 'steps' to follow "
                f"the data.")
    return None


def validate_gan(g_spec: dict[str, Any], d_spec: dict[str, Any], latent_shape: Shape,
                 data_shape: Shape, d_in_shape: Shape | None = None
                 ) -> tuple[list[LayerPlan], list[LayerPlan]]:
    """Check G maps the latent to the data shape and D maps data to one logit per sample."""
    g = plan_network(g_spec, latent_shape, "generator")
    if g[-1].out_shape != tuple(data_shape):
        hint = width_mismatch(g, tuple(data_shape), latent_shape)
        if hint:
            raise ConfigError(hint)
        last = g[-1]
        raise SpecError(f"{last.path} ({last.type}): output {_fmt(last.out_shape)}, data is "
                        f"{_fmt(tuple(data_shape))}. The generator's last layer must produce "
                        f"exactly the data shape.")
    d = plan_network(d_spec, d_in_shape or data_shape, "discriminator")
    if d[-1].out_shape != (1,):
        last = d[-1]
        raise SpecError(f"{last.path} ({last.type}): output {_fmt(last.out_shape)}, but the "
                        f"discriminator must output one logit per sample (shape 1). End it with "
                        f"flatten + dense {{units: 1}}.")
    return g, d


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def summary(net: SpecNet) -> str:
    """A Keras-like table: layer, output shape, parameters, totals."""
    rows = [("#", "layer", "output shape", "params")]
    rows.append(("", "input", _fmt(net.in_shape), ""))
    total = trainable = 0
    for p, m in zip(net.plans, net.layers, strict=True):
        n = count_params(m)
        total += n
        trainable += sum(q.numel() for q in m.parameters() if q.requires_grad)
        label = p.type + (" [sn]" if p.spectral_norm else "") + (" [features]" if p.features else "")
        rows.append((str(p.index), label, _fmt(p.out_shape), f"{n:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    line = "-" * (sum(widths) + 9)
    out = [f"{net.name}", line]
    for j, r in enumerate(rows):
        out.append("  ".join([r[0].rjust(widths[0]), r[1].ljust(widths[1]),
                              r[2].ljust(widths[2]), r[3].rjust(widths[3])]))
        if j == 0:
            out.append(line)
    out += [line, f"total params: {total:,}   trainable: {trainable:,}"]
    return "\n".join(out)


def replace_batch_norm(layers: list[Any], norm: str) -> list[Any]:
    """D's layer list with every ``batch_norm`` replaced by ``norm`` (``layer_norm``,
    ``instance_norm``) or dropped (``none``); its ``eps`` is kept."""
    out: list[Any] = []
    for i, entry in enumerate(layers):
        try:
            name, args = parse_layer(entry, f"discriminator.layers[{i}]")
        except SpecError:
            out.append(entry)  # reported with its path when the spec is planned
            continue
        if name != "batch_norm":
            out.append(entry)
        elif norm != "none":
            out.append({norm: {"eps": args["eps"]}} if "eps" in args else norm)
    return out
