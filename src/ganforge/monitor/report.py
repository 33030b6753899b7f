"""``report.html``: one self-contained page per run (all images embedded as base64).

Sections: summary, alarms (timeline and messages), the strip of sample grids over time,
for music runs the last ``musicscore`` table and generated and real melodies (piano rolls
and WAV players), training-signal curves (alarms marked), evaluation-metric curves (every
numeric key of ``kind: eval`` lines), the metric protocols and the resolved config.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ganforge.data.sequences import load_data_info
from ganforge.errors import CheckpointError, DataError
from ganforge.fileio import atomic_write_text
from ganforge.monitor.log import read_log
from ganforge.monitor.music import melodies_section, music_scores_section
from ganforge.monitor.plots import SKIP, alarm_timeline, numeric_keys, panel_figure, train_panels

MAX_STRIP = 12  # sample grids shown (evenly spaced, first and last always)

CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { margin-bottom: 4px; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; }
table { border-collapse: collapse; font-size: 14px; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
pre { background: #f6f6f6; padding: 10px; overflow-x: auto; font-size: 12px; }
.strip { display: flex; flex-wrap: wrap; gap: 10px; }
.strip figure { margin: 0; border: 3px solid #6a3d9a; padding: 2px; background: #fff; }
.strip img { display: block; width: 180px; height: auto; image-rendering: pixelated; }
.strip figcaption { font-size: 12px; text-align: center; }
.alarm { color: #b00; } .ok { color: #070; }
img.plot { max-width: 100%; }
.melodies { display: flex; flex-wrap: wrap; gap: 14px; }
.melodies figure { margin: 0; } .melodies img { display: block; width: 360px; height: auto; }
.melodies audio { display: block; width: 360px; } .note { color: #555; }
"""


def load_run_records(run_dir: str | Path) -> list[dict[str, Any]]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory '{run_dir}' does not exist.")
    if not (run_dir / "metrics.jsonl").is_file() and not (run_dir / "config.yaml").is_file():
        raise CheckpointError(f"'{run_dir}' is not a ganforge run: it has neither metrics.jsonl "
                              f"nor config.yaml. Give the directory a training run wrote.")
    return read_log(run_dir / "metrics.jsonl")


def _img(png: bytes, alt: str, cls: str = "plot") -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def pick_strip(paths: Sequence[Path], k: int = MAX_STRIP) -> list[Path]:
    """At most ``k`` paths, evenly spaced, keeping the first and the last."""
    paths = list(paths)
    if len(paths) <= k:
        return paths
    idx = sorted({round(i * (len(paths) - 1) / (k - 1)) for i in range(k)})
    return [paths[i] for i in idx]


def _step_of(path: Path) -> str:
    tail = path.stem.split("_")[-1]
    return str(int(tail)) if tail.isdigit() else path.stem


