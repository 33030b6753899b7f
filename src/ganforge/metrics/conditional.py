"""Per-class quality of a class-conditional generator.

- ``cas``: classification accuracy score, the fraction of samples generated for class k that
  a pretrained classifier (``mnist``) labels k (does G make a 7 when asked for a 7?).
- ``intra_fid``: the FID between generated and real samples of one class, computed in the
  extractor's feature space, averaged over the classes (Miyato & Koyama 2018). Per-class values
  are reported as ``intra_fid_per_class``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ganforge.errors import DataError
from ganforge.metrics.features import get_extractor
from ganforge.metrics.scores import frechet_distance, gaussian_stats
from ganforge.seeding import fork_rng, sample_latent

CONDITIONAL_METRICS = ("cas", "intra_fid")


def classification_accuracy(samples: torch.Tensor, labels: torch.Tensor,
                            classifier: Any = "mnist") -> tuple[float, np.ndarray]:
    """(overall accuracy, per-class accuracy) of ``classifier`` on samples asked as ``labels``."""
    clf = get_extractor(classifier)
    pred = clf.logits(samples).argmax(1).cpu()
    y = torch.as_tensor(labels).long().cpu()
    hit = (pred == y).float()
    k = int(y.max()) + 1
    per = np.array([float(hit[y == c].mean()) if bool((y == c).any()) else float("nan")
                    for c in range(k)])
    return float(hit.mean()), per


def intra_fid(fake_feats: np.ndarray, fake_labels: np.ndarray, real_feats: np.ndarray,
              real_labels: np.ndarray, num_classes: int) -> tuple[float, list[float]]:
    """Mean over classes of FID(fake of class k, real of class k) on given features."""
    per = []
    for c in range(num_classes):
        f, r = fake_feats[fake_labels == c], real_feats[real_labels == c]
        if len(f) < 2 or len(r) < 2:
            raise DataError(f"intra-FID needs at least 2 real and 2 generated samples of class "
                            f"{c} (got {len(r)} real, {len(f)} generated); raise --n.")
        per.append(frechet_distance(*gaussian_stats(f), *gaussian_stats(r)))
    return float(np.mean(per)), per


def conditional_scores(generate: Any, real_x: torch.Tensor, real_y: torch.Tensor,
                       metrics: list[str], num_classes: int, n: int, extractor: Any = "mnist",
                       seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """Score ``generate(labels) -> samples`` on n labels cycled over the classes."""
    ext = get_extractor(extractor)
    labels = torch.arange(n) % num_classes
    fake = generate(labels)
    out: dict[str, Any] = {}
    proto: dict[str, Any] = {"conditional_n": n, "conditional_labels": "0..K-1 cycled"}
    if "cas" in metrics:
        cas, per = classification_accuracy(fake, labels, ext)
        out["cas"] = cas
        out["cas_per_class"] = [round(float(v), 6) for v in per]
        proto["cas_classifier"] = f"{ext.name} (sha256 {ext.sha256[:16]})"
    if "intra_fid" in metrics:
        g = torch.Generator().manual_seed(seed)
        ry = torch.as_tensor(real_y).long().cpu()
        keep = []  # up to n / K real samples of each class
        for c in range(num_classes):
            idx = torch.nonzero(ry == c).flatten()
            idx = idx[torch.randperm(len(idx), generator=g)[:max(2, n // num_classes)]]
            keep.append(idx)
        idx = torch.cat(keep)
        rf = ext.features(real_x[idx.to(real_x.device)]).double().numpy()
        ff = ext.features(fake).double().numpy()
        mean, per_c = intra_fid(ff, labels.numpy(), rf, ry[idx].numpy(), num_classes)
        out["intra_fid"] = mean
        out["intra_fid_per_class"] = [round(float(v), 6) for v in per_c]
        proto["intra_fid_features"] = f"{ext.name} (sha256 {ext.sha256[:16]})"
        proto["intra_fid_real_per_class"] = max(2, n // num_classes)
    return out, proto


class ConditionalEvalCallback:
    """Logs ``cas`` / ``intra_fid`` (as an ``eval`` line) every ``monitor.eval_every`` steps on
    fixed latents, for runs of the ``conditional`` task."""

    def __init__(self, trainer: Any, num_classes: int) -> None:
        mon = trainer.cfg.monitor
        self.every = int(mon.eval_every)
        self.metrics = [m for m in CONDITIONAL_METRICS if m in mon.eval_metrics]
        self.n = int(mon.eval_n)
        self.k = num_classes
        self.seed = trainer.cfg.seed

        self.z = sample_latent(self.n, trainer.cfg.latent.full_shape,
                               trainer.cfg.latent.distribution,
                               torch.Generator().manual_seed(self.seed + 7_919), trainer.device)

    @torch.no_grad()
    def evaluate(self, trainer: Any) -> dict[str, Any]:
        G = trainer.sampling_generator
        was = G.training
        G.eval()

        def generate(labels: torch.Tensor) -> torch.Tensor:
            return torch.cat([G(self.z[i:i + 500], labels[i:i + 500].to(self.z.device))
                              .float().cpu() for i in range(0, len(labels), 500)])

        try:
            with fork_rng():
                scores, proto = conditional_scores(generate, trainer.data.x, trainer.data.y,
                                                   self.metrics, self.k, self.n, "mnist",
                                                   self.seed)
        finally:
            G.train(was)
        record = {"kind": "eval", "step": int(trainer.step), **scores,
                  "protocol": {"metrics": self.metrics, "fixed_latents": True, **proto}}
        trainer.log.write(record)
        return record

    def on_step(self, trainer: Any, stats: dict[str, Any]) -> None:
        if trainer.step % self.every == 0 or trainer.step == trainer.total_steps:
            self.evaluate(trainer)

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        """Training lines are left as they are."""

    def on_end(self, trainer: Any) -> None:
        """The last step was already evaluated in ``on_step``."""
