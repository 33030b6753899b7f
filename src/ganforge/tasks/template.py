"""A task to copy: the smallest complete GAN family, commented step by step.

Use it as it is with ``task: ganforge.tasks.template:TemplateTask`` (the plain non-saturating
GAN of Goodfellow et al. 2014, one D update then one G update), or copy this file into your
own package, rename the class and change ``train_step``; then point a config at it with
``task: mypackage.mytask:MyTask``. Nothing needs registering: the registry imports
``module:Class`` on demand. ``register_task("mytask", "mypackage.mytask:MyTask")`` adds a
short name.

What the loop gives a task (``tasks/base.py`` has the whole contract):
- ``ctx.G`` / ``ctx.D``: built from the ``generator`` / ``discriminator`` specs and
  shape-checked (override ``build_networks`` to build your own);
- ``ctx.opt_g`` / ``ctx.opt_d``: optimizers from ``optim.g`` / ``optim.d``;
- ``ctx.latent(n)``: n seeded latents (checkpointed, so a resumed run repeats an uninterrupted
  one); ``ctx.step``: finished iterations; ``ctx.cfg``: the whole config.
What the loop does with a task: checkpoints ``modules()`` and ``optimizers()`` (defaults: G,
D and their optimizers), logs the tensors ``train_step`` returns, draws sample grids from
``sampling_generator``, and steps, saves, resumes, rolls back and monitors without knowing
anything else about the family.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ganforge.tasks.base import StepStats, Task, TaskContext

Batch = tuple[torch.Tensor, torch.Tensor | None]


class TemplateTask(Task):
    name = "template"
    # D's outputs pass through a sigmoid in the loss: the monitor reads them as probabilities
    probabilities = True
    # the loss is written out in train_step, so no objective.* key is read: setting one (an
    # EMA, a gradient penalty) is a ConfigError instead of a silent no-op. A task that reads
    # objective keys lists them here (None: all, as the G/D tasks do).
    objective_keys = ()
    objective_elsewhere = "its loss is written in TemplateTask.train_step"

    @classmethod
    def check(cls, cfg: Any, data_shape: tuple[int, ...] | None) -> None:
        # The default checks the objective's rules and the latent -> data -> logit shapes.
        # Add the family's own rules here, raising ganforge.errors.ConfigError with the key
        # to change.
        super().check(cfg, data_shape)

    def __init__(self, ctx: TaskContext) -> None:
        super().__init__(ctx)
        self.G, self.D = ctx.G, ctx.D
        self.opt_g, self.opt_d = ctx.opt_g, ctx.opt_d

    def train_step(self, next_batch: Callable[[], Batch]) -> StepStats:
        real, _ = next_batch()
        z = self.ctx.latent(real.shape[0])
        fake = self.G(z)

        # D: real -> 1, fake -> 0 (fake detached: no gradient into G here)
        real_logits, fake_logits = self.D(real), self.D(fake.detach())
        d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                  + F.binary_cross_entropy_with_logits(fake_logits,
                                                       torch.zeros_like(fake_logits)))
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()

        # G: the non-saturating loss, -log D(G(z)); D's gradients are cleared by its next
        # zero_grad, so they need not be frozen here (G/D tasks freeze D to save the work).
        g_logits = self.D(fake)
        g_loss = F.binary_cross_entropy_with_logits(g_logits, torch.ones_like(g_logits))
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()

        # Detached tensors only: the loop averages them over the log window without a host
        # sync per step. "images" counts the training samples consumed.
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(),
                "d_real": torch.sigmoid(real_logits.detach()).mean(),
                "d_fake": torch.sigmoid(fake_logits.detach()).mean(),
                "images": real.shape[0]}
