"""TimeGAN (Yoon, Jarrett and van der Schaar, NeurIPS 2019) as a task.

Five networks, each a spec (so ``ganforge inspect`` prints them and a user can edit them):

- ``generator`` (config section): latent Z (T, Z) -> latent codes E_hat (T, H);
- ``discriminator`` (config section): latent codes (T, H) -> one logit per step (T, 1)
  (or one per sequence, (1,));
- ``task_options.embedder``: data X (T, F) -> codes H (T, H);
- ``task_options.recovery``: codes (T, H) -> data (T, F);
- ``task_options.supervisor``: codes (T, H) -> next-step codes (T, H).

Left out of the task options, embedder/recovery/supervisor default to TimeGAN's: ``cell``
(GRU) with ``layers`` (3) layers of H units (the supervisor has ``layers - 1``), a per-step
dense layer and a sigmoid, with H the width of the generator's output.

Training follows the reference code (jsyoon0823/TimeGAN), each phase a number of trainer steps:

1. ``autoencoder_steps``: embedder + recovery minimise 10 sqrt(MSE(X, R(E(X))));
2. ``supervised_steps``: generator + supervisor minimise MSE(H[1:], S(H)[:-1]) (only the
   supervisor gets a gradient from this loss, as in the reference);
3. the remaining steps, jointly: twice (generator + supervisor on G_loss, then embedder +
   recovery on 10 sqrt(MSE) + 0.1 supervised loss), then one discriminator update, skipped
   when D's loss is already below ``d_threshold`` (0.15). G_loss = BCE(D(S(G(Z))), 1)
   + gamma BCE(D(G(Z)), 1) + 100 sqrt(supervised loss) + 100 (moment loss), with the moment
   loss |std(X_hat) - std(X)| + |mean(X_hat) - mean(X)| over the batch, averaged.

Like the reference, the task min-max scales the data once more (per feature, over the whole
set) before training and maps samples back (see :class:`TimeGANSampler`); ``recon_mse`` and
``sup_mse`` in the metric log are in that scaled space.

Each of the five losses has its own Adam (as the reference has five solvers). Samples are
X_hat = R(S(G(Z))): the run's ``generator`` in checkpoints and in ``ganforge sample`` is that
composite, so every sampling path works unchanged.

``objective.ema`` keeps an exponential moving average of that composite (generator, supervisor
and recovery together; plain copies up to step ``objective.ema_start``, counted over all three
phases), checkpointed as ``generator_ema``; sampling, evaluation and loaded runs then draw from
it. The average does not change training.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from ganforge.architecture import build_network
from ganforge.architecture.builder import plan_network, width_mismatch
from ganforge.architecture.layers import _fmt
from ganforge.architecture.layers_stats import couples_samples
from ganforge.config import format_validation_error
from ganforge.data.sequences import SCALE_EPS
from ganforge.errors import ConfigError, SpecError
from ganforge.objectives.compat import check_objective
from ganforge.objectives.losses import bce
from ganforge.objectives.tricks import EMA
from ganforge.optim import build_optimizer
from ganforge.tasks.base import Task, TaskContext

Shape = tuple[int, ...]


class TimeGANOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    autoencoder_steps: int = Field(..., ge=0, description="trainer steps of phase 1")
    supervised_steps: int = Field(..., ge=0, description="trainer steps of phase 2")
    gamma: float = Field(1.0, ge=0, description="weight of the E_hat adversarial terms")
    d_threshold: float = Field(0.15, ge=0, description="skip the D update below this D loss")
    cell: Literal["gru", "lstm"] = "gru"
    layers: int = Field(3, ge=1, description="recurrent layers of the default networks")
    embedder: dict[str, Any] | None = None
    recovery: dict[str, Any] | None = None
    supervisor: dict[str, Any] | None = None


def parse_options(cfg: Any) -> TimeGANOptions:
    raw = dict(getattr(cfg, "task_options", None) or {})
    try:
        return TimeGANOptions.model_validate(raw)
    except ValidationError as exc:
        text = format_validation_error(exc, TimeGANOptions).replace("\n  ", "\n  task_options.")
        raise ConfigError(text + "\n(see `ganforge preset timegan-sines` for a full example)"
                          ) from None


def _default_spec(opts: TimeGANOptions, units: int, layers: int, out: int) -> dict[str, Any]:
    return {"layers": [{opts.cell: {"units": units, "layers": layers}},
                       {"dense": {"units": out}}, "sigmoid"]}


def network_specs(cfg: Any, data_shape: Shape) -> dict[str, tuple[dict[str, Any], Shape, Shape]]:
    """name -> (spec, input shape, required output shape), checked without building anything."""
    opts = parse_options(cfg)
    if len(data_shape) != 2:
        raise ConfigError(f"task timegan models sequences (T, F); the data has shape "
                          f"{_fmt(tuple(data_shape))}. Use a sequence dataset (sines, "
                          f"csv-sequence:PATH, ...).")
    t, f = (int(v) for v in data_shape)
    latent = tuple(int(v) for v in cfg.latent.full_shape)
    if len(latent) != 2 or latent[0] != t:
        got = (f"latent.shape[0] is {latent[0]}" if len(latent) == 2
               else f"latent.shape is {list(latent)}")
        raise ConfigError(f"task timegan draws one latent vector per time step: {got}, but the "
                          f"data's sequences have {t} steps (samples {t}x{f}). Set "
                          f"latent.shape: [{t}, Z] ([steps, features] follows the data).")
    g_spec = cfg.generator.model_dump()
    g_out = plan_network(g_spec, latent, "generator")[-1].out_shape
    if len(g_out) != 2 or g_out[0] != t:
        raise SpecError(f"generator: output {_fmt(g_out)}; TimeGAN's generator maps the latent "
                        f"to codes of shape ({t}, H). End it with a per-step dense layer.")
    h = g_out[1]
    specs = {
        "generator": (g_spec, latent, (t, h)),
        "embedder": (opts.embedder or _default_spec(opts, h, opts.layers, h), (t, f), (t, h)),
        "recovery": (opts.recovery or _default_spec(opts, h, opts.layers, f), (t, h), (t, f)),
        "supervisor": (opts.supervisor or _default_spec(opts, h, max(1, opts.layers - 1), h),
                       (t, h), (t, h)),
        "discriminator": (cfg.discriminator.model_dump(), (t, h), (t, 1)),
    }
    for name, (spec, in_shape, want) in specs.items():
        prefix = name if name in ("generator", "discriminator") else f"task_options.{name}"
        plans = plan_network(spec, in_shape, prefix)
        out = plans[-1].out_shape
        if name == "recovery" and out != want and (hint := width_mismatch(plans, (t, f))):
            raise ConfigError(hint)  # the data's feature count, against a number in the spec
        ok = out == want or (name == "discriminator" and out == (1,))
        if not ok:
            extra = " or 1" if name == "discriminator" else ""
            raise SpecError(f"{prefix}: output {_fmt(out)} from input {_fmt(in_shape)}; TimeGAN "
                            f"needs {_fmt(want)}{extra} (H = {h}, the generator's width).")
    return specs


def check_timegan(cfg: Any, data_shape: Shape) -> None:
    """Config-time check: phase budget and the shapes of all five networks."""
    opts = parse_options(cfg)
    steps = cfg.train.steps
    if steps is not None and opts.autoencoder_steps + opts.supervised_steps > steps:
        raise ConfigError(f"task_options.autoencoder_steps + supervised_steps "
                          f"({opts.autoencoder_steps} + {opts.supervised_steps}) exceed "
                          f"train.steps ({steps}); raise train.steps or lower them.")
    network_specs(cfg, data_shape)


class TimeGANSampler(nn.Module):
    """X_hat = recovery(supervisor(generator(z))) in data units: the run's generator.

    Like the reference code, TimeGAN min-max scales its training data once more, per feature
    over all sequences and steps, and maps samples back; ``lo`` and ``hi`` are kept as buffers
    so checkpoints carry them.
    """

    def __init__(self, generator: nn.Module, supervisor: nn.Module, recovery: nn.Module,
                 features: int) -> None:
        super().__init__()
        self.generator = generator
        self.supervisor = supervisor
        self.recovery = recovery
        self.register_buffer("lo", torch.zeros(features))
        self.register_buffer("hi", torch.ones(features))

    def fit_scaling(self, x: torch.Tensor) -> None:
        self.lo.copy_(x.amin(dim=(0, 1)))
        self.hi.copy_(x.amax(dim=(0, 1)))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.lo) / (self.hi - self.lo + SCALE_EPS)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * (self.hi - self.lo) + self.lo

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.denormalize(self.recovery(self.supervisor(self.generator(z))))


def build_modules(cfg: Any, data_shape: Shape) -> dict[str, nn.Module]:
    """The checkpointed modules: ``generator`` (sampler), ``discriminator``, ``embedder``."""
    specs = network_specs(cfg, data_shape)
    nets = {name: build_network(spec, in_shape, name)
            for name, (spec, in_shape, _) in specs.items()}
    sampler = TimeGANSampler(nets["generator"], nets["supervisor"], nets["recovery"],
                             int(data_shape[-1]))
    return {"generator": sampler,
            "discriminator": nets["discriminator"], "embedder": nets["embedder"]}


def moment_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """TimeGAN's G_loss_V: |std - std| + |mean - mean| over the batch, averaged over (T, F)."""
    var_h, mean_h = torch.var_mean(x_hat, dim=0, unbiased=False)
    var_x, mean_x = torch.var_mean(x, dim=0, unbiased=False)
    v1 = (torch.sqrt(var_h + 1e-6) - torch.sqrt(var_x + 1e-6)).abs().mean()
    return v1 + (mean_h - mean_x).abs().mean()


