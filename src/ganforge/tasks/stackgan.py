"""The ``stackgan`` task: text-to-image synthesis with a StackGAN-style two-stage generator
(Zhang et al. 2017), written from the paper for small grayscale images (MNIST: 14x14 -> 28x28).

Networks (the checkpointed ``generator`` holds all of G's parts, ``discriminator`` both Ds):

- text encoder (``ganforge.architecture.text``): fixed MiniLM sentence embeddings (384-d,
  precomputed per distinct caption and cached), or the trainable word-level GRU fallback;
- conditioning augmentation, one per stage: a linear layer maps the text embedding to a mean
  and a log-variance, ``c = mu + exp(logvar / 2) * eps``, and G pays
  ``kl_weight * KL(N(mu, diag(exp(logvar))) || N(0, I))`` (summed over dimensions, averaged
  over the batch);
- Stage-I G: the config's ``generator`` spec, ``[z, c1]`` -> (1, s, s) with s = 14;
- Stage-II G: ``task_options.stage2_generator``, the Stage-I image with ``c2`` replicated as
  ``ca_dim`` constant maps -> (1, 2s, 2s) (no z: its randomness is ``c2``'s, as in the paper);
- matching-aware discriminators: an image body (Stage-I: the config's ``discriminator`` spec
  on (1, s, s); Stage-II: ``task_options.stage2_discriminator`` on the data) ending in a
  feature vector, concatenated with a compressed text code and passed through a 2-layer head
  to one logit. D's loss: ``BCE(D(real, text), 1) + (BCE(D(fake, text), 0) +
  BCE(D(real, mismatched text), 0)) / 2``; G's: ``BCE(D(fake, text), 1) + kl_weight * KL``.

Training, as the paper does: the first ``stage1_steps`` trainer steps train Stage-I (real
images are the data downsampled to s x s, area averaging); the rest train Stage-II with
Stage-I frozen (no gradient, eval mode). The GRU fallback learns through Stage-I's
discriminator loss (the matching term makes it tell captions apart) and is frozen with Stage-I.

The captions come with the data (``mnist-captions``); each step picks one of each image's
captions (via the trainer's latent generator) and mismatches them by rolling the batch by one.
All randomness goes through generators that checkpoints record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from ganforge.architecture import build_network, summary
from ganforge.architecture.layers_stats import couples_samples
from ganforge.architecture.text import (
    GRU_MAX_TOKENS,
    MINILM_DIM,
    GRUTextEncoder,
    Vocabulary,
    check_text,
    minilm_embed,
    resolve_encoder,
)
from ganforge.config import format_validation_error
from ganforge.errors import CheckpointError, ConfigError, DataError, GanforgeError, SpecError
from ganforge.fileio import atomic_write_text
from ganforge.monitor.images import image_grid
from ganforge.objectives.compat import check_objective
from ganforge.objectives.losses import bce
from ganforge.optim import build_optimizer
from ganforge.run import Run
from ganforge.tasks.base import Task, TaskContext, load_weights
from ganforge.tasks.unconditional import set_requires_grad

TEXT_FILE = "text.json"
FIXED_TEXTS = tuple(f"a regular, upright {w}" for w in (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"))

DEFAULT_STAGE2_G: dict[str, Any] = {"layers": [
    {"conv2d": {"filters": 32, "kernel": 3, "bias": False}}, "batch_norm", "relu",
    {"residual": {"layers": [{"conv2d": {"filters": 32, "kernel": 3, "bias": False}},
                             "batch_norm", "relu",
                             {"conv2d": {"filters": 32, "kernel": 3, "bias": False}},
                             "batch_norm"]}},
    {"upsample": {"scale": 2}},
    {"conv2d": {"filters": 32, "kernel": 3, "bias": False}}, "batch_norm", "relu",
    {"conv2d": {"filters": 1, "kernel": 3}}, "tanh"]}
DEFAULT_STAGE2_D: dict[str, Any] = {"layers": [
    {"conv2d": {"filters": 64, "kernel": 4, "stride": 2, "padding": 1}}, "leaky_relu",
    {"conv2d": {"filters": 128, "kernel": 4, "stride": 2, "padding": 1}}, "leaky_relu",
    {"conv2d": {"filters": 128, "kernel": 3, "stride": 2, "padding": 1}}, "leaky_relu",
    "flatten"]}


class StackGANOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage1_steps: int = Field(..., ge=1, description="trainer steps of Stage-I; the rest of "
                              "train.steps train Stage-II with Stage-I frozen")
    encoder: Literal["auto", "minilm", "gru"] = Field(
        "auto", description="text encoder: minilm (ganforge[text]), gru, or auto")
    ca_dim: int = Field(32, ge=1, description="conditioning augmentation size (c)")
    kl_weight: float = Field(0.0625, ge=0, description="weight of the CA KL term (summed over "
                             "dimensions: 2/ca_dim is StackGAN's 2.0 on the per-dim mean)")
    text_hidden: int = Field(128, ge=1, description="GRU encoder: sentence vector size")
    text_code: int = Field(64, ge=1, description="D: compressed text code size")
    head_units: int = Field(256, ge=1, description="D: hidden units of the matching head")
    stage1_size: int = Field(14, ge=4, description="Stage-I image side (the data side / 2)")
    sample_ca_scale: float = Field(
        1.0, ge=0, le=1, description="scale of the conditioning-augmentation noise when sampling "
        "(1: the training distribution; lower: images more faithful to the text and less "
        "varied, a truncation for the text code; `sample --text ... --truncation PSI` "
        "overrides it)")
    text_mix: bool = Field(False, description="each step's sentence embedding is a random "
                           "convex mix of two of the image's own captions (the same content "
                           "phrased two ways), for G and D alike")
    stage2_generator: dict[str, Any] | None = None
    stage2_discriminator: dict[str, Any] | None = None


def parse_options(cfg: Any) -> StackGANOptions:
    try:
        return StackGANOptions.model_validate(dict(cfg.task_options or {}))
    except ValidationError as exc:
        text = format_validation_error(exc, StackGANOptions).replace("\n  ", "\n  task_options.")
        raise ConfigError(text + "\n(see `ganforge preset stackgan-mnist` for a full example)"
                          ) from None


# ----------------------------------------------------------------------------- modules
class ConditioningAugmentation(nn.Module):
    """Text embedding -> (c, mu, logvar), c = mu + exp(logvar / 2) * eps.

    The embedding is first standardised per dimension (a batch norm without affine terms):
    MiniLM's unit-norm 384-d vectors of similar captions differ by a few hundredths per
    dimension, which would leave mu tiny against the unit noise at the start."""

    def __init__(self, in_dim: int, c_dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(in_dim, affine=False)
        self.fc = nn.Linear(in_dim, 2 * c_dim)
        self.c_dim = c_dim

    def forward(self, emb: torch.Tensor, eps: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.fc(self.norm(emb)).chunk(2, dim=1)
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + torch.exp(0.5 * logvar) * eps, mu, logvar


def kl_term(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)), summed over dimensions, mean over the batch."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1).mean()


class MatchingDiscriminator(nn.Module):
    """An image body to features f, joined with a compressed text code t, to one logit:
    ``head([f, t]) + <f, W t>`` (StackGAN's joint head plus a projection term, which makes
    the image-text match learnable within a short CPU budget)."""

    def __init__(self, body: nn.Module, feat_dim: int, emb_dim: int, code: int,
                 hidden: int) -> None:
        super().__init__()
        self.body = body
        self.text = nn.Sequential(nn.BatchNorm1d(emb_dim, affine=False), nn.Linear(emb_dim, code))
        self.head = nn.Sequential(nn.Linear(feat_dim + code, hidden), nn.LeakyReLU(0.2),
                                  nn.Linear(hidden, 1))
        self.proj = nn.Linear(code, feat_dim, bias=False)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.judge(self.body(x), self.code(emb))

    def code(self, emb: torch.Tensor) -> torch.Tensor:
        """The compressed text code t of a batch of embeddings."""
        return F.leaky_relu(self.text(emb), 0.2)

    def judge(self, f: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """One logit per (image features f, text code t) pair."""
        return self.head(torch.cat([f, t], 1)) + (f * self.proj(t)).sum(1, keepdim=True)


class Stage2Generator(nn.Module):
    def __init__(self, body: nn.Module, ca: ConditioningAugmentation) -> None:
        super().__init__()
        self.body = body
        self.ca = ca

    def forward(self, img: torch.Tensor, emb: torch.Tensor, eps: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c, mu, logvar = self.ca(emb, eps)
        maps = c[:, :, None, None].expand(-1, -1, img.shape[2], img.shape[3])
        return self.body(torch.cat([img, maps], 1)), mu, logvar


class StackGANGenerator(nn.Module):
    """Text encoder (GRU only), Stage-I (CA + spec G) and Stage-II (CA + spec G)."""

    def __init__(self, encoder: GRUTextEncoder | None, ca1: ConditioningAugmentation,
                 g1: nn.Module, stage2: Stage2Generator) -> None:
        super().__init__()
        self.encoder = encoder
        self.ca1 = ca1
        self.g1 = g1
        self.stage2 = stage2

    def encode(self, text: torch.Tensor) -> torch.Tensor:
        """Token ids (GRU) or precomputed embeddings (MiniLM) -> sentence embeddings."""
        if self.encoder is not None:
            return self.encoder(text)
        return text

    def stage1(self, z: torch.Tensor, emb: torch.Tensor, eps: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c, mu, logvar = self.ca1(emb, eps)
        return self.g1(torch.cat([z, c], 1)), mu, logvar

    def forward(self, z: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        img1, _, _ = self.stage1(z, emb)
        return self.stage2(img1, emb)[0]


class StackGANDiscriminator(nn.Module):
    def __init__(self, d1: MatchingDiscriminator, d2: MatchingDiscriminator) -> None:
        super().__init__()
        self.d1 = d1
        self.d2 = d2

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return (self.d1 if x.shape[-1] == self.size1 else self.d2)(x, emb)

    size1 = 14


def _body(spec: dict[str, Any], in_shape: tuple[int, ...], name: str) -> tuple[nn.Module, int]:
    net = build_network(spec, in_shape, name)
    if len(net.out_shape) != 1:
        raise SpecError(f"{name}: must end in a feature vector (end it with flatten), got "
                        f"{net.out_shape}; the task adds the text-matching head itself.")
    return net, int(net.out_shape[0])


def make_networks(cfg: Any, data_shape: tuple[int, ...], encoder: str, vocab_size: int
                  ) -> tuple[StackGANGenerator, StackGANDiscriminator]:
    """G and D for this config; spec errors name the spec path."""
    o = parse_options(cfg)
    if tuple(data_shape[:1]) != (1,) or len(data_shape) != 3:
        raise ConfigError(f"task stackgan draws grayscale images (1, H, W); the data has shape "
                          f"{list(data_shape)}. Use data.source: mnist-captions.")
    s = o.stage1_size
    if tuple(data_shape[1:]) != (2 * s, 2 * s):
        raise ConfigError(f"Stage-II doubles Stage-I's side: data is {data_shape[1]}x"
                          f"{data_shape[2]}, so set task_options.stage1_size: "
                          f"{data_shape[1] // 2} (got {s}).")
    if len(cfg.latent.full_shape) != 1:
        raise ConfigError("task stackgan needs a vector latent: set latent.dim.")
    z_dim = int(cfg.latent.full_shape[0])
    enc = GRUTextEncoder(vocab_size, o.text_hidden) if encoder == "gru" else None
    emb_dim = enc.out_dim if enc is not None else MINILM_DIM
    g1 = build_network(cfg.generator.model_dump(), (z_dim + o.ca_dim,), "generator")
    if g1.out_shape != (1, s, s):
        raise SpecError(f"generator (Stage-I): output {list(g1.out_shape)} from [z, c] "
                        f"({z_dim} + {o.ca_dim}); it must draw a 1x{s}x{s} image.")
    g2 = build_network(o.stage2_generator or DEFAULT_STAGE2_G, (1 + o.ca_dim, s, s),
                       "task_options.stage2_generator")
    if g2.out_shape != tuple(data_shape):
        raise SpecError(f"task_options.stage2_generator: output {list(g2.out_shape)} from the "
                        f"Stage-I image + c maps ({1 + o.ca_dim}x{s}x{s}); it must draw "
                        f"{list(data_shape)}.")
    G = StackGANGenerator(enc, ConditioningAugmentation(emb_dim, o.ca_dim), g1,
                          Stage2Generator(g2, ConditioningAugmentation(emb_dim, o.ca_dim)))
    b1, f1 = _body(cfg.discriminator.model_dump(), (1, s, s), "discriminator")
    b2, f2 = _body(o.stage2_discriminator or DEFAULT_STAGE2_D, tuple(data_shape),
                   "task_options.stage2_discriminator")
    D = StackGANDiscriminator(
        MatchingDiscriminator(b1, f1, emb_dim, o.text_code, o.head_units),
        MatchingDiscriminator(b2, f2, emb_dim, o.text_code, o.head_units))
    D.size1 = s
    return G, D


def print_summary(cfg: Any, data_shape: tuple[int, ...]) -> int:
    """``ganforge inspect``: the four spec-built networks with their real input shapes."""
    o = parse_options(cfg)
    encoder = resolve_encoder(o.encoder)
    G, D = make_networks(cfg, tuple(data_shape), encoder, vocab_size=2)
    z = int(cfg.latent.full_shape[0])
    print(f"{cfg.name}: {cfg.description}".rstrip(": "))
    print(f"text encoder {encoder}; conditioning augmentation c ({o.ca_dim}) per stage; "
          f"Stage-I {o.stage1_steps} steps, then Stage-II (Stage-I frozen)")
    parts = [(f"Stage-I generator: [z ({z}), c1 ({o.ca_dim})] -> image", G.g1),
             (f"Stage-II generator: Stage-I image + c2 maps ({o.ca_dim})", G.stage2.body),
             ("Stage-I discriminator body (+ text-matching head)", D.d1.body),
             ("Stage-II discriminator body (+ text-matching head)", D.d2.body)]
    for title, net in parts:
        print()
        print(title)
        print(summary(net))
    return 0


# ---------------------------------------------------------------------- text of a run
class RunText:
    """What a run needs to turn text into G's input: the encoder kind and the GRU vocabulary."""

    def __init__(self, encoder: str, vocab: Vocabulary | None, bins: dict[str, Any]) -> None:
        self.encoder = encoder
        self.vocab = vocab
        self.bins = bins

    def inputs(self, texts: list[str], cache: bool = True) -> torch.Tensor:
        """G's text input: token ids (GRU) or MiniLM embeddings."""
        if self.encoder == "gru":
            assert self.vocab is not None
            return self.vocab.encode(texts, GRU_MAX_TOKENS)
        uniq = sorted(set(texts))  # each distinct text embedded once
        emb = minilm_embed(uniq, cache=cache)
        where = {t: i for i, t in enumerate(uniq)}
        return emb[torch.tensor([where[t] for t in texts], dtype=torch.long)]

    def save(self, path: Path) -> None:
        data = {"encoder": self.encoder, "max_tokens": GRU_MAX_TOKENS, "bins": self.bins,
                "vocab": self.vocab.words if self.vocab is not None else None}
        atomic_write_text(path, json.dumps(data))

    @staticmethod
    def load(path: Path) -> RunText:
        try:
            data = json.loads(path.read_text())
            encoder = str(data["encoder"])
            vocab = Vocabulary(data["vocab"][2:]) if encoder == "gru" else None
            return RunText(encoder, vocab, dict(data.get("bins") or {}))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"'{path}' (the run's text encoding) is unreadable "
                                  f"({type(exc).__name__}: {exc}).") from None


