"""``ganforge compare RUN_A RUN_B ... --out FILE``: final metrics side by side and overlaid
curves, as a PNG (table + plots in one picture) or a self-contained HTML page."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ganforge.errors import GanforgeError
from ganforge.fileio import atomic_write_bytes
from ganforge.monitor.plots import numeric_keys, panel_figure
from ganforge.monitor.report import load_run_records

TRAIN_KEYS = ("d_loss", "g_loss", "d_real", "d_fake", "diversity_ratio")
CURVES = (("D loss", "d_loss"), ("G loss", "g_loss"), ("mean D(G(z))", "d_fake"),
          ("diversity / real", "diversity_ratio"))
SUFFIXES = (".png", ".html", ".htm")


def _run_name(run_dir: Path, taken: set[str]) -> str:
    name = run_dir.resolve().name or str(run_dir)
    base, i = name, 2
    while name in taken:
        name, i = f"{base} ({i})", i + 1
    taken.add(name)
    return name


def comparison_table(run_dirs: Sequence[str | Path]) -> tuple[list[str], list[list[Any]],
                                                              dict[str, list[dict[str, Any]]]]:
    """Header, one row per run (final values), and each run's records by run name."""
    runs: dict[str, list[dict[str, Any]]] = {}
    taken: set[str] = set()
    for d in run_dirs:
        runs[_run_name(Path(d), taken)] = load_run_records(d)
    eval_keys: dict[str, None] = {}
    for recs in runs.values():
        for k in numeric_keys([r for r in recs if r.get("kind") == "eval"]):
            eval_keys.setdefault(k, None)
    header = ["run", "steps", *TRAIN_KEYS, *eval_keys, "alarms"]
    rows = []
    for name, recs in runs.items():
        train = [r for r in recs if r.get("kind") == "train"]
        evals = [r for r in recs if r.get("kind") == "eval"]
        alarms = [str(r.get("alarm")) for r in recs if r.get("kind") == "alarm"]
        last = train[-1] if train else {}
        row: list[Any] = [name, max((int(r.get("step", 0)) for r in recs), default=0)]
        row += [last.get(k) for k in TRAIN_KEYS]
        for k in eval_keys:  # the last evaluation that has this metric
            row.append(next((e[k] for e in reversed(evals) if _finite(e.get(k))), None))
        row.append(", ".join(alarms) if alarms else "none")
        rows.append(row)
    return header, rows, runs


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "n/a" if v is None else str(v)


def _curves_png(runs: dict[str, list[dict[str, Any]]]) -> bytes | None:
    series = [(n, [r for r in recs if r.get("kind") in ("train", "eval")])
              for n, recs in runs.items()]
    panels = [(title, [k], False) for title, k in CURVES]
    eval_keys: dict[str, None] = {}
    for recs in runs.values():
        for k in numeric_keys([r for r in recs if r.get("kind") == "eval"]):
            eval_keys.setdefault(k, None)
    panels += [(f"eval: {k}", [k], False) for k in eval_keys]
    present = set(numeric_keys([r for _, recs in series for r in recs]))
    panels = [p for p in panels if p[1][0] in present]
    return panel_figure(panels, series)


def _table_png(header: list[str], rows: list[list[Any]], curves: bytes | None) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    fig = Figure(figsize=(min(2.0 + 1.3 * len(header), 22), 0.6 + 0.35 * (len(rows) + 1)))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.axis("off")
    table = ax.table(cellText=[[_fmt(v) for v in r] for r in rows], colLabels=header,
                     loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    top = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    if curves is None:
        return buf.getvalue()
    bottom = Image.open(io.BytesIO(curves)).convert("RGB")
    canvas = Image.new("RGB", (max(top.width, bottom.width), top.height + bottom.height),
                       "white")
    canvas.paste(top, (0, 0))
    canvas.paste(bottom, (0, top.height))
    out = io.BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue()


def compare_runs(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Write the comparison of ``run_dirs`` to ``out`` (.png or .html); returns the path."""
    out = Path(out)
    if out.suffix.lower() not in SUFFIXES:
        raise GanforgeError(f"cannot write the comparison to '{out}': use a .png or .html "
                            f"file name.")
    if not run_dirs:
        raise GanforgeError("give at least one run directory to compare.")
    header, rows, runs = comparison_table(run_dirs)
    curves = _curves_png(runs)
    if out.suffix.lower() == ".png":
        data = _table_png(header, rows, curves)
    else:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>"
                       for r in rows)
        img = ("" if curves is None else "<img alt='overlaid curves' style='max-width:100%' "
               f"src='data:image/png;base64,{base64.b64encode(curves).decode('ascii')}'>")
        data = ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>ganforge "
                "comparison</title><style>body{font-family:system-ui,sans-serif;margin:24px}"
                "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}"
                "</style></head><body><h1>ganforge comparison</h1>"
                f"<table><tr>{head}</tr>{body}</table><h2>Curves</h2>{img}</body></html>\n"
                ).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(out, data)
