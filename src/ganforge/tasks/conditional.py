"""The ``conditional`` task: class-conditional GANs (cGAN, projection discriminator, AC-GAN).

The step is the shared G/D step of ``tasks/unconditional.py`` (``GeneratorDiscriminatorTask``)
with the conditioning hooks filled in: ``d_steps`` D updates on (real x, real y) against
(G(z, y_fake), y_fake) with ``y_fake`` uniform over the classes, then one G update on the last
D step's fakes. The loss, label smoothing, instance noise, DiffAugment, gradient penalty, R1,
R2, clipping and EMA are the shared pieces of ``ganforge.objectives``; AC-GAN adds
``aux_weight`` x cross-entropy of the class head on real and fake samples to D's loss and on
fake samples to G's loss; TAC-GAN's twin head (``conditioning.twin``) learns the fake samples'
labels in D's loss and its cross-entropy is subtracted from G's. The gradient
penalty and R1 differentiate D(., y_real). Packing and feature matching are not supported here.

Fake labels are drawn from the trainer's latent generator, which checkpoints record, so a
resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.architecture.conditioning import build_conditional_networks, cycle_labels
from ganforge.errors import ConfigError, GanforgeError
from ganforge.metrics.conditional import ConditionalEvalCallback
from ganforge.monitor.images import image_grid, save_samples_picture
from ganforge.objectives.compat import check_objective
from ganforge.run import Run
from ganforge.tasks.base import TaskContext
from ganforge.tasks.unconditional import GeneratorDiscriminatorTask

Batch = tuple[torch.Tensor, torch.Tensor | None]


def check_labels(cfg: Any, y: torch.Tensor | None, source: str) -> None:
    """Labelled data whose labels fit ``conditioning.num_classes`` (else a ConfigError)."""
    if y is None:
        raise ConfigError(f"dataset '{source}' has no labels, but the config asks for a "
                          f"conditional model (conditioning.method: "
                          f"{cfg.conditioning.method}). Use a labelled dataset (e.g. mnist), "
                          f"or train an unconditional model (drop the conditioning section "
                          f"and set task: unconditional).")
    if y.dtype.is_floating_point or y.dim() != 1:
        raise ConfigError(f"dataset '{source}' labels must be one integer class per sample "
                          f"for conditioning, got {tuple(y.shape)} {y.dtype}.")
    k = cfg.conditioning.num_classes
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= k:
        raise ConfigError(f"dataset '{source}' has labels {lo}..{hi}, but "
                          f"conditioning.num_classes is {k}; set conditioning.num_classes="
                          f"{hi + 1}.")


class ConditionalTask(GeneratorDiscriminatorTask):
    name = "conditional"

    @classmethod
    def check(cls, cfg: Any, data_shape: tuple[int, ...] | None) -> None:
        """The objective's rules; the networks are checked when built from the labelled data."""
        check_objective(cfg, data_shape)
        o = cfg.objective
        if o.packing != 1 or o.feature_matching != "off":
            raise ConfigError("task 'conditional' does not support objective.packing or "
                              "objective.feature_matching; set packing: 1 and "
                              "feature_matching: off.")
        c = cfg.conditioning
        if c.mismatch and c.method == "acgan":
            raise ConfigError("conditioning.mismatch shows D real samples with wrong labels, "
                              "but an AC-GAN D's real/fake logit does not see the label (its "
                              "class head does: aux_weight); use method cgan or projection, "
                              "or set mismatch: false.")
        if c.twin and c.method != "acgan":
            raise ConfigError(f"conditioning.twin adds TAC-GAN's twin classifier to an AC-GAN "
                              f"D's class head, but conditioning.method is '{c.method}', which "
                              f"has no class head; set method: acgan or remove twin.")
        if not c.mismatch and c.mismatch_share != 0.5:
            raise ConfigError("conditioning.mismatch_share is set but conditioning.mismatch "
                              "is false, so it would be ignored; set mismatch: true or remove "
                              "mismatch_share.")

    @classmethod
    def build_networks(cls, ctx: TaskContext) -> tuple[nn.Module, nn.Module]:
        check_labels(ctx.cfg, ctx.data.y, ctx.cfg.data.source)
        return build_conditional_networks(ctx.cfg, ctx.data.shape)

    @classmethod
    def build_modules(cls, cfg: Any, data_shape: tuple[int, ...]) -> dict[str, nn.Module]:
        G, D = build_conditional_networks(cfg, tuple(data_shape))
        return {"generator": G, "discriminator": D}

    def __init__(self, ctx: TaskContext) -> None:
        super().__init__(ctx)
        c = ctx.cfg.conditioning
        self.label_gen: torch.Generator = ctx.latent_gen
        self.num_classes = int(c.num_classes)
        self.acgan = c.method == "acgan"
        self.aux_weight = float(c.aux_weight)
        self.aux_fake = bool(c.aux_fake)
        self.twin = bool(c.twin)
        self.mismatch = bool(c.mismatch)
        self.mismatch_share = float(c.mismatch_share)

    def callbacks(self, ctx: TaskContext) -> list[Any]:
        mon = ctx.cfg.monitor
        if mon.eval_every and any(m in mon.eval_metrics for m in ("cas", "intra_fid")):
            return [ConditionalEvalCallback(ctx, self.num_classes)]
        return []

    # the conditioning hooks of the shared G/D step (tasks/unconditional.py)
    def real_batch(self, next_batch: Callable[[], Batch]
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
        real, y = next_batch()
        return real, y.long()

    def fake_labels(self, n: int, device: torch.device) -> torch.Tensor:
        """Uniform over the classes, from the checkpointed latent generator."""
        return torch.randint(self.num_classes, (n,), generator=self.label_gen).to(device)

    def generate(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.G(z, y)

    def discriminate(self, x: torch.Tensor, y: torch.Tensor | None, features: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        logits, cls = self.D(x, y)
        return logits, cls, None

    def negatives(self, fake_logits: torch.Tensor, real_in: torch.Tensor,
                  y: torch.Tensor | None) -> torch.Tensor:
        """``conditioning.mismatch``: D's fake term also covers the real batch shown with a
        wrong label (each label shifted by 1..K-1, from the checkpointed label generator), as
        GAN-CLS's matching-aware D (Reed et al. 2016): the loss's fake half becomes the mean
        of the two, so D must check that image and label agree, not only that the image is
        real. ``mismatch_share`` s < 0.5 shows only the first m = n*s/(1-s) real samples
        with a wrong label, so they make up the share s of the fake half."""
        if not self.mismatch:
            return fake_logits
        n = real_in.shape[0]
        s = self.mismatch_share
        m = n if s == 0.5 else max(1, min(n, round(n * s / (1.0 - s))))
        shift = torch.randint(1, self.num_classes, (m,),
                              generator=self.label_gen).to(real_in.device)
        wrong_logits, _, _ = self.discriminate(real_in[:m], (y[:m] + shift) % self.num_classes)
        return torch.cat([fake_logits, wrong_logits])

    def d_class_terms(self, d_loss: torch.Tensor, real_cls: torch.Tensor | None,
                      fake_cls: torch.Tensor | None, y: torch.Tensor | None,
                      yf: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """AC-GAN: ``aux_weight`` x the class head's cross-entropy on real samples, plus on
        fake samples unless ``conditioning.aux_fake`` is false; with ``twin``, plus the twin
        head's cross-entropy on fake samples (it learns what G makes of each label)."""
        if not self.acgan:
            return d_loss, {}
        k = self.num_classes
        aux = F.cross_entropy(real_cls[:, :k], y)
        if self.aux_fake:
            aux = aux + F.cross_entropy(fake_cls[:, :k], yf)
        stats = {"aux_acc_real": (real_cls[:, :k].detach().argmax(1) == y).float().mean()}
        if self.twin:
            twin = F.cross_entropy(fake_cls[:, k:], yf)
            aux = aux + twin
            stats["twin_loss"] = twin.detach()
        return d_loss + self.aux_weight * aux, {"aux_loss": aux.detach(), **stats}

    def g_class_terms(self, g_loss: torch.Tensor, g_cls: torch.Tensor | None,
                      yf: torch.Tensor | None) -> torch.Tensor:
        """AC-GAN: G pays the class head's cross-entropy of its labels; with ``twin`` it gains
        the twin head's (TAC-GAN: the two together are G's share of a divergence between the
        real and generated class-conditional distributions, not a reward for easy samples)."""
        if not self.acgan:
            return g_loss
        k = self.num_classes
        aux = F.cross_entropy(g_cls[:, :k], yf)
        if self.twin:
            aux = aux - F.cross_entropy(g_cls[:, k:], yf)
        return g_loss + self.aux_weight * aux

    def save_samples(self, trainer: Any) -> Path:
        """A class-by-row grid: row k holds class k, from the fixed latents."""
        k = self.num_classes
        per = max(1, trainer.fixed_z.shape[0] // k)
        z = trainer.fixed_z[:per].repeat(k, *([1] * (trainer.fixed_z.dim() - 1)))
        labels = torch.arange(k, device=z.device).repeat_interleave(per)
        G = self.sampling_generator
        was = G.training
        G.eval()
        with torch.no_grad():
            x = G(z, labels)
        G.train(was)
        path = trainer.run_dir / "samples" / f"step_{trainer.step:08d}.png"
        if trainer.data.kind == "image":
            path.parent.mkdir(parents=True, exist_ok=True)
            image_grid(x, nrow=per, scale=2).save(path)
            return path
        return save_samples_picture(x, path, trainer.data.kind)


# ---------------------------------------------------------------------------- loaded runs
class ConditionalRun(Run):
    """A trained class-conditional run: ``sample(n, labels=...)``."""

    @property
    def num_classes(self) -> int:
        return int(self.config.conditioning.num_classes)

    def labels_for(self, n: int, labels: Any = None) -> torch.Tensor:
        """n labels: None = the cycle 0..K-1, an int = all that class, or a sequence."""
        k = self.num_classes
        if labels is None:
            return cycle_labels(n, k)
        if isinstance(labels, int):
            y = torch.full((n,), labels, dtype=torch.long)
        else:
            y = torch.as_tensor(labels).long().reshape(-1).cpu()  # labels given on a GPU too
            if y.numel() != n:
                raise GanforgeError(f"got {y.numel()} labels for {n} samples; give one "
                                    f"label per sample or a single class.")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
            raise GanforgeError(f"labels must be classes 0..{k - 1}, got "
                                f"{int(y.min())}..{int(y.max())}.")
        return y

    @torch.no_grad()
    def generate(self, z: torch.Tensor, batch_size: int = 512,
                 labels: torch.Tensor | None = None) -> torch.Tensor:
        self.generator.eval()
        y = cycle_labels(z.shape[0], self.num_classes) if labels is None else labels
        outs = [self.generator(z[i:i + batch_size].to(self.device),
                               y[i:i + batch_size].to(self.device)).float().cpu()
                for i in range(0, z.shape[0], batch_size)]
        return torch.cat(outs) if outs else torch.empty(0, *self.data_shape)

    def sample(self, n: int, seed: int = 0, truncation: float | None = None,
               truncation_method: str = "scale", labels: Any = None,
               rejection: str | None = None) -> torch.Tensor:
        """n samples of the given labels (int, sequence, or None for 0..K-1 cycled).
        ``rejection`` (default: the config's ``sampling.rejection``) filters each class's
        candidates by D's score of them *for that class* (:meth:`_scored`), with a threshold
        of its own per class, so a sample D finds off-label is dropped and every class keeps
        its count."""
        if n < 1:
            raise GanforgeError(f"the number of samples must be >= 1, got {n}.")
        y = self.labels_for(n, labels)
        self.last_rejection = None
        method = self.rejection_method(rejection)
        if method == "none":
            return self.generate(self._latents(n, seed, truncation, truncation_method),
                                 labels=y)
        out = torch.empty(n, *self.data_shape)
        records = []
        for c in y.unique().tolist():
            at = torch.nonzero(y == c).flatten()
            out[at] = self._rejection(method, len(at), seed, truncation, truncation_method,
                                      label=int(c))
            records.append({"label": int(c), **self.last_rejection})
        drawn = sum(r["candidates"] for r in records)
        self.last_rejection = {"method": method, "candidates": drawn,
                               "acceptance": sum(r["acceptance"] * r["candidates"]
                                                 for r in records) / drawn,
                               "per_label": records}
        return out

    @torch.no_grad()
    def _scored(self, z: torch.Tensor, label: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidates of class ``label`` and D's score of each for that class: the logit of
        D(x, label) (cgan, projection); for AC-GAN, the real/fake logit plus the class head's
        log-probability of ``label``."""
        y = torch.full((z.shape[0],), int(label), dtype=torch.long)
        x = self.generate(z, labels=y)
        scores = []
        for i in range(0, len(x), 1024):
            logit, cls = self.discriminator(x[i:i + 1024].to(self.device),
                                            y[i:i + 1024].to(self.device))
            s = logit.float().reshape(-1)
            if cls is not None:
                s = s + F.log_softmax(cls[:, :self.num_classes].float(), 1)[:, int(label)]
            scores.append(s.cpu())
        return x, torch.cat(scores)

    def grid_by_class(self, per_class: int = 8, seed: int = 0) -> torch.Tensor:
        """K * per_class samples, class k in row k, the same latents in every row."""
        z = self.latent(per_class, seed).repeat(self.num_classes, 1)
        y = torch.arange(self.num_classes).repeat_interleave(per_class)
        return self.generate(z, labels=y)


ConditionalTask.run_class = ConditionalRun

__all__ = ["ConditionalRun", "ConditionalTask", "check_labels"]
