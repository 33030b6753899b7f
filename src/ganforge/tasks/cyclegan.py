"""CycleGAN (Zhu et al. 2017): unpaired translation between domains a and b.

Networks: the config's ``generator`` is G_ab (its input shape is ``latent.shape``, a domain-a
image) and ``discriminator`` is D_b (on the trainer's data, domain b); ``translation.generator_ba``
and ``translation.discriminator_a`` (default: the same specs) are G_ba and D_a. Domain-a images
come from the dataset's ``info["a"]`` (the ``unpaired`` dataset), drawn by a batcher of the task
whose state is checkpointed with the two image pools.

One step, as in the reference code: the generators' update on
``L_gan(D_b(G_ab(a))) + L_gan(D_a(G_ba(b))) + cycle_weight * (|G_ba(G_ab(a)) - a| + |G_ab(G_ba(b)) - b|)
+ identity_weight * cycle_weight * (|G_ab(b) - b| + |G_ba(a) - a|)`` (D frozen; with
``translation.cycle_noise`` the translations are perturbed before they are translated back), then the
discriminators' update on real images against fakes drawn through the image pools. Both
optimizers hold both networks of their kind; lr is constant, then decays linearly to 0.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganforge.architecture import build_network
from ganforge.data import IndexBatcher, TensorData
from ganforge.errors import DataError
from ganforge.objectives.compat import check_objective
from ganforge.optim import build_optimizer
from ganforge.tasks.base import Task, TaskContext
from ganforge.tasks.translation import (
    ImagePool,
    check_cyclegan,
    cycle_terms,
    cyclegan_shapes,
    lr_factor,
    resolve_gan_loss,
    set_lr,
    strip_picture,
)
from ganforge.tasks.unconditional import set_requires_grad

Batch = tuple[torch.Tensor, torch.Tensor | None]


class CycleGANTask(Task):
    name = "cyclegan"
    own_lr_schedule = True  # translation.decay_start
    sections = ("translation",)
    objective_keys = ()
    objective_elsewhere = "its adversarial loss is translation.gan_loss"

    @classmethod
    def check(cls, cfg: Any, data_shape: tuple[int, ...] | None) -> None:
        check_objective(cfg, data_shape)
        check_cyclegan(cfg, data_shape)

    def __init__(self, trainer: TaskContext) -> None:
        super().__init__(trainer)
        cfg = trainer.cfg
        tc = cfg.translation
        self.trainer = trainer
        a_shape, b_shape = cyclegan_shapes(cfg)
        data = trainer.data
        a = data.info.get("a")
        if not isinstance(a, torch.Tensor):
            raise DataError(f"task cyclegan needs unpaired data with a domain a: use data.source: "
                            f"unpaired with data.options {{a: SOURCE, b: SOURCE}} (got dataset "
                            f"'{data.name}').")
        if tuple(a.shape[1:]) != a_shape:
            raise DataError(f"domain-a images are {list(a.shape[1:])} but latent.shape (the a->b "
                            f"generator's input) is {list(a_shape)}; make them equal.")
        dev = trainer.device
        self.a_data = TensorData("domain_a", a.to(dev), kind="image")
        self.a_batcher = IndexBatcher(self.a_data, cfg.train.batch_size, seed=cfg.seed + 11)
        self.G_ab, self.D_b = trainer.G, trainer.D
        torch.manual_seed(cfg.seed + 12)
        self.G_ba = build_network((tc.generator_ba or cfg.generator).model_dump(), b_shape,
                                  "generator_ba").to(dev)
        self.D_a = build_network((tc.discriminator_a or cfg.discriminator).model_dump(), a_shape,
                                 "discriminator_a").to(dev)
        self.G_ba.train()
        self.D_a.train()
        self.opt_g = build_optimizer(itertools.chain(self.G_ab.parameters(),
                                                     self.G_ba.parameters()), cfg.optim.g)
        self.opt_d = build_optimizer(itertools.chain(self.D_a.parameters(),
                                                     self.D_b.parameters()), cfg.optim.d)
        self.base_lr = (cfg.optim.g.lr, cfg.optim.d.lr)
        self.loss = resolve_gan_loss(cfg, "least_squares")
        self.cycle_weight = tc.cycle_weight
        self.identity_weight = tc.identity_weight * tc.cycle_weight
        self.cycle_noise = tc.cycle_noise
        self.pool_a = ImagePool(tc.pool_size, tc.pool_prob, seed=cfg.seed + 13)
        self.pool_b = ImagePool(tc.pool_size, tc.pool_prob, seed=cfg.seed + 14)
        self.decay_start = tc.decay_start
        n = min(8, len(self.a_data), len(data))
        self.preview_a = self.a_data.x[:n]
        self.preview_b = data.x[:n]

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.G_ab, "discriminator": self.D_b,
                "generator_ba": self.G_ba, "discriminator_a": self.D_a}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def state_dict(self) -> dict[str, Any]:
        return {"a_batcher": self.a_batcher.state_dict(), "pool_a": self.pool_a.state_dict(),
                "pool_b": self.pool_b.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        dev = self.trainer.device
        self.a_batcher.load_state_dict(state["a_batcher"])
        self.pool_a.load_state_dict(state["pool_a"], dev)
        self.pool_b.load_state_dict(state["pool_b"], dev)

    def train_step(self, next_batch: Callable[[], Batch]) -> dict[str, Any]:
        t = self.trainer
        f = lr_factor(t.step, t.total_steps, self.decay_start)
        set_lr(self.opt_g, self.base_lr[0] * f * t.lr_scale)
        set_lr(self.opt_d, self.base_lr[1] * f * t.lr_scale)
        real_b, _ = next_batch()
        real_a, _ = self.a_batcher.next()

        # --- generators (discriminators frozen)
        set_requires_grad(self.D_a, False)
        set_requires_grad(self.D_b, False)
        terms = cycle_terms(self.G_ab, self.G_ba, real_a, real_b, self.cycle_noise)
        fake_b, fake_a, cycle = terms["fake_b"], terms["fake_a"], terms["cycle"]
        gan = self.loss.g_loss(self.D_b(fake_b)) + self.loss.g_loss(self.D_a(fake_a))
        g_loss = gan + self.cycle_weight * cycle
        idt = torch.zeros((), device=real_a.device)
        if self.identity_weight > 0:
            idt = (self.G_ab(real_b) - real_b).abs().mean() + \
                (self.G_ba(real_a) - real_a).abs().mean()
            g_loss = g_loss + self.identity_weight * idt
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        set_requires_grad(self.D_a, True)
        set_requires_grad(self.D_b, True)

        # --- discriminators, on fakes from the history pools
        pooled_b = self.pool_b.query(fake_b.detach())
        pooled_a = self.pool_a.query(fake_a.detach())
        out_real_b, out_fake_b = self.D_b(real_b), self.D_b(pooled_b)
        out_real_a, out_fake_a = self.D_a(real_a), self.D_a(pooled_a)
        d_loss = self.loss.d_loss(out_real_b, out_fake_b) + self.loss.d_loss(out_real_a, out_fake_a)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()

        return {
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "g_gan": gan.detach(),
            "cycle_l1": cycle.detach(),
            "identity_l1": idt.detach(),
            "d_real": 0.5 * (self.loss.score(out_real_a.detach()) +
                             self.loss.score(out_real_b.detach())),
            "d_fake": 0.5 * (self.loss.score(out_fake_a.detach()) +
                             self.loss.score(out_fake_b.detach())),
            "lr_factor": torch.tensor(f),
            "images": 2 * real_b.shape[0],
        }

    @torch.no_grad()
    def save_samples(self, trainer: Any) -> Path:
        """Rows a | G_ab(a) | G_ba(G_ab(a)), then b | G_ba(b) | G_ab(G_ba(b))."""
        modes = [(m, m.training) for m in (self.G_ab, self.G_ba)]
        for m, _ in modes:
            m.eval()
        fb = self.G_ab(self.preview_a)
        if self.preview_a.shape[1:] == self.preview_b.shape[1:]:
            fa = self.G_ba(self.preview_b)
            cols = [torch.cat([self.preview_a, self.preview_b]), torch.cat([fb, fa]),
                    torch.cat([self.G_ba(fb), self.G_ab(fa)])]
        else:  # domains of different shapes: a | G_ba(G_ab(a)) only
            cols = [self.preview_a, self.G_ba(fb)]
        for m, was in modes:
            m.train(was)
        return strip_picture(cols, trainer.run_dir / "samples" / f"step_{trainer.step:08d}.png")
