"""Pieces shared by the image-to-image tasks (``cyclegan``, ``pix2pix``).

- Adversarial losses of the published recipes (least squares for CycleGAN, BCE for pix2pix),
  both halved for D as in the reference code.
- ``ImagePool``: CycleGAN's history of 50 fakes (Shrivastava et al. 2017): once full, each new
  fake is swapped for a random stored one with probability 0.5.
- ``lr_factor``: constant learning rate, then linear decay to 0 (stateless, from the step).
- Spec checks: the generator's input is a domain-a image whose shape is ``latent.shape``.
- ``load_translator``: the generator of a finished run, for ``ganforge translate``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ganforge import checkpoint as ckpt
from ganforge.architecture.builder import LayerPlan, build_network, plan_network
from ganforge.architecture.layers import _fmt
from ganforge.errors import CheckpointError, ConfigError, GanforgeError, SpecError
from ganforge.monitor.images import image_grid
from ganforge.objectives import get_loss
from ganforge.run import read_run_config
from ganforge.seeding import resolve_device

Shape = tuple[int, ...]


# ----------------------------------------------------------------------------------- losses
class AdversarialLoss:
    """The translation papers' scaling of a shared loss (``objectives.losses``):
    ``d_loss(real, fake) = 0.5 * (l(real, 1) + l(fake, 0))``, ``g_loss(fake) = l(fake, 1)``
    with ``l`` the mean squared error (least squares, CycleGAN) or BCE on logits (vanilla,
    pix2pix)."""

    # (shared loss, factor on its d_loss, factor on its g_loss) giving the scaling above
    KINDS: ClassVar[dict[str, tuple[str, float, float]]] = {
        "least_squares": ("least_squares", 1.0, 2.0), "vanilla": ("non_saturating", 0.5, 1.0)}

    def __init__(self, kind: str) -> None:
        if kind not in self.KINDS:
            raise ConfigError(f"translation.gan_loss must be least_squares or vanilla, got {kind!r}.")
        self.kind = kind
        name, self.d_scale, self.g_scale = self.KINDS[kind]
        self.loss = get_loss(name)
        self.probabilities = self.loss.probabilities

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return self.d_scale * self.loss.d_loss(real, fake)

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return self.g_scale * self.loss.g_loss(fake)

    def score(self, out: torch.Tensor) -> torch.Tensor:
        """Mean D output as logged: a probability (vanilla) or the raw LS score."""
        return (torch.sigmoid(out) if self.probabilities else out).mean()


def resolve_gan_loss(cfg: Any, default: str) -> AdversarialLoss:
    kind = cfg.translation.gan_loss
    return AdversarialLoss(default if kind == "auto" else kind)


def cycle_terms(g_ab: nn.Module, g_ba: nn.Module, real_a: torch.Tensor,
                real_b: torch.Tensor, noise: float = 0.0) -> dict[str, torch.Tensor]:
    """Both translations, both reconstructions and the cycle-consistency loss
    ``|g_ba(g_ab(a)) - a|_1 + |g_ab(g_ba(b)) - b|_1`` (means over pixels): 0 for inverse maps.

    ``noise`` > 0 adds Gaussian noise of that std (global torch RNG) to each translation before
    it is translated back (Bashkirova et al. 2019): a pair of generators that hides the source
    in a low-amplitude signal of the translation (CycleGAN's "steganography", Chu et al. 2017)
    can no longer reconstruct from it. The returned translations are the clean ones."""
    fake_b = g_ab(real_a)
    fake_a = g_ba(real_b)

    def perturbed(x: torch.Tensor) -> torch.Tensor:
        return x + noise * torch.randn_like(x) if noise > 0 else x

    rec_a = g_ba(perturbed(fake_b))
    rec_b = g_ab(perturbed(fake_a))
    cycle = (rec_a - real_a).abs().mean() + (rec_b - real_b).abs().mean()
    return {"fake_b": fake_b, "rec_a": rec_a, "fake_a": fake_a, "rec_b": rec_b, "cycle": cycle}


# ------------------------------------------------------------------------------- image pool
class ImagePool:
    """A buffer of up to ``size`` past fakes shown to D instead of only the newest ones.

    ``query(batch)``: while the pool is not full, each fake is stored and returned as is; once
    full, each fake is, with probability ``prob``, stored in place of a uniformly chosen old one
    which is returned instead, otherwise returned as is. Decisions use a seeded generator whose
    state (and the stored images) is part of the checkpoint.
    """

    def __init__(self, size: int, prob: float = 0.5, seed: int = 0) -> None:
        self.size = int(size)
        self.prob = float(prob)
        self.generator = torch.Generator().manual_seed(seed)
        self.images: list[torch.Tensor] = []

    @torch.no_grad()
    def query(self, batch: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return batch
        out = []
        for img in batch.detach():
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif float(torch.rand((), generator=self.generator)) < self.prob:
                j = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[j])
                self.images[j] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"n": len(self.images), "generator": self.generator.get_state()}
        if self.images:
            state["images"] = torch.stack(self.images)
        return state

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.generator.set_state(state["generator"])
        n = int(state["n"])
        self.images = [t.to(device) for t in state["images"][:n]] if n else []


# ------------------------------------------------------------------------------ lr schedule
def lr_factor(step: int, total: int, decay_start: float) -> float:
    """Multiplier of the base lr at ``step`` (0-based) of ``total``: 1 until
    ``decay_start * total``, then linear towards 0 (the published 100 + 100 epochs is
    ``decay_start = 0.5``). Like the reference code, the last step keeps a small positive lr."""
    start = round(decay_start * total)
    if step < start or total <= start:
        return 1.0
    return 1.0 - (step - start + 1) / float(total - start + 1)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


# ------------------------------------------------------------------------------ spec checks
def _a_shape(cfg: Any) -> Shape:
    shape = cfg.latent.shape
    if not shape or len(shape) != 3:
        raise ConfigError(f"task {cfg.task} feeds the generator a domain-a image, not a noise "
                          f"vector: set latent.shape to that image's [C, H, W] (e.g. "
                          f"latent: {{shape: [1, 28, 28]}}); got latent.shape={shape}.")
    return tuple(int(s) for s in shape)


def _plan(spec: Any, shape: Shape, name: str) -> list[LayerPlan]:
    return plan_network(spec.model_dump() if hasattr(spec, "model_dump") else spec, shape, name)


def _image_out(plans: list[LayerPlan], what: str) -> Shape:
    last = plans[-1]
    if len(last.out_shape) != 3:
        raise SpecError(f"{last.path} ({last.type}): output {_fmt(last.out_shape)}, but {what} "
                        f"must output an image (C x H x W).")
    return last.out_shape


def _d_check(plans: list[LayerPlan], name: str) -> None:
    last = plans[-1]
    if last.out_shape[0] != 1:
        raise SpecError(f"{last.path} ({last.type}): output {_fmt(last.out_shape)}, but the "
                        f"{name} must output one logit (1) or one map of patch logits "
                        f"(1 x h x w, PatchGAN). End it with conv2d {{filters: 1}}.")


def cyclegan_shapes(cfg: Any) -> tuple[Shape, Shape]:
    """(a_shape, b_shape) after shape-checking all four networks."""
    a_shape = _a_shape(cfg)
    b_shape = _image_out(_plan(cfg.generator, a_shape, "generator"), "the a->b generator")
    _d_check(_plan(cfg.discriminator, b_shape, "discriminator"), "discriminator")
    g_ba = cfg.translation.generator_ba or cfg.generator
    back = _image_out(_plan(g_ba, b_shape, "translation.generator_ba"), "the b->a generator")
    if back != a_shape:
        raise SpecError(f"translation.generator_ba maps b ({_fmt(b_shape)}) to {_fmt(back)}, but "
                        f"domain a is {_fmt(a_shape)} (latent.shape). Give "
                        f"translation.generator_ba a last layer with {a_shape[0]} filters.")
    d_a = cfg.translation.discriminator_a or cfg.discriminator
    _d_check(_plan(d_a, a_shape, "translation.discriminator_a"), "discriminator_a")
    if cfg.translation.identity_weight > 0 and a_shape != b_shape:
        raise ConfigError(f"the identity loss feeds b images ({_fmt(b_shape)}) to the a->b "
                          f"generator, which takes {_fmt(a_shape)}: set "
                          f"translation.identity_weight=0 for domains of different shapes.")
    return a_shape, b_shape


def check_cyclegan(cfg: Any, data_shape: Shape | None) -> None:
    _, b_shape = cyclegan_shapes(cfg)
    if data_shape is not None and tuple(data_shape) != b_shape:
        raise SpecError(f"the generator maps a ({_fmt(_a_shape(cfg))}) to {_fmt(b_shape)}, but "
                        f"the domain-b data is {_fmt(tuple(data_shape))}. Fix latent.shape (the "
                        f"a image shape) or the generator's last layer.")


def pix2pix_shapes(cfg: Any) -> tuple[Shape, Shape]:
    a_shape = _a_shape(cfg)
    b_shape = _image_out(_plan(cfg.generator, a_shape, "generator"), "the generator")
    if b_shape[1:] != a_shape[1:]:
        raise SpecError(f"the pix2pix generator maps {_fmt(a_shape)} to {_fmt(b_shape)}; the "
                        f"discriminator sees input and output stacked, so H and W must not "
                        f"change. Resize the inputs to the target size first.")
    pair = (a_shape[0] + b_shape[0], *b_shape[1:])
    _d_check(_plan(cfg.discriminator, pair, "discriminator"), "discriminator")
    return a_shape, b_shape


def check_pix2pix(cfg: Any, data_shape: Shape | None) -> None:
    a_shape, b_shape = pix2pix_shapes(cfg)
    pair = (a_shape[0] + b_shape[0], *b_shape[1:])
    if data_shape is not None and tuple(data_shape) != pair:
        raise SpecError(f"pix2pix data holds input and target stacked on channels, "
                        f"{_fmt(tuple(data_shape))} here; the generator maps {_fmt(a_shape)} to "
                        f"{_fmt(b_shape)}, which needs {_fmt(pair)}. Fix latent.shape (the input "
                        f"shape) or the generator's last layer.")


# ------------------------------------------------------------------------------- sampling
def strip_picture(columns: list[torch.Tensor], path: Path) -> Path:
    """Rows of examples, one column per tensor (e.g. input | output | target), as a PNG."""
    chans = max(c.shape[1] for c in columns)
    cols = [c.expand(-1, chans, -1, -1) if c.shape[1] == 1 else c for c in columns]
    inter = torch.stack(cols, dim=1).reshape(-1, *cols[0].shape[1:])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(inter.detach().float().cpu(), nrow=len(cols),
               scale=2 if cols[0].shape[-1] <= 32 else 1).save(path)
    return path


# ------------------------------------------------------------------------------ inference
def load_translator(run_dir: str | Path, direction: str = "a2b", device: str = "cpu",
                    checkpoint: str | Path | None = None) -> tuple[nn.Module, Shape, Any]:
    """The generator of a translation run (eval mode), its input shape and the run config."""
    cfg = read_run_config(run_dir)
    if cfg.task not in ("cyclegan", "pix2pix"):
        raise GanforgeError(f"'{run_dir}' is a '{cfg.task}' run; translate needs a cyclegan or "
                            f"pix2pix run. Use 'ganforge sample' for generators of noise.")
    if direction not in ("a2b", "b2a"):
        raise GanforgeError(f"direction must be a2b or b2a, got {direction!r}.")
    if cfg.task == "pix2pix" and direction == "b2a":
        raise GanforgeError("a pix2pix run only translates a2b (input -> target); b2a needs a "
                            "cyclegan run.")
    if cfg.task == "cyclegan":
        a_shape, b_shape = cyclegan_shapes(cfg)
    else:
        a_shape, b_shape = pix2pix_shapes(cfg)
    if direction == "a2b":
        spec, in_shape, name = cfg.generator, a_shape, "generator"
    else:
        spec = cfg.translation.generator_ba or cfg.generator
        in_shape, name = b_shape, "generator_ba"
    net = build_network(spec.model_dump(), in_shape, name).to(resolve_device(device))
    path = Path(checkpoint) if checkpoint else ckpt.latest_checkpoint(Path(run_dir))
    _, weights, _ = ckpt.load_checkpoint(path)
    if not any(k.startswith(f"{name}.") for k in weights):
        raise CheckpointError(f"checkpoint '{path}' holds no '{name}' weights; it was not "
                              f"written by a {cfg.task} run.")
    ckpt.load_module_weights(net, weights, name, path)
    net.eval()
    return net, in_shape, cfg


@torch.no_grad()
def translate_tensor(net: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Apply ``net`` in eval mode in batches; CPU float tensor out."""
    was = net.training
    net.eval()
    dev = next(net.parameters()).device
    outs = [net(x[i:i + batch_size].to(dev)).float().cpu() for i in range(0, len(x), batch_size)]
    net.train(was)
    return torch.cat(outs) if outs else x[:0]
