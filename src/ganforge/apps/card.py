"""``MODEL_CARD.md`` for a run: data, architecture, training budget and time, final metrics with
the protocol they were computed under, and known limits (health alarms raised in training).

Everything comes from the run directory: ``config.yaml``, the checkpoints and ``metrics.jsonl``
(schema in ``ganforge.monitor.log``: ``kind: train`` lines with ``time`` in seconds since the
start of that training process, ``kind: eval`` lines with metric values as top-level keys and a
``protocol`` dict, ``kind: alarm`` lines with ``alarm`` (an id) and ``message``). The card
states what the log does not hold rather than guessing.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganforge import checkpoint as ckpt
from ganforge.api import read_run_config
from ganforge.apps.export import has_ema
from ganforge.architecture import build_network, count_params, summary
from ganforge.errors import GanforgeError
from ganforge.fileio import atomic_write_text
from ganforge.monitor.log import read_log

CARD_NAME = "MODEL_CARD.md"
NOT_METRICS = {"step", "kind", "protocol", "time", "epoch", "split", "checkpoint", "weights"}


@dataclass
class TrainingSummary:
    steps: int = 0
    epoch: float | None = None
    seconds: float = 0.0
    sessions: int = 0
    images_per_s: float | None = None
    last: dict[str, Any] = field(default_factory=dict)


@dataclass
class AlarmSummary:
    alarm: str
    count: int
    first_step: int
    last_step: int
    message: str


def summarize_training(records: list[dict[str, Any]]) -> TrainingSummary:
    """Steps, epochs and wall time from ``kind: train`` lines, in file order. ``time`` restarts
    from 0 when a run is resumed, so each drop starts a new session and the total is the sum of
    each session's last time."""
    train = [r for r in records if r.get("kind") == "train"]
    s = TrainingSummary()
    if not train:
        return s
    prev: float | None = None
    total = 0.0
    sessions = 0
    speeds = []
    for r in train:
        t = r.get("time")
        if isinstance(t, (int, float)):
            if prev is None or t < prev:
                if prev is not None:
                    total += prev
                sessions += 1
            prev = float(t)
        ips = r.get("images_per_s")
        if isinstance(ips, (int, float)) and math.isfinite(ips):
            speeds.append(float(ips))
    if prev is not None:
        total += prev
    s.steps = max(int(r.get("step", 0)) for r in train)
    s.epoch = train[-1].get("epoch")
    s.seconds = total
    s.sessions = sessions
    s.images_per_s = sum(speeds) / len(speeds) if speeds else None
    s.last = train[-1]
    return s


def eval_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The metric values of one ``kind: eval`` line (numeric top-level keys)."""
    return {k: float(v) for k, v in record.items()
            if k not in NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool)}


def final_metrics(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each metric, its last recorded value with the step and protocol of that line."""
    latest: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.get("kind") != "eval":
            continue
        for k, v in eval_metrics(r).items():
            latest[k] = {"metric": k, "value": v, "step": int(r.get("step", 0)),
                         "protocol": r.get("protocol") or {}}
    return list(latest.values())


def summarize_alarms(records: list[dict[str, Any]]) -> list[AlarmSummary]:
    out: dict[str, AlarmSummary] = {}
    for r in records:
        if r.get("kind") != "alarm":
            continue
        name = str(r.get("alarm", "unnamed"))
        step = int(r.get("step", 0))
        msg = str(r.get("message", ""))
        if name in out:
            a = out[name]
            a.count += 1
            a.first_step = min(a.first_step, step)
            if step >= a.last_step:
                a.last_step, a.message = step, msg
        else:
            out[name] = AlarmSummary(name, 1, step, step, msg)
    return sorted(out.values(), key=lambda a: a.first_step)


# ------------------------------------------------------------------------------ formatting
def fmt_number(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int) or float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4g}"


def fmt_duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min {s:02d} s" if h else f"{m} min {s:02d} s"


def fmt_protocol(protocol: Any) -> str:
    if not protocol:
        return "not recorded"
    if isinstance(protocol, dict):
        return ", ".join(f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}"
                         for k, v in protocol.items())
    return str(protocol)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# ---------------------------------------------------------------------------------- render
