"""The alternating GAN step: ``d_steps`` discriminator updates, then one generator update,
composed from the pure pieces in ``ganforge.objectives`` and switched on by the objective
config (loss, gradient penalty, R1, clipping, label smoothing, instance noise, DiffAugment,
packing, feature matching, EMA).

The generator output of the last D step is reused for the G step (the D step sees it detached),
so each iteration runs G forward once. D's parameters are frozen during the G step so no
gradient is computed for them. What D sees of a batch x is ``d_input(x)``:
DiffAugment -> instance noise -> packing, the same for real and generated samples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ganforge.architecture.layers_seq import teacher_forced_nll
from ganforge.data.sequences import apply_mask
from ganforge.errors import ConfigError
from ganforge.objectives import get_loss
from ganforge.objectives.losses import GanLoss
from ganforge.objectives.penalties import clip_weights, gradient_penalty, r1_penalty
from ganforge.objectives.tricks import (
    EMA,
    add_instance_noise,
    diff_augment,
    feature_matching_loss,
    instance_noise_std,
    mode_seeking_loss,
    pack,
    pair_halves,
    smoothed_targets,
    top_k,
    top_k_fraction,
)
from ganforge.tasks.base import StepStats, Task, TaskContext

Batch = tuple[torch.Tensor, torch.Tensor | None]


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class GeneratorDiscriminatorTask(Task):
    """What every single-G, single-D task shares: the objective's switches read once, one D
    update (loss + penalties + clipping) and one G update (+ EMA), its modules (with the EMA
    generator when EMA is on), its optimizers, and the network to sample from."""

    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    ema: Any
    loss: GanLoss
    # fp16: {"d": GradScaler, "g": GradScaler} from the loop; None: unscaled updates
    scalers: dict[str, Any] | None = None

    def __init__(self, ctx: TaskContext) -> None:
        super().__init__(ctx)
        cfg = ctx.cfg
        self.G, self.D = ctx.G, ctx.D
        self.opt_g, self.opt_d = ctx.opt_g, ctx.opt_d
        self.latent: Callable[[int], torch.Tensor] = ctx.latent
        self.d_steps = int(cfg.train.d_steps)
        self.scalers = ctx.scalers
        o = cfg.objective
        self.init_objective(o, get_loss(o.loss))
        self.fm = o.feature_matching
        self.fm_weight = float(o.feature_matching_weight)
        self.packing = int(o.packing)
        # variable-length sequences: the last channel is the mask (data/sequences.py)
        # (a context without data, as in unit tests of the objective pieces: fixed-length)
        data = getattr(ctx, "data", None)
        self.mask_channel = "variable_length" in (getattr(data, "info", None) or {})
        if self.likelihood and self.mask_channel:
            raise ConfigError("objective.likelihood scores every step of the real sequences, "
                              "but this data has variable lengths (a mask channel); use "
                              "fixed-length windows, or set objective.likelihood=0.")

    @property
    def probabilities(self) -> bool:  # type: ignore[override]
        """Whether D's outputs read as probabilities (after a sigmoid) under this loss."""
        return bool(self.loss.probabilities)

    def modules(self) -> dict[str, nn.Module]:
        mods = {"generator": self.G, "discriminator": self.D}
        if self.ema is not None:
            mods["generator_ema"] = self.ema.ema
        return mods

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    @property
    def sampling_generator(self) -> nn.Module:
        """The network to draw samples from: the EMA generator when EMA is on."""
        return self.ema.ema if self.ema is not None else self.G

    # ------------------------------------------------------- shared objective pieces
    def init_objective(self, o: Any, loss: GanLoss) -> None:
        """Read the objective switches every G/D task shares (``o`` an ObjectiveConfig):
        penalties, clipping, label smoothing, instance noise, DiffAugment and EMA of G
        (``self.G`` must be set)."""
        self.loss = loss
        self.gp = float(o.gradient_penalty or 0.0)
        self.gp_center = float(o.gp_center)
        self.r1 = float(o.r1)
        self.r1_every = int(o.r1_every)
        self.r2 = float(o.r2)
        self.clip = float(o.clip or 0.0)
        smoothing = o.label_smoothing if loss.targets else "none"
        self.real_target, self.fake_target = smoothed_targets(smoothing, o.smooth_real,
                                                              o.smooth_fake)
        self.noise = float(o.instance_noise)
        self.noise_steps = int(o.instance_noise_steps)
        self.augment = list(o.diffaugment)
        self.top_k = float(o.top_k)
        self.top_k_steps = int(o.top_k_steps)
        self.mode_seeking = float(o.mode_seeking)
        self.likelihood = float(o.likelihood)
        self.likelihood_warmup = int(o.likelihood_warmup)
        self.likelihood_warmup_d = bool(o.likelihood_warmup_d)
        self.ema = (EMA(self.G, o.ema, o.ema_start, o.ema_stats) if o.ema is not None
                    else None)

    def d_update(self, d_fn: Callable[[torch.Tensor], torch.Tensor], real_in: torch.Tensor,
                 fake_in: torch.Tensor, d_loss: torch.Tensor, d_index: int
                 ) -> torch.Tensor | None:
        """One D update: ``d_loss`` plus the gradient penalty, lazy R1 (every ``r1_every``-th
        D update, scaled by it) and R2 (on the generated samples) of ``d_fn`` (x -> logits),
        then the optimizer step and weight clipping. Returns the penalty (None when none
        applied)."""
        penalty = None
        if self.gp:
            penalty = gradient_penalty(d_fn, real_in, fake_in, self.gp, self.gp_center)
        if self.r1 and d_index % self.r1_every == 0:
            r1 = self.r1_every * r1_penalty(d_fn, real_in, self.r1)
            penalty = r1 if penalty is None else penalty + r1
        if self.r2:
            r2 = r1_penalty(d_fn, fake_in, self.r2)
            penalty = r2 if penalty is None else penalty + r2
        total = d_loss if penalty is None else d_loss + penalty
        self.opt_d.zero_grad(set_to_none=True)
        self._backward_step(total, self.opt_d, "d")
        if self.clip:
            clip_weights(self.D, self.clip)
        return penalty

    def g_update(self, g_loss: torch.Tensor, step: int,
                 g_input: tuple[torch.Tensor, ...] | None = None) -> None:
        """One G update (D frozen by the caller), then unfreeze D and update the EMA of G
        (``g_input``: G's input of this step, for EMA statistics of its own)."""
        self.opt_g.zero_grad(set_to_none=True)
        self._backward_step(g_loss, self.opt_g, "g")
        set_requires_grad(self.D, True)
        if self.ema is not None:
            self.ema.update(step + 1, g_input)

    def _backward_step(self, loss: torch.Tensor, opt: torch.optim.Optimizer, net: str) -> None:
        """backward + optimizer step; under fp16 through that network's gradient scaler (the
        step is skipped, and the scale lowered, when the scaled gradients overflow)."""
        scaler = self.scalers[net] if self.scalers else None
        if scaler is None:
            loss.backward()
            opt.step()
            return
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()


    # ------------------------------------------------ what conditioning changes (hooks)
    def real_batch(self, next_batch: Callable[[], Batch]
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A real batch and its labels (None: unconditional); m batches under packing m."""
        if self.packing == 1:
            return next_batch()[0], None
        return torch.cat([next_batch()[0] for _ in range(self.packing)]), None

    def fake_labels(self, n: int, device: torch.device) -> torch.Tensor | None:
        """The labels G is asked for (None: unconditional)."""
        return None

    def generate(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.G(z)

    def discriminate(self, x: torch.Tensor, y: torch.Tensor | None, features: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """D's (logits, class logits or None, intermediate features or None)."""
        if features:
            logits, feats = self.D(x, return_features=True)
            return logits, None, feats
        return self.D(x), None, None

    def negatives(self, fake_logits: torch.Tensor, real_in: torch.Tensor,
                  y: torch.Tensor | None) -> torch.Tensor:
        """The logits D's loss counts as fake: G's samples' (a conditional D may add real
        samples shown with a wrong label)."""
        return fake_logits

    def d_class_terms(self, d_loss: torch.Tensor, real_cls: torch.Tensor | None,
                      fake_cls: torch.Tensor | None, y: torch.Tensor | None,
                      yf: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """D's loss with the class terms added (AC-GAN), and their logged values."""
        return d_loss, {}

    def g_class_terms(self, g_loss: torch.Tensor, g_cls: torch.Tensor | None,
                      yf: torch.Tensor | None) -> torch.Tensor:
        return g_loss

    # ------------------------------------------------------------------------- pieces
    def d_input(self, x: torch.Tensor, noise_std: float) -> torch.Tensor:
        """What D sees of a batch: DiffAugment, then instance noise, then packing.
        Variable-length sequences first get their features multiplied by their mask channel,
        so padded steps look alike in real and generated batches."""
        if self.mask_channel:
            x = apply_mask(x)
        if self.augment:
            x = diff_augment(x, self.augment)
        return pack(add_instance_noise(x, noise_std), self.packing)

    # --------------------------------------------------------------------------- step
    def likelihood_step(self, next_batch: Callable[[], Batch], step: int) -> StepStats:
        """A warm-up step without D (``likelihood_warmup_d: false``): G's update on the
        teacher-forced likelihood of a real batch alone, one call over all its steps, no
        samples drawn."""
        real, _ = self.real_batch(next_batch)
        z = self.latent(real.shape[0])
        nll = teacher_forced_nll(self.G, z, real)
        g_loss = self.likelihood * nll
        self.g_update(g_loss, step, (z,))
        return {"g_loss": g_loss.detach(), "likelihood_nll": nll.detach(),  # type: ignore[return-value]
                "images": real.shape[0]}

    def train_step(self, next_batch: Callable[[], Batch]) -> StepStats:
        """One iteration: ``d_steps`` D updates on real (x, y) against G(z, y_fake), then one
        G update on the last D step's fakes. Returns detached tensors (no host sync)."""
        step = self.ctx.step
        if self.likelihood and step < self.likelihood_warmup and not self.likelihood_warmup_d:
            return self.likelihood_step(next_batch, step)
        std = instance_noise_std(step, self.noise, self.noise_steps)
        want_features = self.fm != "off"
        set_requires_grad(self.D, True)
        extra: dict[str, torch.Tensor] = {}
        for i in range(self.d_steps):
            real, y = self.real_batch(next_batch)
            yf = self.fake_labels(real.shape[0], real.device)
            z = self.latent(real.shape[0])
            last = i == self.d_steps - 1
            if self.mode_seeking and last and yf is not None:
                yf = pair_halves(yf)  # G's two halves get the same labels (MSGAN)
            with torch.set_grad_enabled(last):
                fake = self.generate(z, yf)
            real_in = self.d_input(real, std)
            fake_in = self.d_input(fake.detach(), std)
            real_logits, real_cls, real_feats = self.discriminate(real_in, y,
                                                                  want_features and last)
            fake_logits, fake_cls, _ = self.discriminate(fake_in, yf)
            d_loss = self.loss.d_loss(real_logits, self.negatives(fake_logits, real_in, y),
                                      self.real_target, self.fake_target)
            total, extra = self.d_class_terms(d_loss, real_cls, fake_cls, y, yf)

            def d_real(x: torch.Tensor, y: torch.Tensor | None = y) -> torch.Tensor:
                return self.discriminate(x, y)[0]

            penalty = self.d_update(d_real, real_in, fake_in, total, step * self.d_steps + i)

        set_requires_grad(self.D, False)
        g_logits, g_cls, g_feats = self.discriminate(self.d_input(fake, std), yf, want_features)
        fm = feature_matching_loss(real_feats, g_feats) if want_features else None
        if self.fm == "alone":
            g_loss = fm
        else:
            kept = g_logits
            if self.top_k < 1.0:
                kept = top_k(g_logits, top_k_fraction(step, self.top_k, self.top_k_steps))
            g_loss = self.loss.g_loss(kept)
            if fm is not None:
                g_loss = g_loss + self.fm_weight * fm
        g_loss = self.g_class_terms(g_loss, g_cls, yf)
        ms = mode_seeking_loss(fake, z) if self.mode_seeking else None
        if ms is not None:
            g_loss = g_loss + self.mode_seeking * ms
        nll = teacher_forced_nll(self.G, z, real) if self.likelihood else None
        if nll is not None:  # during the warm-up, the likelihood term alone (MLE pretraining)
            g_loss = (self.likelihood * nll if step < self.likelihood_warmup
                      else g_loss + self.likelihood * nll)
        self.g_update(g_loss, step, (z,) if yf is None else (z, yf))

        to_p = torch.sigmoid if self.loss.probabilities else (lambda t: t)
        stats: dict[str, Any] = {
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "d_real": to_p(real_logits.detach()).mean(),
            "d_fake": to_p(fake_logits.detach()).mean(),
            "real_logit": real_logits.detach().float().mean(),
            "fake_logit": fake_logits.detach().float().mean(),
            "images": real.shape[0] * self.d_steps,
            **extra,
        }
        if self.gp or self.r1 or self.r2:  # zero on the steps lazy R1 skips
            stats["d_penalty"] = (penalty.detach() if penalty is not None
                                  else torch.zeros((), device=d_loss.device))
        if fm is not None:
            stats["feature_matching"] = fm.detach()
        if ms is not None:
            stats["mode_seeking"] = ms.detach()
        if nll is not None:
            stats["likelihood_nll"] = nll.detach()
        return stats  # type: ignore[return-value]


class UnconditionalTask(GeneratorDiscriminatorTask):
    """G(z) against D(x): the loss, penalties and tricks of the ``objective`` section, with
    feature matching and packing (PacGAN)."""

    name = "unconditional"
    distributed_modules = ("G", "D")  # wrapped in DistributedDataParallel under torchrun