class TimeGANTask(Task):
    name = "timegan"
    sections = ("task_options",)
    objective_keys = ("ema", "ema_start", "ema_stats")
    objective_elsewhere = "its five losses are TimeGAN's own (task_options)"

    @classmethod
    def check(cls, cfg: Any, data_shape: tuple[int, ...] | None) -> None:
        check_objective(cfg, data_shape)
        if cfg.objective.ema is not None and cfg.objective.ema_stats != "copy":
            raise ConfigError("objective.ema_stats 'own' refreshes batch-norm statistics, and "
                              "TimeGAN's sampler has none to refresh; set "
                              "objective.ema_stats=copy.")
        if data_shape is not None:  # user files: checked once the data is loaded
            check_timegan(cfg, tuple(data_shape))

    @classmethod
    def build_modules(cls, cfg: Any, data_shape: tuple[int, ...]) -> dict[str, nn.Module]:
        return build_modules(cfg, data_shape)

    def __init__(self, trainer: TaskContext) -> None:
        super().__init__(trainer)
        cfg = trainer.cfg
        self.trainer = trainer
        self.opts = parse_options(cfg)
        mods = build_modules(cfg, trainer.data.shape)
        dev = trainer.device
        self.sampler = mods["generator"].to(dev)
        self.D = mods["discriminator"].to(dev)
        self.E = mods["embedder"].to(dev)
        self.G, self.S, self.R = self.sampler.generator, self.sampler.supervisor, self.sampler.recovery
        # TimeGAN's networks replace the spec-built ones: modules() names the composite
        # generator and the latent D, which sampling, pictures and checkpoints use.
        self.sampler.fit_scaling(trainer.data.x)
        er = list(self.E.parameters()) + list(self.R.parameters())
        gs = list(self.G.parameters()) + list(self.S.parameters())
        self.opts_by_name = {
            "embedder0": build_optimizer(er, cfg.optim.g),
            "embedder": build_optimizer(er, cfg.optim.g),
            "supervised": build_optimizer(gs, cfg.optim.g),
            "generator": build_optimizer(gs, cfg.optim.g),
            "discriminator": build_optimizer(self.D.parameters(), cfg.optim.d),
        }
        self.latent = trainer.latent
        o = cfg.objective
        self.ema = EMA(self.sampler, o.ema, o.ema_start) if o.ema is not None else None

    def modules(self) -> dict[str, nn.Module]:
        mods = {"generator": self.sampler, "discriminator": self.D, "embedder": self.E}
        if self.ema is not None:
            mods["generator_ema"] = self.ema.ema
        return mods

    @property
    def sampling_generator(self) -> nn.Module:
        """The composite R(S(G(z))), or its moving average when ``objective.ema`` is set."""
        return self.ema.ema if self.ema is not None else self.sampler

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.opts_by_name

    def phase(self, step: int) -> int:
        """1 autoencoder, 2 supervised, 3 joint, for the 0-based step index."""
        if step < self.opts.autoencoder_steps:
            return 1
        if step < self.opts.autoencoder_steps + self.opts.supervised_steps:
            return 2
        return 3

    # ----------------------------------------------------------------------- pieces
    def supervised_loss(self, h: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.S(h)[:, :-1], h[:, 1:])

    def discriminate(self, *parts: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """D on each of ``parts``: one call on their concatenation when D has no layer that
        looks across the batch (TimeGAN's GRU D: same outputs, a third of the small recurrent
        ops on one core), else one call per part, so batch-dependent layers see each batch
        alone."""
        if len(parts) == 1 or couples_samples(self.D):
            return tuple(self.D(p) for p in parts)
        return self.D(torch.cat(parts)).split([p.shape[0] for p in parts])

    def _step(self, name: str, loss: torch.Tensor) -> None:
        opt = self.opts_by_name[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def train_step(self, next_batch: Any) -> dict[str, Any]:
        step = int(self.trainer.step)
        stats = self._phase_step(self.phase(step), next_batch)
        if self.ema is not None:
            self.ema.update(step + 1)
        return stats

    def _phase_step(self, phase: int, next_batch: Any) -> dict[str, Any]:
        zero = torch.zeros((), device=self.trainer.device)
        stats: dict[str, Any] = {"phase": torch.tensor(float(phase)), "d_loss": zero,
                                 "g_loss": zero, "d_real": zero, "d_fake": zero}
        x = self.sampler.normalize(next_batch()[0])
        if phase == 1:
            mse = F.mse_loss(self.R(self.E(x)), x)
            self._step("embedder0", 10 * torch.sqrt(mse))
            stats.update(recon_mse=mse.detach(), sup_mse=zero, images=x.shape[0])
            return stats
        if phase == 2:
            with torch.no_grad():
                h = self.E(x)
            sup = self.supervised_loss(h)
            self._step("supervised", sup)
            with torch.no_grad():
                mse = F.mse_loss(self.R(h), x)
            stats.update(recon_mse=mse, sup_mse=sup.detach(), images=x.shape[0])
            return stats
        return self._joint_step(x, next_batch, stats)

    def _joint_step(self, x: torch.Tensor, next_batch: Any, stats: dict[str, Any]
                    ) -> dict[str, Any]:
        gamma = self.opts.gamma
        images = 0
        for k in range(2):
            if k > 0:
                x = self.sampler.normalize(next_batch()[0])
            images += x.shape[0]
            z = self.latent(x.shape[0])
            # E(x) once: G's step below changes neither E nor x, so the embedder step reuses
            # it (and its graph) as the reference code's second forward pass would recompute it.
            h = self.E(x)
            # Generator + supervisor (D, E and R are not stepped here).
            self.D.requires_grad_(False)
            self.R.requires_grad_(False)
            e_hat = self.G(z)
            h_hat = self.S(e_hat)
            x_hat = self.R(h_hat)
            y_u, y_ue = self.discriminate(h_hat, e_hat)
            g_u = bce(y_u, 1.0)
            g_ue = bce(y_ue, 1.0)
            g_s = self.supervised_loss(h.detach())
            g_v = moment_loss(x_hat, x)
            g_loss = g_u + gamma * g_ue + 100 * torch.sqrt(g_s) + 100 * g_v
            self._step("generator", g_loss)
            self.D.requires_grad_(True)
            self.R.requires_grad_(True)
            # Embedder + recovery: reconstruction plus 0.1 x supervised loss through E.
            self.S.requires_grad_(False)
            mse = F.mse_loss(self.R(h), x)
            e_loss = 10 * torch.sqrt(mse) + 0.1 * self.supervised_loss(h)
            self._step("embedder", e_loss)
            self.S.requires_grad_(True)
        # Discriminator on a fresh batch, only while it is not already winning.
        x = self.sampler.normalize(next_batch()[0])
        images += x.shape[0]
        z = self.latent(x.shape[0])
        with torch.no_grad():
            h = self.E(x)
            e_hat = self.G(z)
            h_hat = self.S(e_hat)
        y_real, y_fake, y_fake_e = self.discriminate(h, h_hat, e_hat)
        d_loss = bce(y_real, 1.0) + bce(y_fake, 0.0) + gamma * bce(y_fake_e, 0.0)
        if float(d_loss.detach()) > self.opts.d_threshold:
            self._step("discriminator", d_loss)
        stats.update(d_loss=d_loss.detach(), g_loss=g_loss.detach(),
                     d_real=torch.sigmoid(y_real.detach()).mean(),
                     d_fake=torch.sigmoid(y_fake.detach()).mean(),
                     recon_mse=mse.detach(), sup_mse=g_s.detach(), images=images)
        return stats
