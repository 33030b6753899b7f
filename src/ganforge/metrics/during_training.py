"""Metrics while training: a Trainer callback driven by ``monitor.eval_every``.

Every ``eval_every`` steps (and at the last step) the generator, in eval mode, maps a *fixed*
set of ``eval_n`` latents (drawn once from its own ``torch.Generator``) to samples, which are
scored against ``eval_n`` real training samples (features cached on disk) with
``eval_metrics``. The scores go to ``metrics.jsonl`` as an ``eval`` line. With ``best_metric``
the checkpoint with the best score so far is kept in ``RUN/best/checkpoints/step_N`` (only the
newest best) and described in ``RUN/best/best.json``.

Evaluation never touches the training RNGs (global torch RNG, the latent generator, the data
order), so a run with evaluation trains exactly as the same run without it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from ganforge.checkpoint import list_checkpoints, save_checkpoint
from ganforge.errors import ConfigError, DataError
from ganforge.fileio import atomic_write_text
from ganforge.metrics.evaluate import DIRECTION, auto_extractor, parse_metrics, score_samples
from ganforge.metrics.features import get_extractor
from ganforge.metrics.reference import real_features
from ganforge.seeding import fork_rng, sample_latent

# Which --metrics entry produces each best_metric key.
PRODUCER = {"fid": "fid", "kid": "kid", "is": "is", "precision": "pr", "recall": "pr",
            "density": "dc", "coverage": "dc", "modes": "modes", "modes_kl": "modes",
            "reverse_kl": "modes", "high_quality": "modes"}
LATENT_SEED_OFFSET = 4  # trainer uses seed+1 (data), +2 (latents), +3 (sample grid)


class EvalCallback:
    def __init__(self, trainer: Any) -> None:
        cfg = trainer.cfg
        mon = cfg.monitor
        self.every = int(mon.eval_every)
        self.metrics = parse_metrics(mon.eval_metrics)
        self.best_metric = mon.best_metric
        if self.best_metric is not None:
            if self.best_metric not in PRODUCER:
                raise ConfigError(f"monitor.best_metric '{self.best_metric}' is not a score; use "
                                  f"one of {', '.join(PRODUCER)}.")
            if PRODUCER[self.best_metric] not in self.metrics:
                self.metrics.append(PRODUCER[self.best_metric])
        self.n = int(mon.eval_n)
        self.run_dir = Path(trainer.run_dir)
        self.best_dir = self.run_dir / "best"
        data = trainer.data
        self.data_kind, self.data_info = data.kind, data.info
        self.seed = cfg.seed

        with fork_rng():
            name = (auto_extractor(data.kind, data.shape) if mon.eval_extractor == "auto"
                    else mon.eval_extractor)
            self.extractor = get_extractor(name)
            options = dict(cfg.data.options)
            if cfg.data.image_size is not None:
                options["image_size"] = list(cfg.data.image_size)
            self.real_feats, _ = real_features(cfg.data.source, cfg.data.split, self.extractor,
                                               n=self.n, seed=cfg.seed, options=options,
                                               data=data.x)
        self.z = sample_latent(self.n, cfg.latent.full_shape, cfg.latent.distribution,
                               torch.Generator().manual_seed(cfg.seed + LATENT_SEED_OFFSET),
                               trainer.device)
        self.best_value: float | None = None
        self.best_step: int | None = None
        self._restored = False

    # ------------------------------------------------------------------ best checkpoint
    def _restore_best(self, resumed_step: int) -> None:
        """On (re)start, pick up RUN/best/best.json unless it is from after the resume point."""
        self._restored = True
        meta_path = self.best_dir / "best.json"
        if not meta_path.is_file():
            return
        try:
            meta = json.loads(meta_path.read_text())
            step, value, metric = int(meta["step"]), float(meta["value"]), meta["metric"]
        except (OSError, ValueError, KeyError, TypeError):
            return
        if step <= resumed_step and metric == self.best_metric:
            self.best_value, self.best_step = value, step
        else:  # a best from a replayed future, or another metric: start afresh
            shutil.rmtree(self.best_dir, ignore_errors=True)

    def _is_better(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value * DIRECTION[self.best_metric] > self.best_value * DIRECTION[self.best_metric]

    def _save_best(self, trainer: Any, value: float) -> None:
        path = save_checkpoint(self.best_dir, trainer.step, trainer.modules(), trainer.state())
        for old in list_checkpoints(self.best_dir):
            if old != path:
                shutil.rmtree(old, ignore_errors=True)
        atomic_write_text(self.best_dir / "best.json",
                          json.dumps({"metric": self.best_metric, "value": value,
                                      "step": trainer.step, "checkpoint": str(path)}))
        self.best_value, self.best_step = value, trainer.step

    # ------------------------------------------------------------------------- hooks
    @torch.no_grad()
    def generate(self, trainer: Any) -> torch.Tensor:
        G = trainer.sampling_generator  # the EMA generator when EMA is on
        was = G.training
        G.eval()
        try:
            outs = [G(self.z[i:i + 500]).float().cpu() for i in range(0, self.n, 500)]
        finally:
            G.train(was)
        return torch.cat(outs)

    def evaluate(self, trainer: Any) -> dict[str, Any]:
        with fork_rng():
            fake = self.generate(trainer)
            record: dict[str, Any] = {"kind": "eval", "step": int(trainer.step)}
            try:
                scores, proto = score_samples(fake, self.real_feats, self.metrics,
                                              self.extractor, data_kind=self.data_kind,
                                              data_info=self.data_info, seed=self.seed,
                                              kid_subsets=10)
            except DataError as exc:  # e.g. NaN samples: log it, let the trainer decide
                record.update(error=str(exc), protocol={"metrics": self.metrics})
                trainer.log.write(record)
                return record
        record.update(scores)
        record["protocol"] = {
            **self.extractor.describe(), "metrics": self.metrics,
            "real": {"dataset": trainer.cfg.data.source, "split": trainer.cfg.data.split,
                     "n": len(self.real_feats)},
            "n_real": len(self.real_feats), "n_fake": self.n, "seed": self.seed,
            "fixed_latents": True, "latent_seed": self.seed + LATENT_SEED_OFFSET, **proto}
        if self.best_metric is not None:
            value = float(scores[self.best_metric])
            if self._is_better(value):
                self._save_best(trainer, value)
                record["best"] = True
        trainer.log.write(record)
        return record

    def on_step(self, trainer: Any, stats: dict[str, Any]) -> None:
        if not self._restored:
            self._restore_best(trainer.step - 1)
        if trainer.step % self.every == 0 or trainer.step == trainer.total_steps:
            self.evaluate(trainer)

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        """Training lines are left as they are; evaluations are separate ``eval`` lines."""

    def on_end(self, trainer: Any) -> None:
        """The last step was already evaluated in ``on_step``."""
