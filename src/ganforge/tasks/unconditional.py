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

from ganforge.objectives.losses import GanLoss
from ganforge.objectives.penalties import clip_weights, gradient_penalty, r1_penalty
from ganforge.objectives.tricks import (
    EMA,
    add_instance_noise,
    diff_augment,
    feature_matching_loss,
    instance_noise_std,
    pack,
    smoothed_targets,
)

Batch = tuple[torch.Tensor, torch.Tensor | None]


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class GeneratorDiscriminatorTask:
    """What every single-G, single-D task exposes: its modules (with the EMA generator when
    EMA is on), its optimizers, and the network to sample from."""

    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    ema: Any
    # fp16: {"d": GradScaler, "g": GradScaler}, set by the Trainer; None: unscaled updates
    scalers: dict[str, Any] | None = None

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
        """Read the objective switches every G/D task shares (``o`` an ObjectiveConfig, or
        None for the plain loss): penalties, clipping, label smoothing, instance noise,
        DiffAugment and EMA of G (``self.G`` must be set)."""
        self.loss = loss
        self.gp = float(o.gradient_penalty or 0.0) if o is not None else 0.0
        self.gp_center = float(o.gp_center) if o is not None else 1.0
        self.r1 = float(o.r1) if o is not None else 0.0
        self.r1_every = int(o.r1_every) if o is not None else 1
        self.clip = float(o.clip or 0.0) if o is not None else 0.0
        smoothing = o.label_smoothing if o is not None and loss.targets else "none"
        self.real_target, self.fake_target = smoothed_targets(
            smoothing, *((o.smooth_real, o.smooth_fake) if o is not None else ()))
        self.noise = float(o.instance_noise) if o is not None else 0.0
        self.noise_steps = int(o.instance_noise_steps) if o is not None else 0
        self.augment = list(o.diffaugment) if o is not None else []
        self.ema = (EMA(self.G, o.ema, o.ema_start, o.ema_stats)
                    if o is not None and o.ema is not None else None)

    def d_update(self, d_fn: Callable[[torch.Tensor], torch.Tensor], real_in: torch.Tensor,
                 fake_in: torch.Tensor, d_loss: torch.Tensor, d_index: int
                 ) -> torch.Tensor | None:
        """One D update: ``d_loss`` plus the gradient penalty and lazy R1 (every
        ``r1_every``-th D update, scaled by it) of ``d_fn`` (x -> logits), then the optimizer
        step and weight clipping. Returns the penalty (None when none applied)."""
        penalty = None
        if self.gp:
            penalty = gradient_penalty(d_fn, real_in, fake_in, self.gp, self.gp_center)
        if self.r1 and d_index % self.r1_every == 0:
            r1 = self.r1_every * r1_penalty(d_fn, real_in, self.r1)
            penalty = r1 if penalty is None else penalty + r1
        total = d_loss if penalty is None else d_loss + penalty
        self.opt_d.zero_grad(set_to_none=True)
        self._backward_step(total, self.opt_d, "d")
        if self.clip:
            clip_weights(self.D, self.clip)
        return penalty

    def g_update(self, g_loss: torch.Tensor, step: int,
                 g_input: torch.Tensor | None = None) -> None:
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


class UnconditionalTask(GeneratorDiscriminatorTask):
    name = "unconditional"
    distributed_modules = ("G", "D")  # wrapped in DistributedDataParallel under torchrun

    def __init__(self, generator: nn.Module, discriminator: nn.Module,
                 opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, loss: GanLoss,
                 latent: Callable[[int], torch.Tensor], d_steps: int = 1,
                 objective: Any = None, step: Callable[[], int] | None = None) -> None:
        """``objective`` is an ``ObjectiveConfig`` (None: the plain loss); ``step`` returns the
        number of finished iterations (it drives annealing, lazy R1 and EMA warm-up)."""
        self.G, self.D = generator, discriminator
        self.opt_g, self.opt_d = opt_g, opt_d
        self.latent = latent
        self.d_steps = d_steps
        self.step = step or (lambda: 0)
        o = objective
        self.init_objective(o, loss)
        self.fm = o.feature_matching if o is not None else "off"
        self.fm_weight = float(o.feature_matching_weight) if o is not None else 1.0
        self.packing = int(o.packing) if o is not None else 1

    # ------------------------------------------------------------------------- pieces
    def d_input(self, x: torch.Tensor, noise_std: float) -> torch.Tensor:
        """What D sees of a batch: DiffAugment, then instance noise, then packing."""
        if self.augment:
            x = diff_augment(x, self.augment)
        return pack(add_instance_noise(x, noise_std), self.packing)

    def _real_batch(self, next_batch: Callable[[], Batch]) -> torch.Tensor:
        if self.packing == 1:
            return next_batch()[0]
        return torch.cat([next_batch()[0] for _ in range(self.packing)])

    def _d(self, x: torch.Tensor, features: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        if features:
            return self.D(x, return_features=True)
        return self.D(x), None

    # --------------------------------------------------------------------------- step
    def train_step(self, next_batch: Callable[[], Batch]) -> dict[str, Any]:
        """One iteration; returns detached tensors (no host sync)."""
        step = self.step()
        std = instance_noise_std(step, self.noise, self.noise_steps)
        want_features = self.fm != "off"
        set_requires_grad(self.D, True)
        fake = real = real_logits = fake_logits = d_loss = real_feats = None
        penalty = None
        for i in range(self.d_steps):
            real = self._real_batch(next_batch)
            z = self.latent(real.shape[0])
            last = i == self.d_steps - 1
            with torch.set_grad_enabled(last):
                fake = self.G(z)
            real_in = self.d_input(real, std)
            fake_in = self.d_input(fake.detach(), std)
            real_logits, real_feats = self._d(real_in, want_features and last)
            fake_logits = self.D(fake_in)
            d_loss = self.loss.d_loss(real_logits, fake_logits, self.real_target,
                                      self.fake_target)
            penalty = self.d_update(self.D, real_in, fake_in, d_loss, step * self.d_steps + i)

        set_requires_grad(self.D, False)
        g_logits, g_feats = self._d(self.d_input(fake, std), want_features)
        fm = None
        if want_features:
            fm = feature_matching_loss(real_feats, g_feats)
        if self.fm == "alone":
            g_loss = fm
        else:
            g_loss = self.loss.g_loss(g_logits)
            if fm is not None:
                g_loss = g_loss + self.fm_weight * fm
        self.g_update(g_loss, step, z)

        to_p = torch.sigmoid if self.loss.probabilities else (lambda t: t)
        stats: dict[str, Any] = {
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "d_real": to_p(real_logits.detach()).mean(),
            "d_fake": to_p(fake_logits.detach()).mean(),
            "real_logit": real_logits.detach().float().mean(),
            "fake_logit": fake_logits.detach().float().mean(),
            "images": real.shape[0] * self.d_steps,
        }
        if self.gp or self.r1:
            stats["d_penalty"] = (penalty.detach() if penalty is not None
                                  else torch.zeros((), device=d_loss.device))
        if fm is not None:
            stats["feature_matching"] = fm.detach()
        return stats
