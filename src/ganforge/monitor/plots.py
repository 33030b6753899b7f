"""Matplotlib figures of a metric log, rendered off-screen (Agg) to PNG bytes.

No pyplot: figures are built with ``matplotlib.figure.Figure`` so nothing touches global state
or needs a display.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

SKIP = ("step", "kind", "epoch", "time", "protocol")

# Panels of the training signals: (title, keys, log-scale). Keys not listed get own panels.
TRAIN_PANELS: list[tuple[str, tuple[str, ...], bool]] = [
    ("losses", ("d_loss", "g_loss"), False),
    ("D outputs: mean D(x), D(G(z))", ("d_real", "d_fake"), False),
    ("real - fake logit gap", ("logit_gap",), False),
    ("Wasserstein estimate", ("wasserstein",), False),
    ("gradient norms", ("g_grad_norm", "d_grad_norm"), True),
    ("sample diversity (fixed latents) vs real data", ("diversity", "diversity_real"), False),
    ("diversity / real diversity", ("diversity_ratio",), False),
    ("learning rates", ("lr_g", "lr_d"), True),
    ("images / s", ("images_per_s",), False),
]
HIDDEN = ("real_logit", "fake_logit")  # shown through logit_gap
ALARM_COLOR = "#d62728"


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def numeric_keys(records: Sequence[dict[str, Any]]) -> list[str]:
    """Keys holding a number in at least one record, in first-seen order."""
    keys: dict[str, None] = {}
    for r in records:
        for k, v in r.items():
            if k not in SKIP and _num(v) is not None:
                keys.setdefault(k, None)
    return list(keys)


def series(records: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in records:
        v = _num(r.get(key))
        if v is not None and "step" in r:
            xs.append(float(r["step"]))
            ys.append(v)
    return xs, ys


def train_panels(records: Sequence[dict[str, Any]]) -> list[tuple[str, list[str], bool]]:
    present = set(numeric_keys(records))
    panels, used = [], set(HIDDEN)
    for title, keys, log in TRAIN_PANELS:
        have = [k for k in keys if k in present]
        used.update(keys)
        if have:
            panels.append((title, have, log))
    panels += [(k, [k], k.startswith("lr_") or k.endswith("_grad_norm"))
               for k in numeric_keys(records) if k not in used]
    return panels


def _to_png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def panel_figure(panels: Sequence[tuple[str, Sequence[str], bool]],
                 runs: Sequence[tuple[str, Sequence[dict[str, Any]]]],
                 alarm_steps: Sequence[float] = (), ncols: int = 2) -> bytes | None:
    """A grid of line plots: one panel per (title, keys, log); one line per key and run."""
    from matplotlib.figure import Figure

    if not panels:
        return None
    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(6.0 * ncols, 3.0 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(panels):
            ax.set_visible(False)
            continue
        title, keys, log = panels[i]
        drawn = 0
        for run_name, records in runs:
            for key in keys:
                xs, ys = series(records, key)
                if not xs:
                    continue
                label = key if len(runs) == 1 else (f"{run_name}" if len(keys) == 1
                                                    else f"{run_name}: {key}")
                ax.plot(xs, ys, marker="." if len(xs) < 30 else None, linewidth=1.6,
                        label=label)
                drawn += 1
                if log and min(ys) > 0:
                    ax.set_yscale("log")
        for s in alarm_steps:
            ax.axvline(s, color=ALARM_COLOR, linestyle="--", linewidth=1.5)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if drawn > 1 or len(runs) > 1:
            ax.legend(fontsize=7)
    return _to_png(fig)


def alarm_timeline(alarms: Sequence[dict[str, Any]], last_step: float) -> bytes:
    """Alarms as labelled markers on a step axis."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12.0, 1.2 + 0.35 * max(1, len(alarms))), layout="constrained")
    ax = fig.subplots()
    ids = sorted({str(a.get("alarm")) for a in alarms})
    for a in alarms:
        y = ids.index(str(a.get("alarm")))
        ax.plot([a.get("step", 0)], [y], marker="v", markersize=11, color=ALARM_COLOR)
        ax.annotate(f" {a.get('title', a.get('alarm'))} (step {a.get('step')})",
                    (a.get("step", 0), y), fontsize=8, va="center")
    ax.set_yticks(range(len(ids)), ids, fontsize=8)
    ax.set_ylim(-0.7, len(ids) - 0.3)
    ax.set_xlim(0, max(float(last_step), 1.0) * 1.05)
    ax.set_xlabel("step", fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    return _to_png(fig)