def _captions(data: Any) -> list[list[str]]:
    caps = data.info.get("captions")
    if not isinstance(caps, list) or len(caps) != len(data) or not caps:
        raise DataError(f"task stackgan trains on captioned images; dataset '{data.name}' has "
                        f"no captions. Use data.source: mnist-captions.")
    k = len(caps[0])
    if any(len(c) != k for c in caps):
        raise DataError("every image needs the same number of captions.")
    return caps


# --------------------------------------------------------------------------------- task
def downsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Real images at Stage-I's resolution (area averaging)."""
    return F.adaptive_avg_pool2d(x, size) if x.shape[-1] != size else x


class StackGANTask(Task):
    name = "stackgan"
    sections = ("task_options",)
    objective_keys = ()
    objective_elsewhere = "its losses are StackGAN's own (task_options)"

    @classmethod
    def check(cls, cfg: Any, data_shape: tuple[int, ...] | None) -> None:
        """The objective's rules and the stage budget; the networks are built from the data."""
        check_objective(cfg, None)
        o = parse_options(cfg)
        steps = cfg.train.steps
        if steps is not None and o.stage1_steps > steps:
            raise ConfigError(f"task_options.stage1_steps ({o.stage1_steps}) exceeds train.steps "
                              f"({steps}); Stage-II trains the remaining steps.")

    @classmethod
    def build_networks(cls, trainer: TaskContext) -> tuple[nn.Module, nn.Module]:
        cfg, data = trainer.cfg, trainer.data
        o = parse_options(cfg)
        caps = _captions(data)
        encoder = resolve_encoder(o.encoder)
        flat = [c for row in caps for c in row]
        vocab = Vocabulary.build(flat) if encoder == "gru" else None
        G, D = make_networks(cfg, data.shape, encoder, len(vocab) if vocab else 0)
        run_text = RunText(encoder, vocab, dict(data.info.get("bins") or {}))
        # the distinct captions once (G's text input per caption), and each image's caption ids
        uniq, inverse = np.unique(np.asarray(flat, dtype=object).astype(str), return_inverse=True)
        # what the task reads of the text, kept with the data it describes
        data.info["stackgan_text"] = {
            "table": run_text.inputs(list(uniq)).to(trainer.device),
            "caption_ids": torch.from_numpy(inverse.reshape(len(caps), -1)).to(trainer.device),
            "run_text": run_text,
        }
        # The batcher yields (images, row ids): each row's captions are looked up by the task.
        data.info["digits"] = data.y
        data.y = torch.arange(len(data), device=data.x.device)
        trainer.run_dir.mkdir(parents=True, exist_ok=True)
        run_text.save(trainer.run_dir / TEXT_FILE)
        return G, D

    @classmethod
    def load_run(cls, run_dir: str | Path, cfg: Any, device: str = "cpu",
                 checkpoint: str | Path | None = None) -> Run:
        path_t = Path(run_dir) / TEXT_FILE
        if not path_t.is_file():
            raise CheckpointError(f"'{run_dir}' has no {TEXT_FILE} (its text encoding); it was "
                                  f"not trained with the stackgan task, or is incomplete.")
        run_text = RunText.load(path_t)
        if run_text.encoder == "minilm":
            resolve_encoder("minilm")  # a clear error when the package is gone
        size = 2 * parse_options(cfg).stage1_size
        data_shape = (1, size, size)
        G, D = make_networks(cfg, data_shape, run_text.encoder,
                             len(run_text.vocab) if run_text.vocab else 0)
        step = load_weights(run_dir, {"generator": G, "discriminator": D}, device, checkpoint)
        stage = 2 if step > parse_options(cfg).stage1_steps else 1
        return TextRun(run_dir, cfg, G, D, step, data_shape, "image", run_text=run_text,
                       stage=stage)

    def trained_run(self, ctx: TaskContext) -> Run:
        return type(self).load_run(ctx.run_dir, ctx.cfg, str(ctx.device))

    def __init__(self, trainer: TaskContext) -> None:
        super().__init__(trainer)
        cfg = trainer.cfg
        self.trainer = trainer
        self.opts = parse_options(cfg)
        self.G: StackGANGenerator = trainer.G
        self.D: StackGANDiscriminator = trainer.D
        text = trainer.data.info["stackgan_text"]
        self.table, self.caption_ids = text["table"], text["caption_ids"]
        self.run_text: RunText = text["run_text"]
        self.latent = trainer.latent
        self.pick_gen: torch.Generator = trainer.latent_gen
        G, D = self.G, self.D
        g1_params = list(G.ca1.parameters()) + list(G.g1.parameters())
        d1_params = list(D.d1.parameters()) + (list(G.encoder.parameters())
                                               if G.encoder is not None else [])
        self.opt = {
            "generator": build_optimizer(g1_params, cfg.optim.g),
            "discriminator": build_optimizer(d1_params, cfg.optim.d),
            "generator2": build_optimizer(G.stage2.parameters(), cfg.optim.g),
            "discriminator2": build_optimizer(D.d2.parameters(), cfg.optim.d),
        }
        self.size1 = self.opts.stage1_size
        self.grid_size = cfg.monitor.grid_size
        self.fixed_text = self.run_text.inputs(list(FIXED_TEXTS)).to(trainer.device)
        self._frozen = False

        self.sampler = FixedTextSampler(self.G, self.fixed_text,
                                        lambda: 1 if trainer.step <= self.opts.stage1_steps else 2,
                                        cfg.latent.full_shape, trainer.data.shape, cfg.seed + 6)

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.G, "discriminator": self.D}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return dict(self.opt)

    @property
    def sampling_generator(self) -> nn.Module:
        """z -> images of the ten fixed texts cycled (health signals, evaluation while
        training)."""
        return self.sampler

    def stage(self, step: int) -> int:
        return 1 if step < self.opts.stage1_steps else 2

    def _text(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None,
                                                  torch.Tensor | None]:
        """Each row's text input; with ``text_mix`` also a second caption of the same image
        and the mixing weight of the first."""
        k = self.caption_ids.shape[1]
        j = torch.randint(k, (rows.shape[0],), generator=self.pick_gen).to(rows.device)
        first = self.table[self.caption_ids[rows, j]]
        if not self.opts.text_mix or k < 2:
            return first, None, None
        # another caption slot of the same image (never the same slot), and beta ~ U(0, 1)
        step = torch.randint(1, k, (rows.shape[0],), generator=self.pick_gen).to(rows.device)
        beta = torch.rand(rows.shape[0], 1, generator=self.pick_gen).to(rows.device)
        return first, self.table[self.caption_ids[rows, (j + step) % k]], beta

    def _encode(self, text: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]
                ) -> torch.Tensor:
        """Sentence embeddings of a step's text (mixed where ``text_mix`` drew a second)."""
        first, second, beta = text
        emb = self.G.encode(first)
        if second is None:
            return emb
        return beta * emb + (1 - beta) * self.G.encode(second)

    def _freeze_stage1(self) -> None:
        """Stage-I (and the GRU encoder) frozen: no gradients, eval mode (set again every step,
        since sampling and the trainer put the whole generator back in train mode)."""
        G = self.G
        for m in (G.ca1, G.g1, *([G.encoder] if G.encoder is not None else [])):
            if not self._frozen:
                set_requires_grad(m, False)
            m.eval()
        self._frozen = True

    def train_step(self, next_batch: Any) -> dict[str, Any]:
        stage = self.stage(int(self.trainer.step))
        x, rows = next_batch()
        text = self._text(rows)
        b = x.shape[0]
        z = self.latent(b)
        if stage == 1:
            return self._stage1(x, text, z)
        self._freeze_stage1()
        return self._stage2(x, text, z)

    def _matching_d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                         emb: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if couples_samples(D.body):
            y_real = D(real, emb)
            y_wrong = D(real, emb.roll(1, 0))
            y_fake = D(fake, emb)
        else:
            # one body call on [real, fake] and one text code: the mismatched pairs reuse the
            # real images' features with the batch's codes rolled by one (the same logits as
            # three separate calls, a third less of D's work)
            f_real, f_fake = D.body(torch.cat([real, fake])).split([real.shape[0],
                                                                   fake.shape[0]])
            t = D.code(emb)
            y_real, y_wrong, y_fake = D.judge(f_real, t), D.judge(f_real, t.roll(1, 0)), \
                D.judge(f_fake, t)
        loss = bce(y_real, 1.0) + 0.5 * (bce(y_fake, 0.0) + bce(y_wrong, 0.0))
        return loss, {"d_real": torch.sigmoid(y_real.detach()).mean(),
                      "d_fake": torch.sigmoid(y_fake.detach()).mean(),
                      "d_wrong": torch.sigmoid(y_wrong.detach()).mean()}

    def _update(self, name: str, loss: torch.Tensor) -> None:
        opt = self.opt[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def _stage1(self, x: torch.Tensor, text: tuple, z: torch.Tensor) -> dict[str, Any]:
        G, D1 = self.G, self.D.d1
        real = downsample(x, self.size1)
        set_requires_grad(D1, True)
        emb = self._encode(text)  # GRU: learns through D1's matching loss
        fake, mu, logvar = G.stage1(z, emb.detach())
        d_loss, stats = self._matching_d_loss(D1, real, fake.detach(), emb)
        self._update("discriminator", d_loss)
        set_requires_grad(D1, False)
        kl = kl_term(mu, logvar)
        g_loss = bce(D1(fake, emb.detach()), 1.0) + self.opts.kl_weight * kl
        self._update("generator", g_loss)
        set_requires_grad(D1, True)
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "kl": kl.detach(),
                "stage": torch.tensor(1.0), **stats, "images": x.shape[0]}

    def _stage2(self, x: torch.Tensor, text: tuple, z: torch.Tensor) -> dict[str, Any]:
        G, D2 = self.G, self.D.d2
        with torch.no_grad():
            emb = self._encode(text)
            img1, _, _ = G.stage1(z, emb)
        fake, mu, logvar = G.stage2(img1, emb)
        set_requires_grad(D2, True)
        d_loss, stats = self._matching_d_loss(D2, x, fake.detach(), emb)
        self._update("discriminator2", d_loss)
        set_requires_grad(D2, False)
        kl = kl_term(mu, logvar)
        g_loss = bce(D2(fake, emb), 1.0) + self.opts.kl_weight * kl
        self._update("generator2", g_loss)
        set_requires_grad(D2, True)
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "kl": kl.detach(),
                "stage": torch.tensor(2.0), **stats, "images": x.shape[0]}

    def save_samples(self, trainer: Any) -> Path:
        """A grid with one row per digit ("a regular, upright seven"), the same z per column;
        Stage-I images (upsampled) while Stage-I trains."""
        per = max(1, self.grid_size // len(FIXED_TEXTS))
        stage = 1 if trainer.step <= self.opts.stage1_steps else 2
        x = generate(self.G, self.fixed_text, trainer.fixed_z[:per], stage,
                     seed=trainer.cfg.seed + 5, size=trainer.data.shape[-1])
        path = trainer.run_dir / "samples" / f"step_{trainer.step:08d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image_grid(x, nrow=per, scale=2).save(path)
        return path


class FixedTextSampler(nn.Module):
    """``z -> images`` for code that samples a generator from latents alone (the monitor's
    diversity signal, metrics during training): text i is ``texts[i % T]``, CA noise is
    seeded, the stage is the one training (Stage-I upsampled until Stage-II starts)."""

    def __init__(self, G: StackGANGenerator, texts: torch.Tensor, stage: Any,
                 latent_shape: tuple[int, ...], data_shape: tuple[int, ...], seed: int) -> None:
        super().__init__()
        self.G = G
        self.texts = texts
        self.stage = stage
        self.seed = seed
        self.in_shape = tuple(latent_shape)
        self.out_shape = tuple(data_shape)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        idx = torch.arange(z.shape[0], device=self.texts.device) % self.texts.shape[0]
        out = generate(self.G, self.texts[idx], z, self.stage(), seed=self.seed,
                       size=self.out_shape[-1], repeat_text=False)
        return out.to(z.device)


@torch.no_grad()
def generate(G: StackGANGenerator, text: torch.Tensor, z: torch.Tensor, stage: int,
             seed: int = 0, size: int = 28, repeat_text: bool = True,
             ca_scale: float = 1.0) -> torch.Tensor:
    """Images for ``text`` inputs (T texts) x ``z`` (P latents): T*P images, text-major, or
    with ``repeat_text=False`` one image per (text[i], z[i]). Stage 1 images are upsampled
    (bilinear) to ``size``. CA noise comes from a generator seeded with ``seed``, times
    ``ca_scale`` (0: each text's mean code)."""
    was = G.training
    G.eval()
    try:
        dev = next(G.parameters()).device
        text, z = text.to(dev), z.to(dev)
        if repeat_text:
            t, p = text.shape[0], z.shape[0]
            text = text.repeat_interleave(p, 0)
            z = z.repeat(t, 1)
        gen = torch.Generator().manual_seed(seed)
        ca = G.ca1.c_dim
        eps1 = (torch.randn(z.shape[0], ca, generator=gen) * ca_scale).to(dev)
        eps2 = (torch.randn(z.shape[0], ca, generator=gen) * ca_scale).to(dev)
        emb = G.encode(text)
        img1, _, _ = G.stage1(z, emb, eps1)
        if stage == 1:
            out = F.interpolate(img1, size=(size, size), mode="bilinear", align_corners=False)
        else:
            out = G.stage2(img1, emb, eps2)[0]
        return out.float().cpu().clamp(-1, 1)
    finally:
        G.train(was)


# ----------------------------------------------------------------------------- loaded runs
class TextRun(Run):
    """A trained text-to-image run: ``sample(n, text=...)``, ``sample_texts(texts)``."""

    def __init__(self, *args: Any, run_text: RunText, stage: int, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.run_text = run_text
        self.stage = stage

    def text_inputs(self, texts: list[str], check: bool = True) -> torch.Tensor:
        if check:
            texts = [check_text(t, self.run_text.encoder, self.run_text.vocab)
                     for t in texts]
        return self.run_text.inputs(texts, cache=len(texts) > 64)

    def unknown_words(self, text: str) -> list[str]:
        """Words the GRU vocabulary does not know (read as <unk>); [] for MiniLM."""
        v = self.run_text.vocab
        return v.unknown(text) if v is not None else []

    def sample_texts(self, texts: list[str], seed: int = 0, stage: int | None = None,
                     check: bool = True, ca_scale: float | None = None) -> torch.Tensor:
        """One image per text (z and CA noise seeded by ``seed``); ``ca_scale`` scales the CA
        noise (default: the run's ``task_options.sample_ca_scale``)."""
        if not texts:
            raise GanforgeError("give at least one text.")
        if ca_scale is None:
            ca_scale = parse_options(self.config).sample_ca_scale
        elif not (isinstance(ca_scale, (int, float)) and 0 <= ca_scale <= 1):
            raise GanforgeError(f"the text code's truncation must be in [0, 1] (1: the "
                                f"training noise, 0: each text's mean code), got {ca_scale}.")
        inp = self.text_inputs(list(texts), check)
        z = self.latent(len(texts), seed)
        return generate(self.generator, inp, z, stage or self.stage, seed=seed + 1,
                        size=self.data_shape[-1], repeat_text=False, ca_scale=float(ca_scale))

    def sample(self, n: int, seed: int = 0, truncation: float | None = None,
               truncation_method: str = "scale", text: str | None = None) -> torch.Tensor:
        """n images of ``text``, or of the ten "a regular, upright DIGIT" texts cycled."""
        if n < 1:
            raise GanforgeError(f"the number of samples must be >= 1, got {n}.")
        if truncation is not None and truncation_method != "scale":
            raise GanforgeError("text-to-image runs truncate by scaling the text code's noise: "
                                "use --truncation-method scale.")
        texts = [text] * n if text is not None else [FIXED_TEXTS[i % 10] for i in range(n)]
        return self.sample_texts(texts, seed, ca_scale=truncation)


StackGANTask.run_class = TextRun

__all__ = ["ConditioningAugmentation", "StackGANGenerator", "StackGANTask", "TextRun",
           "generate", "kl_term", "make_networks"]