def _table(rows: Sequence[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
                    for k, v in rows)
    return f"<table>{cells}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "n/a" if v is None else str(v)


def build_report_html(run_dir: str | Path,
                      extra_records: Sequence[dict[str, Any]] = ()) -> str:
    run_dir = Path(run_dir)
    records = load_run_records(run_dir) + [dict(r) for r in extra_records]
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    alarms = [r for r in records if r.get("kind") == "alarm"]
    cfg_path = run_dir / "config.yaml"
    cfg_text = cfg_path.read_text() if cfg_path.is_file() else "(no config.yaml)"
    import yaml

    try:
        cfg = yaml.safe_load(cfg_text) if cfg_path.is_file() else {}
    except yaml.YAMLError:
        cfg = {}
    cfg = cfg if isinstance(cfg, dict) else {}
    name = str(cfg.get("name", run_dir.name))
    last_step = max((float(r.get("step", 0)) for r in records), default=0.0)

    parts = [f"<h1>ganforge run: {html.escape(name)}</h1>",
             f"<p>{html.escape(str(cfg.get('description', '')))}</p>"]
    # ---- summary
    last = train[-1] if train else {}
    rows: list[tuple[str, Any]] = [("run directory", str(run_dir)),
                                   ("steps logged", int(last_step)), ("alarms", len(alarms))]
    rows += [(k, last[k]) for k in ("d_loss", "g_loss", "d_real", "d_fake", "diversity_ratio",
                                    "images_per_s") if k in last]
    if evals:
        rows += [(f"eval {k}", evals[-1][k]) for k in numeric_keys(evals[-1:])]
    parts += ["<h2 id='summary'>Summary</h2>", _table(rows)]
    # ---- alarms
    parts.append("<h2 id='alarms'>Alarms</h2>")
    if alarms:
        parts.append(_img(alarm_timeline(alarms, last_step), "alarm timeline"))
        items = "".join(f"<li class='alarm'><b>step {html.escape(str(a.get('step')))}: "
                        f"{html.escape(str(a.get('title', a.get('alarm'))))}</b> - "
                        f"{html.escape(str(a.get('message', '')))}</li>" for a in alarms)
        parts.append(f"<ul>{items}</ul>")
    else:
        parts.append("<p class='ok'>No alarm fired.</p>")
    # ---- samples
    grids = sorted((run_dir / "samples").glob("*.png")) if (run_dir / "samples").is_dir() else []
    parts.append("<h2 id='samples'>Samples of the fixed latent batch over time</h2>")
    if grids:
        figs = "".join(f"<figure>{_img(p.read_bytes(), f'samples {p.name}', 'sample')}"
                       f"<figcaption>step {html.escape(_step_of(p))}</figcaption></figure>"
                       for p in pick_strip(grids))
        parts.append(f"<div class='strip'>{figs}</div>")
    else:
        parts.append("<p>No sample grid yet.</p>")
    # ---- melodies (music runs): piano rolls and players, generated next to real
    try:
        info = load_data_info(run_dir) or {}
    except DataError:  # a corrupt data.json: the rest of the report still helps
        info = {}
    if isinstance(info.get("music"), dict):
        parts.append("<h2 id='melodies'>Melodies</h2>")
        parts.append(music_scores_section(evals))
        parts.append(melodies_section(run_dir))
    # ---- curves
    parts.append("<h2 id='training'>Training signals</h2>")
    alarm_steps = [float(a.get("step", 0)) for a in alarms]
    png = panel_figure(train_panels(train), [(name, train)], alarm_steps)
    parts.append(_img(png, "training curves") if png else "<p>No training line logged yet.</p>")
    parts.append("<h2 id='metrics'>Evaluation metrics</h2>")
    eval_keys = numeric_keys(evals)
    png = panel_figure([(k, [k], False) for k in eval_keys], [(name, evals)], alarm_steps, ncols=3)
    parts.append(_img(png, "evaluation curves") if png else
                 "<p>No evaluation logged (kind: eval lines) yet.</p>")
    # ---- protocols
    parts.append("<h2 id='protocols'>Metric protocols</h2>")
    protocols: dict[str, list[str]] = {}
    for ev in evals:
        if isinstance(ev.get("protocol"), dict):
            text = json.dumps(ev["protocol"], indent=2, sort_keys=True)
            keys = [k for k in ev if k not in SKIP]
            for k in keys:
                if k not in protocols.setdefault(text, []):
                    protocols[text].append(k)
    if protocols:
        for text, keys in protocols.items():
            parts.append(f"<p>for {html.escape(', '.join(keys))}:</p>"
                         f"<pre>{html.escape(text)}</pre>")
    else:
        parts.append("<p>No metric protocol logged.</p>")
    parts.append("<h2 id='config'>Resolved config</h2>")
    parts.append(f"<pre>{html.escape(cfg_text)}</pre>")
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(name)} - ganforge report</title><style>{CSS}</style></head>"
            f"<body>\n{body}\n</body></html>\n")


def write_report(run_dir: str | Path, out: str | Path | None = None,
                 extra_records: Sequence[dict[str, Any]] = ()) -> Path:
    """Write the run's report (default ``RUN/report.html``) atomically; returns its path."""
    text = build_report_html(run_dir, extra_records)
    out = Path(out) if out is not None else Path(run_dir) / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(out, text, encoding="utf-8")
