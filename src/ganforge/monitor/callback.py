"""The monitoring callback the Trainer always attaches.

At every logging step it adds the health signals to the ``train`` record (gradient norms of G
and D, logit gap, Wasserstein estimate for critic losses, sample diversity of the fixed latent
batch against real data, learning rates), runs the alarm rules, prints and logs each alarm
once (``kind: alarm`` lines), writes TensorBoard events when available, refreshes
``report.html`` after each new evaluation and writes it at the end of training.

It never draws from the global random generator and never changes a module's state, so a
watched run trains exactly like an unwatched one (and resumes exactly).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.monitor.alarms import Alarm, HealthWatch
from ganforge.monitor.report import write_report
from ganforge.monitor.signals import (
    WASSERSTEIN_LOSSES,
    FeatureExtractor,
    get_feature_extractor,
    grad_norm,
    is_probability_loss,
    learning_rates,
    logit,
    mean_pairwise_distance,
)
from ganforge.monitor.tensorboard import TensorBoardWriter, tensorboard_available

SHORT = {"generator": "g", "discriminator": "d"}


def _echo(text: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(text, file=sys.stderr)


class MonitorCallback:
    """Health signals, alarms, TensorBoard and the report for one Trainer.

    ``cfg`` (the RunConfig) lets bad monitor settings fail at construction; ``features``
    overrides ``monitor.diversity_features`` with a function ``(N, *shape) -> (N, F)`` (e.g.
    a classifier's embedding); ``echo`` prints alarms (default: stderr).
    """

    def __init__(self, cfg: Any = None, features: FeatureExtractor | None = None,
                 echo: Any = None) -> None:
        if features is None and cfg is not None:
            # Resolve the extractor now, so a bad name fails before anything is written.
            features = get_feature_extractor(cfg.monitor.diversity_features)
        self.features = features
        self.echo = echo or _echo
        self.ready = False
        self.pending: dict[str, float] = {}
        self.alarms: list[Alarm] = []
        self.overhead_s = 0.0  # time spent in this callback (measured for the benchmark)
        self.tb: Any = None
        self.log_offset = 0  # bytes of metrics.jsonl already read for evaluations
        self.grids_sent: set[str] = set()

    # ------------------------------------------------------------------------ set-up
    def _setup(self, trainer: Any) -> None:
        cfg = trainer.cfg.monitor
        self.cfg = cfg
        self.loss_name = str(getattr(trainer.cfg.objective, "loss", ""))
        probs = trainer.task.probabilities  # declared by the task; None: judge by the loss name
        self.probabilities = probs if probs is not None else is_probability_loss(self.loss_name)
        self.watch = HealthWatch(window=cfg.alarm_window, warmup=cfg.alarm_warmup,
                                 d_fake_floor=cfg.d_fake_floor, grad_drop=cfg.grad_drop,
                                 collapse_ratio=cfg.collapse_ratio,
                                 plateau_evals=cfg.plateau_evals, plateau_tol=cfg.plateau_tol,
                                 probabilities=self.probabilities)
        self.extract = self.features or get_feature_extractor(cfg.diversity_features)
        self.real_ref: torch.Tensor | None = None
        self.real_div = float("nan")
        fixed_z = getattr(trainer, "fixed_z", None)
        data = getattr(trainer, "data", None)
        G = getattr(trainer, "sampling_generator", None)
        # Diversity needs a generator that maps the fixed latents to samples of the data's shape
        # (not CTGAN's z + condition vector, not a translator's image input).
        maps_latent = (fixed_z is not None and data is not None
                       and getattr(G, "in_shape", None) == tuple(fixed_z.shape[1:])
                       and getattr(G, "out_shape", None) == tuple(data.shape)
                       and getattr(G, "in_shape", None) != getattr(G, "out_shape", None))
        if maps_latent and len(data) >= 2:
            n = min(int(fixed_z.shape[0]), len(data))
            gen = torch.Generator().manual_seed(trainer.cfg.seed + 4)
            idx = torch.randperm(len(data), generator=gen)[:n].to(data.x.device)
            self.real_ref = data.x.index_select(0, idx)
            with torch.no_grad():
                self.real_div = mean_pairwise_distance(self.extract(self.real_ref))
        # Resume: replay the kept log so windows, peaks and fired alarms continue.
        kept, self.log_offset = trainer.log.read_from(0)
        for rec in kept:
            kind = rec.get("kind")
            if kind == "train":
                self.watch.update(rec)
            elif kind == "alarm":
                self.watch.fired.add(str(rec.get("alarm")))
            elif kind == "eval":
                self.watch.update_eval(rec)
        if cfg.tensorboard and tensorboard_available():
            self.tb = TensorBoardWriter(trainer.run_dir / "tensorboard")
        self.ready = True

    def _is_log_step(self, trainer: Any) -> bool:
        return trainer.step % self.cfg.log_every == 0 or trainer.step == trainer.total_steps

    # ------------------------------------------------------------------------- hooks
    def on_step(self, trainer: Any, stats: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        if not self.ready:
            self._setup(trainer)
        if self._is_log_step(trainer):
            # Gradients of the last D and G updates are still in p.grad here.
            for name, module in trainer.modules().items():
                norm = grad_norm(module.parameters())
                if norm is not None:
                    self.pending[f"{SHORT.get(name, name)}_grad_norm"] = norm
        self.overhead_s += time.perf_counter() - t0

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        if not self.ready:
            self._setup(trainer)
        step = int(record["step"])
        record.update(self.pending)
        self.pending = {}
        self._add_signals(trainer, record)
        fresh: list[Alarm] = []
        if self.cfg.alarms:
            fresh += self.watch.update(record)
        new_evals = self._read_new_evals(trainer)
        if self.cfg.alarms:
            for ev in new_evals:
                fresh += self.watch.update_eval(ev)
        for alarm in fresh:
            self._raise(trainer, alarm)
        if self.tb is not None:
            self._write_tensorboard(trainer, record, new_evals, step)
        diverged = any(not _finite(record.get(k)) for k in ("d_loss", "g_loss"))
        if self.cfg.report and (new_evals or diverged):
            # Refreshed at each evaluation; on divergence the trainer stops right after this
            # hook, so the report is written now with this (not yet logged) record.

            write_report(trainer.run_dir, extra_records=[record])
        self.overhead_s += time.perf_counter() - t0

    def on_end(self, trainer: Any) -> None:
        t0 = time.perf_counter()
        if not self.ready:
            self._setup(trainer)
        if self.tb is not None:
            self._send_grids(trainer)
            self.tb.close()
            self.tb = None
        if self.cfg.report:
            write_report(trainer.run_dir)
        self.overhead_s += time.perf_counter() - t0

    # ----------------------------------------------------------------------- signals
    def _add_signals(self, trainer: Any, record: dict[str, Any]) -> None:
        d_real, d_fake = record.get("d_real"), record.get("d_fake")
        if "real_logit" in record and "fake_logit" in record:
            record["logit_gap"] = record["real_logit"] - record["fake_logit"]
        elif _finite(d_real) and _finite(d_fake):
            record["logit_gap"] = (logit(d_real) - logit(d_fake) if self.probabilities
                                   else d_real - d_fake)
        if self.loss_name in WASSERSTEIN_LOSSES and _finite(d_real) and _finite(d_fake):
            # The critic's estimate of W1(P_real, P_G): E[D(x)] - E[D(G(z))].
            record["wasserstein"] = d_real - d_fake
        record.update(learning_rates(trainer.task.optimizers()))
        if self.real_ref is not None:
            samples = trainer.sample_fixed()
            self._last_samples = samples
            with torch.no_grad():
                feats = self.extract(samples)
            div = (mean_pairwise_distance(feats) if bool(torch.isfinite(feats).all())
                   else float("nan"))
            record["diversity"] = div
            record["diversity_real"] = self.real_div
            record["diversity_ratio"] = div / self.real_div if self.real_div > 0 else float("nan")

    def _read_new_evals(self, trainer: Any) -> list[dict[str, Any]]:
        """Evaluation records logged since the last call (read incrementally, not the whole
        log at every log step)."""
        records, self.log_offset = trainer.log.read_from(self.log_offset)
        new = [r for r in records if r.get("kind") == "eval"]
        return new

    def _raise(self, trainer: Any, alarm: Alarm) -> None:
        self.alarms.append(alarm)
        self.echo(str(alarm))
        trainer.log.write(alarm.record())
        if self.tb is not None:
            self.tb.text(f"alarm/{alarm.alarm}", alarm.message, alarm.step)

    # ------------------------------------------------------------------- tensorboard
    def _write_tensorboard(self, trainer: Any, record: dict[str, Any],
                           evals: list[dict[str, Any]], step: int) -> None:
        self.tb.scalars("train", record, step)
        for ev in evals:
            self.tb.scalars("eval", ev, int(ev.get("step", step)))
        samples = getattr(self, "_last_samples", None)
        D = trainer.D
        # D's output histograms only where D reads samples as they are (not packed, not paired
        # input+target stacks as in pix2pix, not latent codes as in TimeGAN).
        if (samples is not None and self.real_ref is not None
                and getattr(D, "in_shape", None) == tuple(samples.shape[1:])
                and tuple(self.real_ref.shape[1:]) == tuple(samples.shape[1:])):
            was = D.training
            D.eval()
            with torch.no_grad():
                fake_out = D(samples)
                real_out = D(self.real_ref)
            D.train(was)
            self.tb.histogram("d_output/real", real_out, step)
            self.tb.histogram("d_output/fake", fake_out, step)
        self._send_grids(trainer)

    def _send_grids(self, trainer: Any) -> None:
        from PIL import Image

        for path in sorted(Path(trainer.run_dir, "samples").glob("step_*.png")):
            if path.name in self.grids_sent:
                continue
            self.grids_sent.add(path.name)
            try:
                step = int(path.stem.split("_")[1])
            except (IndexError, ValueError):
                continue
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
            self.tb.image("samples", arr, step)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
