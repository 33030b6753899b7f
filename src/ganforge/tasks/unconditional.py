"""The alternating GAN step: ``d_steps`` discriminator updates, then one generator update.

The generator output of the last D step is reused for the G step (the D step sees it detached),
so each iteration runs G forward once. D's parameters are frozen during the G step so no
gradient is computed for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ganforge.objectives.losses import GanLoss

Batch = tuple[torch.Tensor, torch.Tensor | None]


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class UnconditionalTask:
    name = "unconditional"

    def __init__(self, generator: nn.Module, discriminator: nn.Module,
                 opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, loss: GanLoss,
                 latent: Callable[[int], torch.Tensor], d_steps: int = 1) -> None:
        self.G, self.D = generator, discriminator
        self.opt_g, self.opt_d = opt_g, opt_d
        self.loss = loss
        self.latent = latent
        self.d_steps = d_steps

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.G, "discriminator": self.D}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def train_step(self, next_batch: Callable[[], Batch]) -> dict[str, Any]:
        """One iteration; returns detached tensors (no host sync)."""
        set_requires_grad(self.D, True)
        fake = real_logits = fake_logits = d_loss = None
        for i in range(self.d_steps):
            real, _ = next_batch()
            z = self.latent(real.shape[0])
            last = i == self.d_steps - 1
            with torch.set_grad_enabled(last):
                fake = self.G(z)
            real_logits = self.D(real)
            fake_logits = self.D(fake.detach())
            d_loss = self.loss.d_loss(real_logits, fake_logits)
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()

        set_requires_grad(self.D, False)
        g_logits = self.D(fake)
        g_loss = self.loss.g_loss(g_logits)
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        set_requires_grad(self.D, True)

        to_p = torch.sigmoid if self.loss.probabilities else (lambda t: t)
        return {
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "d_real": to_p(real_logits.detach()).mean(),
            "d_fake": to_p(fake_logits.detach()).mean(),
            "real_logit": real_logits.detach().float().mean(),
            "fake_logit": fake_logits.detach().float().mean(),
            "images": real.shape[0] * self.d_steps,
        }
