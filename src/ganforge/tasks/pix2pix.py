"""pix2pix (Isola et al. 2017): paired translation a -> b with a conditional discriminator.

The trainer's data holds each pair stacked on channels: ``x = [a, b]`` with the first
``latent.shape[0]`` channels the input a and the rest the target b (datasets ``paired``,
``mnist-inpaint``, ``mnist-sr2x``). The config's ``generator`` (e.g. a ``unet``) maps a to b;
the ``discriminator`` (e.g. a PatchGAN) sees ``[a, b]`` or ``[a, G(a)]`` stacked the same way,
so it is conditioned on the input.

One step, as in the reference code: D on real pairs against fake pairs, halved; then G on
``L_gan(D([a, G(a)])) + l1_weight * |G(a) - b|`` (BCE and 100 by default). lr is constant, then
decays linearly to 0.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganforge.objectives.compat import check_objective
from ganforge.tasks.base import Task, TaskContext
from ganforge.tasks.translation import (
    check_pix2pix,
    lr_factor,
    pix2pix_shapes,
    resolve_gan_loss,
    set_lr,
    strip_picture,
)
from ganforge.tasks.unconditional import set_requires_grad

Batch = tuple[torch.Tensor, torch.Tensor | None]


class Pix2PixTask(Task):
    name = "pix2pix"
    own_lr_schedule = True  # translation.decay_start
    sections = ("translation",)
    objective_keys = ()
    objective_elsewhere = "its adversarial loss is translation.gan_loss"

    @classmethod
    def check(cls, cfg: Any, data_shape: tuple[int, ...] | None) -> None:
        check_objective(cfg, data_shape)
        check_pix2pix(cfg, data_shape)

    def __init__(self, trainer: TaskContext) -> None:
        super().__init__(trainer)
        cfg = trainer.cfg
        self.trainer = trainer
        a_shape, _ = pix2pix_shapes(cfg)
        self.a_channels = a_shape[0]
        self.G, self.D = trainer.G, trainer.D
        self.opt_g, self.opt_d = trainer.opt_g, trainer.opt_d
        self.base_lr = (cfg.optim.g.lr, cfg.optim.d.lr)
        self.loss = resolve_gan_loss(cfg, "vanilla")
        self.l1_weight = cfg.translation.l1_weight
        self.decay_start = cfg.translation.decay_start
        self.preview = trainer.data.x[:8]

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.G, "discriminator": self.D}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def split(self, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return pairs[:, :self.a_channels], pairs[:, self.a_channels:]

    def train_step(self, next_batch: Callable[[], Batch]) -> dict[str, Any]:
        t = self.trainer
        f = lr_factor(t.step, t.total_steps, self.decay_start)
        set_lr(self.opt_g, self.base_lr[0] * f * t.lr_scale)
        set_lr(self.opt_d, self.base_lr[1] * f * t.lr_scale)
        pairs, _ = next_batch()
        a, b = self.split(pairs)
        fake = self.G(a)

        set_requires_grad(self.D, True)
        out_real = self.D(pairs)
        out_fake = self.D(torch.cat([a, fake.detach()], dim=1))
        d_loss = self.loss.d_loss(out_real, out_fake)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()

        set_requires_grad(self.D, False)
        gan = self.loss.g_loss(self.D(torch.cat([a, fake], dim=1)))
        l1 = (fake - b).abs().mean()
        g_loss = gan + self.l1_weight * l1
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        set_requires_grad(self.D, True)

        return {
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "g_gan": gan.detach(),
            "l1": l1.detach(),
            "d_real": self.loss.score(out_real.detach()),
            "d_fake": self.loss.score(out_fake.detach()),
            "lr_factor": torch.tensor(f),
            "images": pairs.shape[0],
        }

    @torch.no_grad()
    def save_samples(self, trainer: Any) -> Path:
        """Rows input | output | target."""
        a, b = self.split(self.preview)
        was = self.G.training
        self.G.eval()
        out = self.G(a)
        self.G.train(was)
        return strip_picture([a, out, b], trainer.run_dir / "samples" / f"step_{trainer.step:08d}.png")