def render_card(run_dir: str | Path) -> str:
    """The text of a run's model card."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    records = read_log(run_dir / "metrics.jsonl")
    G = build_network(cfg.generator.model_dump(), cfg.latent.full_shape, "generator")
    data_shape = G.out_shape
    D = build_network(cfg.discriminator.model_dump(), data_shape, "discriminator")
    ckpts = [p for p in ckpt.list_checkpoints(run_dir) if (p / "state.json").is_file()]
    tr = summarize_training(records)
    metrics = final_metrics(records)
    alarms = summarize_alarms(records)
    shape_txt = "x".join(str(s) for s in data_shape)
    kind = {3: "images", 2: "sequences"}.get(len(data_shape), "vectors")

    L: list[str] = [f"# Model card: {cfg.name}", ""]
    if cfg.description:
        L += [cfg.description, ""]
    L += [f"- Run directory: `{run_dir}`",
          f"- Task: {cfg.task} (a generator maps a latent to a sample)",
          f"- Card written: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", ""]

    L += ["## Data", "",
          f"- Source: `{cfg.data.source}`, split `{cfg.data.split}`",
          f"- Samples: {kind} of shape {shape_txt}"]
    if cfg.data.options:
        L.append(f"- Options: {fmt_protocol(cfg.data.options)}")
    if kind == "images":
        L.append("- Generated images are in [-1, 1] when the generator ends in tanh "
                 "(pixels = (x + 1) * 127.5).")
    L.append("")

    L += ["## Architecture", "",
          (f"- Latent: {list(cfg.latent.full_shape)}, {cfg.latent.distribution} "
          f"({'N(0, I)' if cfg.latent.distribution == 'normal' else 'U(-1, 1)'})"),
          f"- Generator: {len(G.plans)} layers, {count_params(G):,} parameters",
          f"- Discriminator: {len(D.plans)} layers, {count_params(D):,} parameters",
          f"- Objective: {cfg.objective.loss} loss",
          f"- Optimizers: G {_opt(cfg.optim.g)}; D {_opt(cfg.optim.d)}", "",
          "```", summary(G), "", summary(D), "```", ""]

    L += ["## Training", ""]
    budget = (f"{cfg.train.steps:,} generator steps" if cfg.train.steps is not None
              else f"{fmt_number(cfg.train.epochs)} epochs")
    L += [(f"- Budget: {budget}, batch size {cfg.train.batch_size}, "
          f"{cfg.train.d_steps} discriminator step(s) per generator step, seed {cfg.seed}")]
    if tr.sessions:
        images = tr.steps * cfg.train.batch_size * cfg.train.d_steps
        L += [f"- Done: {tr.steps:,} generator steps"
              + (f" (epoch {fmt_number(tr.epoch)})" if tr.epoch is not None else "")
              + f", about {images:,} real samples seen by the discriminator",
              f"- Training time: {fmt_duration(tr.seconds)}"
              + (f" ({tr.seconds:.1f} s)" if tr.seconds >= 60 else "")
              + f" over {tr.sessions} session(s)"
              + (f"; mean {fmt_number(tr.images_per_s)} images/s" if tr.images_per_s else ""),
              "- Last logged losses: " + ", ".join(
                  f"{k} {fmt_number(tr.last.get(k))}"
                  for k in ("d_loss", "g_loss", "d_real", "d_fake") if k in tr.last)]
    else:
        L.append("- No training lines in metrics.jsonl: the run has not been trained, or its "
                 "log was removed.")
    if ckpts:
        last = ckpts[-1]

        L.append(f"- Latest checkpoint: `{last.name}`"
                 + (" (holds EMA generator weights, used by `ganforge export`)"
                    if has_ema(last) else ""))
    else:
        L.append("- No checkpoint yet.")
    L.append("")

    L += ["## Final metrics", ""]
    if metrics:
        L += ["| metric | value | step | protocol |", "|---|---|---|---|"]
        for m in metrics:
            L.append(f"| {_cell(m['metric'])} | {fmt_number(m['value'])} | {m['step']:,} | "
                     f"{_cell(fmt_protocol(m['protocol']))} |")
        evals = [r for r in records if r.get("kind") == "eval"]
        if len(evals) > 1:
            names = [m["metric"] for m in metrics]
            L += ["", "History:", "", "| step | " + " | ".join(names) + " |",
                  "|---" * (len(names) + 1) + "|"]
            for r in evals:
                vals = eval_metrics(r)
                L.append(f"| {int(r.get('step', 0)):,} | "
                         + " | ".join(fmt_number(vals.get(n)) for n in names) + " |")
    else:
        L.append("No evaluation was recorded (no `kind: eval` lines in metrics.jsonl). Quality "
                 "of this model is unmeasured.")
    L.append("")

    L += ["## Known limits", ""]
    if alarms:
        L += [f"{len(alarms)} kind(s) of health alarm were raised during training:", "",
              "| alarm | times | first step | last step | last message |",
              "|---|---|---|---|---|"]
        for a in alarms:
            L.append(f"| {_cell(a.alarm)} | {a.count} | {a.first_step:,} | {a.last_step:,} | "
                     f"{_cell(a.message)} |")
    else:
        L.append("- No health alarm is recorded in metrics.jsonl (if health monitoring was off, "
                 "this says nothing about training health).")
    for k in ("d_loss", "g_loss"):
        if tr.sessions and k in tr.last and tr.last[k] is None:
            L.append(f"- The last logged {k} is not finite: training diverged.")
    if cfg.train.steps is not None and tr.sessions and tr.steps < cfg.train.steps:
        L.append(f"- Training stopped at step {tr.steps:,} of {cfg.train.steps:,} planned.")
    L += [(f"- The model generates {kind} like its training data (`{cfg.data.source}`) only; "
          f"it inherits that data's biases and cannot produce what the data lacks."), ""]

    L += ["## Use", "", "```",
          f"ganforge sample {run_dir} -n 64 --out samples.png [--truncation 0.7]",
          f"ganforge interpolate {run_dir} --steps 10 --pairs 8 --out walk.png",
          f"ganforge export {run_dir} --format onnx --out generator.onnx",
          "```", ""]
    return "\n".join(L)


def _opt(o: Any) -> str:
    text = f"{o.name} lr {o.lr:g}"
    if o.name == "adam":
        text += f", betas ({o.betas[0]:g}, {o.betas[1]:g})"
    return text


def write_card(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the card (default ``RUN_DIR/MODEL_CARD.md``) atomically; return its path."""
    text = render_card(run_dir)
    path = Path(out) if out is not None else Path(run_dir) / CARD_NAME
    if path.is_dir():
        raise GanforgeError(f"--out '{path}' is a directory; give a file name such as "
                            f"{path / CARD_NAME}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, text)
