"""Health alarms: rules over the stream of metric-log records.

``HealthWatch.update(record)`` takes each ``train`` record (with the signals of
``MonitorCallback``) and ``HealthWatch.update_eval(record)`` each ``eval`` record; both return
the alarms that fire *for the first time*. Each alarm id fires at most once per run. Every
message says what the alarm means and which tricks usually help.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

# id -> (title, what it means and what usually helps)
ALARM_TEXT: dict[str, tuple[str, str]] = {
    "d_too_strong": (
        "discriminator too strong",
        ("D tells real from generated almost perfectly (mean D(G(z)) stayed near 0), so the "
         "generator gets vanishing or useless gradients and learns little. Try a lower D "
         "learning rate or fewer d_steps, one-sided label smoothing, instance noise, dropout "
         "or spectral norm in D, or the non-saturating / a Wasserstein loss."),
    ),
    "mode_collapse": (
        "mode collapse suspected",
        ("the samples of the fixed latent batch are far less diverse than real data (mean "
         "pairwise distance well below the real data's), so G maps many latents to the same "
         "few outputs. Try minibatch discrimination / minibatch stddev, packing (PacGAN), "
         "a Wasserstein loss with gradient penalty, unrolled or lower-lr D, or a restart with "
         "another seed."),
    ),
    "divergence": (
        "training diverged",
        ("a loss or gradient became NaN or infinite, so the weights are no longer usable. "
         "Lower the learning rates, add gradient clipping, a gradient penalty or spectral "
         "norm, or use full precision; resume from the last good checkpoint."),
    ),
    "no_progress": (
        "no progress",
        ("the evaluation metric has been flat or has not improved over a long window, so more "
         "steps of this run are unlikely to help. Try a learning-rate change (TTUR: D faster "
         "than G), a different loss, EMA of G's weights, or stop and keep the best checkpoint."),
    ),
}

# Eval metrics where higher is better; all others (fid, kid, ...) are lower-is-better.
HIGHER_IS_BETTER = ("is", "inception_score", "precision", "recall", "density", "coverage",
                    "modes", "high_quality", "f1", "accuracy")
# Numbers in eval records that describe the protocol or a spread, not a score to improve.
NOT_SCORES = ("modes_total", "kid_std", "is_std")


@dataclass
class Alarm:
    alarm: str
    step: int
    title: str
    message: str

    def record(self) -> dict[str, Any]:
        """The metric-log line of this alarm (``kind: alarm``)."""
        return {"kind": "alarm", **asdict(self)}

    def __str__(self) -> str:
        return f"[ganforge alarm at step {self.step}] {self.title}: {self.message}"


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


class HealthWatch:
    """Alarm rules with their windows.

    Parameters (from ``MonitorConfig``): ``window`` consecutive log records a condition must
    hold; ``warmup`` steps before the windowed alarms may fire; ``d_fake_floor`` (mean
    D(G(z)) below it counts as "near 0"); ``grad_drop`` (G's gradient norm below this fraction
    of its peak counts as collapsing); ``collapse_ratio`` (diversity / real diversity below it
    counts as collapsed); ``plateau_evals`` and ``plateau_tol`` for the eval-metric plateau.
    """

    def __init__(self, window: int = 4, warmup: int = 0, d_fake_floor: float = 0.05,
                 grad_drop: float = 0.1, collapse_ratio: float = 0.25, plateau_evals: int = 5,
                 plateau_tol: float = 0.01, probabilities: bool = True) -> None:
        self.window = window
        self.warmup = warmup
        self.d_fake_floor = d_fake_floor
        self.grad_drop = grad_drop
        self.collapse_ratio = collapse_ratio
        self.plateau_evals = plateau_evals
        self.plateau_tol = plateau_tol
        self.probabilities = probabilities
        self.fired: set[str] = set()
        self.strong: deque[bool] = deque(maxlen=window)
        self.collapsed: deque[bool] = deque(maxlen=window)
        self.g_grad_peak = 0.0
        self.evals: dict[str, list[float]] = {}

    def _fire(self, alarm_id: str, step: int, detail: str) -> list[Alarm]:
        if alarm_id in self.fired:
            return []
        self.fired.add(alarm_id)
        title, text = ALARM_TEXT[alarm_id]
        return [Alarm(alarm_id, step, title, f"{detail} {text}")]

    def update(self, rec: dict[str, Any]) -> list[Alarm]:
        step = int(rec.get("step", 0))
        out: list[Alarm] = []
        bad = [k for k in ("d_loss", "g_loss", "g_grad_norm", "d_grad_norm")
               if k in rec and not _finite(rec[k])]
        if bad:
            out += self._fire("divergence", step, f"{', '.join(bad)} is not finite at step "
                                                  f"{step}:")
            return out
        warm = step > self.warmup

        g_norm = rec.get("g_grad_norm")
        collapsing = False
        if _finite(g_norm):
            collapsing = self.g_grad_peak > 0 and g_norm < self.grad_drop * self.g_grad_peak
            self.g_grad_peak = max(self.g_grad_peak, float(g_norm))
        if self.probabilities and _finite(rec.get("d_fake")):
            # D(G(z)) near 0 and either G's gradient collapsing (saturating losses) or D(x)
            # near 1 (D separates perfectly; with the non-saturating loss G's gradient need
            # not vanish, but G still gets no useful signal).
            certain = _finite(rec.get("d_real")) and rec["d_real"] > 1 - self.d_fake_floor
            self.strong.append(rec["d_fake"] < self.d_fake_floor and (collapsing or certain))
            if warm and len(self.strong) == self.window and all(self.strong):
                why = (f"the G gradient norm fell to {g_norm:.3g} (< {self.grad_drop:g} x its "
                       f"peak {self.g_grad_peak:.3g})" if collapsing else
                       f"mean D(x) = {rec['d_real']:.3g} > {1 - self.d_fake_floor:g}")
                out += self._fire(
                    "d_too_strong", step,
                    f"mean D(G(z)) = {rec['d_fake']:.3g} < {self.d_fake_floor:g} and {why} "
                    f"for {self.window} log lines up to step {step}:")

        ratio = rec.get("diversity_ratio")
        if _finite(ratio):
            self.collapsed.append(ratio < self.collapse_ratio)
            if warm and len(self.collapsed) == self.window and all(self.collapsed):
                out += self._fire(
                    "mode_collapse", step,
                    f"sample diversity is {ratio:.3g} x the real data's (< "
                    f"{self.collapse_ratio:g}) for {self.window} log lines up to step {step}:")
        return out

    def update_eval(self, rec: dict[str, Any]) -> list[Alarm]:
        """Plateau of the eval metrics: no new best over ``plateau_evals`` evaluations, or a
        relative range below ``plateau_tol`` (flat)."""
        step = int(rec.get("step", 0))
        out: list[Alarm] = []
        for key, value in rec.items():
            if key in ("step", "kind", "time", "epoch", *NOT_SCORES) or isinstance(value, bool):
                continue
            if not _finite(value):
                continue
            if key == "modes" and _finite(rec.get("modes_total")) and value >= rec["modes_total"]:
                self.evals.pop(key, None)  # every mode covered: flat at the top is not stuck
                continue
            hist = self.evals.setdefault(key, [])
            hist.append(float(value))
            n = self.plateau_evals
            if len(hist) <= n:
                continue
            sign = 1.0 if key.lower() in HIGHER_IS_BETTER else -1.0
            before = max(sign * v for v in hist[:-n])
            recent = [sign * v for v in hist[-n:]]
            scale = max(abs(v) for v in hist[-n:]) or 1.0
            flat = (max(recent) - min(recent)) / scale < self.plateau_tol
            stuck = max(recent) <= before
            if flat or stuck:
                why = "flat" if flat else "not improved"
                out += self._fire("no_progress", step,
                                  f"eval metric '{key}' has been {why} over the last {n} "
                                  f"evaluations (best before: {sign * before:.4g}, last: "
                                  f"{hist[-1]:.4g}):")
        return out
