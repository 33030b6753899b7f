"""Does a conditional run's synthetic data help a classifier? ``ganforge augment RUN --validate``.

Augmentation with GAN samples helps only when the generator is good and diverse enough, so this
measures it on the user's own labelled data instead of assuming it:

1. Validation data the GAN never saw: the dataset's ``test`` split when the run trained on
   ``train``; otherwise a stratified 20 % of the training data (the GAN saw those, so the gain
   can be optimistic, and the report says so).
2. For each seed: a small classifier (two strided convolutions for images, an MLP otherwise)
   trained on the real training data alone: the baseline. The same classifier scores each
   synthetic sample; the *confidence filter* keeps those whose asked label it gives at least
   probability ``t`` (t = 0 keeps all).
3. For each real:synthetic ratio, filter and schedule: the classifier trained on real +
   synthetic (same seed, total steps and batch size) and its accuracy on the validation data.
   Schedules: ``mixed`` pools real and synthetic samples; ``synthetic-first`` trains the
   first half of the steps on the synthetic samples alone and the rest on the real data
   (pre-train, then fine-tune).

The report gives every setting's accuracy and gain over the baseline (mean and std over seeds),
the best setting, and plainly whether synthetic data helped: the best mean gain must exceed
its own spread across seeds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.data.registry import load_dataset, load_training_data
from ganforge.errors import DataError, GanforgeError

VAL_FRACTION = 0.2
SCHEDULES = ("mixed", "synthetic-first")


def small_classifier(shape: tuple[int, ...], classes: int) -> nn.Module:
    """Two stride-2 3x3 convolutions (32, 64) + dropout + linear for (C, H, W) images with
    H, W >= 8; a 256-256 MLP for anything else."""
    if len(shape) == 3 and min(shape[1:]) >= 8:
        c, h, w = shape
        return nn.Sequential(
            nn.Conv2d(c, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Dropout(0.3),
            nn.Linear(64 * math.ceil(math.ceil(h / 2) / 2) * math.ceil(math.ceil(w / 2) / 2),
                      classes))
    n = int(np.prod(shape))
    return nn.Sequential(nn.Flatten(), nn.Linear(n, 256), nn.ReLU(), nn.Linear(256, 256),
                         nn.ReLU(), nn.Linear(256, classes))


def train_classifier(x: torch.Tensor, y: torch.Tensor, classes: int, seed: int, steps: int,
                     batch_size: int = 64) -> nn.Module:
    """Adam 1e-3, ``steps`` minibatches drawn uniformly (with replacement) from (x, y)."""
    return train_in_phases([(x, y, steps)], classes, seed, batch_size)


def train_in_phases(phases: list[tuple[torch.Tensor, torch.Tensor, int]], classes: int,
                    seed: int, batch_size: int = 64) -> nn.Module:
    """One classifier and one Adam (1e-3) through ``phases``: for each (x, y, steps), ``steps``
    minibatches drawn uniformly (with replacement) from that phase's (x, y)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = small_classifier(tuple(phases[0][0].shape[1:]), classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for x, y, steps in phases:
        for _ in range(steps):
            idx = torch.randint(len(y), (batch_size,), generator=gen)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def schedule_phases(schedule: str, x_real: torch.Tensor, y_real: torch.Tensor,
                    x_syn: torch.Tensor, y_syn: torch.Tensor, steps: int
                    ) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    """The classifier's training phases for a schedule, ``steps`` minibatches in all (as the
    real-only baseline): ``mixed``: real and synthetic pooled; ``synthetic-first``: the first
    half on the synthetic samples alone, then the rest on the real data alone (pre-train on
    synthetic, fine-tune on real)."""
    if schedule == "mixed" or len(y_syn) == 0:
        return [(torch.cat([x_real, x_syn]), torch.cat([y_real, y_syn]), steps)]
    if schedule == "synthetic-first":
        return [(x_syn, y_syn, steps // 2), (x_real, y_real, steps - steps // 2)]
    raise GanforgeError(f"unknown schedule '{schedule}': use one of {', '.join(SCHEDULES)}.")


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    return torch.cat([F.softmax(model(x[i:i + batch]), 1) for i in range(0, len(x), batch)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict_proba(model, x).argmax(1) == y).float().mean())


def stratified_split(y: torch.Tensor, fraction: float, seed: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(fit indices, validation indices): ``fraction`` of every class (at least one) held out."""
    gen = torch.Generator().manual_seed(seed)
    fit, val = [], []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        k = max(1, round(fraction * len(idx))) if len(idx) > 1 else 0
        val.append(idx[:k])
        fit.append(idx[k:])
    return torch.cat(fit).sort().values, torch.cat(val).sort().values


def confidence_filter(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      threshold: float) -> torch.Tensor:
    """Mask of the synthetic samples to which the real-data classifier gives their asked label
    probability >= ``threshold``."""
    if threshold <= 0:
        return torch.ones(len(y), dtype=torch.bool)
    p = predict_proba(model, x)
    return p[torch.arange(len(y)), y] >= threshold


def take_per_class(keep: torch.Tensor, y: torch.Tensor, per_class: int) -> torch.Tensor:
    """Indices of the first ``per_class`` kept samples of every class (fewer where the filter
    kept fewer)."""
    out = [torch.nonzero(keep & (y == c)).flatten()[:per_class] for c in torch.unique(y).tolist()]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


@dataclass
class Setting:
    ratio: float
    threshold: float
    schedule: str = "mixed"
    accuracy: list[float] = field(default_factory=list)
    gain: list[float] = field(default_factory=list)
    synthetic: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {**asdict(self), "accuracy_mean": float(np.mean(self.accuracy)),
                "accuracy_std": float(np.std(self.accuracy)),
                "gain_mean": float(np.mean(self.gain)), "gain_std": float(np.std(self.gain))}


def validation_data(run: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                       str]:
    """(x_fit, y_fit, x_val, y_val, what the validation data is)."""
    cfg = run.config
    data = load_training_data(cfg)
    if data.y is None:
        raise DataError(f"'{cfg.data.source}' has no labels; --validate needs labelled data.")
    x, y = data.x.float(), torch.as_tensor(data.y).long()
    if cfg.data.split == "train":
        opts = dict(cfg.data.options)
        if cfg.data.image_size is not None:
            opts["image_size"] = tuple(cfg.data.image_size)
        try:
            test = load_dataset(cfg.data.source, split="test", **opts)
        except (GanforgeError, TypeError, ValueError):
            test = None
        if test is not None and test.y is not None and len(test) > 0:
            return (x, y, test.x.float(), torch.as_tensor(test.y).long(),
                    (f"the '{cfg.data.source}' test split ({len(test)} samples; the GAN never "
                    f"saw them)"))
    fit, val = stratified_split(y, VAL_FRACTION, seed=0)
    return (x[fit], y[fit], x[val], y[val],
            (f"a stratified {VAL_FRACTION:.0%} of the training data ({len(val)} samples; the "
            f"GAN trained on them, so the gain may be optimistic)"))


def validate_augmentation(run: Any, ratios: list[float], thresholds: list[float],
                          seeds: list[int], steps: int = 300,
                          schedules: tuple[str, ...] | list[str] = ("mixed",)) -> dict[str, Any]:
    """Baseline vs real + synthetic for every (ratio, threshold, schedule), over ``seeds``, on
    the run's own data (:func:`validation_data`)."""
    if not hasattr(run, "num_classes"):
        raise GanforgeError("--validate needs a conditional run (labels to ask the generator).")
    x_fit, y_fit, x_val, y_val, what = validation_data(run)
    return compare_augmentation(run, x_fit, y_fit, x_val, y_val, ratios, thresholds, seeds,
                                steps, schedules, what)


def check_settings(ratios: list[float], thresholds: list[float], seeds: list[int],
                   schedules: tuple[str, ...] | list[str]) -> None:
    if not ratios or any(r <= 0 for r in ratios):
        raise GanforgeError(f"--ratios must be positive numbers (synthetic per real sample), "
                            f"got {ratios}.")
    if any(not 0 <= t < 1 for t in thresholds):
        raise GanforgeError(f"--filters are probabilities in [0, 1), got {thresholds}.")
    if not seeds:
        raise GanforgeError("--seeds must name at least one seed.")
    bad = [s for s in schedules if s not in SCHEDULES]
    if not schedules or bad:
        raise GanforgeError(f"--schedules takes {', '.join(SCHEDULES)} (comma-separated), got "
                            f"{list(schedules)}.")


def compare_augmentation(run: Any, x_fit: torch.Tensor, y_fit: torch.Tensor,
                         x_val: torch.Tensor, y_val: torch.Tensor, ratios: list[float],
                         thresholds: list[float], seeds: list[int], steps: int = 300,
                         schedules: tuple[str, ...] | list[str] = ("mixed",),
                         what: str = "given validation data") -> dict[str, Any]:
    """For each seed: the small classifier on (x_fit, y_fit) alone (the baseline), then on
    real + ``run``'s samples for every (ratio, threshold, schedule), all scored on (x_val,
    y_val). The samples of a seed are drawn once (sampling seed = the seed) and shared by every
    setting, so settings differ only in what they keep and how they train."""
    check_settings(ratios, thresholds, seeds, schedules)
    k = int(run.num_classes)
    per_class = max(1, round(len(y_fit) / k))
    pool_per_class = math.ceil(max(ratios) * per_class)
    settings = [Setting(r, t, sch) for sch in schedules for r in ratios for t in thresholds]
    baseline: list[float] = []
    for seed in seeds:
        base = train_classifier(x_fit, y_fit, k, seed, steps)
        baseline.append(accuracy(base, x_val, y_val))
        ys = torch.arange(k).repeat_interleave(pool_per_class)
        xs = run.sample(len(ys), seed=seed, labels=ys).float()
        for s in settings:
            keep = confidence_filter(base, xs, ys, s.threshold)
            idx = take_per_class(keep, ys, math.ceil(s.ratio * per_class))
            model = train_in_phases(schedule_phases(s.schedule, x_fit, y_fit, xs[idx], ys[idx],
                                                    steps), k, seed)
            s.accuracy.append(accuracy(model, x_val, y_val))
            s.gain.append(s.accuracy[-1] - baseline[-1])
            s.synthetic.append(len(idx))
    rows = [s.summary() for s in settings]
    best = max(rows, key=lambda r: r["gain_mean"])
    helps = best["gain_mean"] > 0 and best["gain_mean"] > best["gain_std"]
    return {"validation": what, "real_train": len(y_fit), "seeds": list(seeds),
            "classifier_steps": steps, "baseline": baseline,
            "baseline_mean": float(np.mean(baseline)), "baseline_std": float(np.std(baseline)),
            "settings": rows, "best": best, "helps": bool(helps)}


def report_lines(result: dict[str, Any]) -> list[str]:
    """The table and verdict ``ganforge augment --validate`` prints."""
    lines = [f"validation: {result['validation']}",
             (f"real training samples: {result['real_train']}; classifier: "
             f"{result['classifier_steps']} steps; seeds {result['seeds']}"),
             (f"real only: accuracy {result['baseline_mean']:.4f} +- "
             f"{result['baseline_std']:.4f}"),
             (f"{'schedule':>15}  {'synthetic:real':>14}  {'filter':>6}  {'synthetic':>9}  "
             f"{'accuracy':>17}  {'gain':>17}")]
    for r in result["settings"]:
        lines.append(f"{r['schedule']:>15}  {r['ratio']:>14g}  {r['threshold']:>6g}  "
                     f"{int(np.mean(r['synthetic'])):>9d}  "
                     f"{r['accuracy_mean']:>8.4f} +- {r['accuracy_std']:.4f}  "
                     f"{r['gain_mean']:>+8.4f} +- {r['gain_std']:.4f}")
    b = result["best"]
    if result["helps"]:
        lines.append(f"synthetic data helps: best is ratio {b['ratio']:g}, filter "
                     f"{b['threshold']:g}, schedule {b['schedule']}: {b['gain_mean']:+.4f} +- "
                     f"{b['gain_std']:.4f} accuracy over real data alone.")
    else:
        lines.append(f"synthetic data does not help here: the best setting (ratio "
                     f"{b['ratio']:g}, filter {b['threshold']:g}, schedule {b['schedule']}) "
                     f"changes accuracy by {b['gain_mean']:+.4f} +- {b['gain_std']:.4f}. Train the GAN longer or "
                     f"with the small-data tricks (objective.diffaugment, objective.ema), or "
                     f"use the real data alone.")
    return lines


__all__ = ["SCHEDULES", "check_settings", "compare_augmentation", "confidence_filter",
           "report_lines", "schedule_phases", "small_classifier", "stratified_split",
           "train_classifier", "train_in_phases", "validate_augmentation", "validation_data"]
