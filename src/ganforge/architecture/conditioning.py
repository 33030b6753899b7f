"""Class-conditional wrappers around spec-built networks.

Generator conditioning:
- ``concat`` (Mirza & Osindero 2014): a label embedding (or one-hot, ``embed_dim: 0``) is
  concatenated to z, so the generator spec is built on ``latent_dim + embed_dim`` inputs.
- ``cbn`` (conditional batch norm, de Vries et al. 2017; used by Miyato & Koyama 2018): every
  ``batch_norm`` of the generator spec becomes a non-affine batch norm followed by a per-class
  scale and shift (initialised to 1 and 0).

Discriminator conditioning:
- ``cgan``: K one-hot label maps concatenated to D's input channels (vectors: K extra features).
- ``projection`` (Miyato & Koyama 2018): logit = psi(phi(x)) + <embed(y), phi(x)>, where phi(x)
  is the spec's feature layer (the input of its last weighted layer).
- ``acgan`` (Odena et al. 2017): a linear class head on phi(x) next to the real/fake logit.

Both wrappers take ``labels=None``, meaning the balanced cycle ``0, 1, ..., K-1, 0, ...``, so
code written for unconditional networks (dry runs, fixed-latent evaluation) still works.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.architecture.builder import SpecNet, build_network
from ganforge.errors import SpecError


def cycle_labels(n: int, num_classes: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """0, 1, ..., K-1, 0, 1, ... (n labels)."""
    return torch.arange(n, device=device) % num_classes


class ConditionalBatchNorm(nn.Module):
    """Batch norm without affine weights, then a per-class scale and shift."""

    def __init__(self, bn: nn.Module, num_classes: int) -> None:
        super().__init__()
        cls = nn.BatchNorm2d if isinstance(bn, nn.BatchNorm2d) else nn.BatchNorm1d
        self.norm = cls(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=False)
        self.gamma = nn.Embedding(num_classes, bn.num_features)
        self.beta = nn.Embedding(num_classes, bn.num_features)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)
        self.labels: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.labels is None:
            raise RuntimeError("ConditionalBatchNorm called without labels")
        h = self.norm(x)
        shape = (-1, h.shape[1]) + (1,) * (h.dim() - 2)
        return h * self.gamma(self.labels).view(shape) + self.beta(self.labels).view(shape)


def _replace_batch_norms(module: nn.Module, num_classes: int) -> list[ConditionalBatchNorm]:
    out: list[ConditionalBatchNorm] = []
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            cbn = ConditionalBatchNorm(child, num_classes)
            setattr(module, name, cbn)
            out.append(cbn)
        else:
            out += _replace_batch_norms(child, num_classes)
    return out


class ConditionalGenerator(nn.Module):
    def __init__(self, spec: dict[str, Any], latent_shape: tuple[int, ...], num_classes: int,
                 method: str = "concat", embed_dim: int = 10) -> None:
        super().__init__()
        if len(latent_shape) != 1:
            raise SpecError(f"conditional generators take a vector latent, got shape "
                            f"{list(latent_shape)}; set latent.dim and drop latent.shape.")
        self.num_classes, self.method = int(num_classes), method
        self.embed_dim = int(embed_dim) if method == "concat" else 0
        if method == "concat":
            width = self.embed_dim or self.num_classes
            self.embed = nn.Embedding(self.num_classes, self.embed_dim) if self.embed_dim else None
            self.body: SpecNet = build_network(spec, (latent_shape[0] + width,), "generator")
            self.cbns: list[ConditionalBatchNorm] = []
        elif method == "cbn":
            self.embed = None
            self.body = build_network(spec, tuple(latent_shape), "generator")
            self.cbns = _replace_batch_norms(self.body, self.num_classes)
            if not self.cbns:
                raise SpecError("conditioning.generator 'cbn' needs batch_norm layers in the "
                                "generator spec (they become conditional); add batch_norm or "
                                "use generator: concat.")
        else:
            raise SpecError(f"unknown generator conditioning '{method}'; use concat or cbn.")
        self.out_shape = self.body.out_shape

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            labels = cycle_labels(z.shape[0], self.num_classes, z.device)
        labels = labels.to(z.device).long()
        if self.method == "concat":
            cond = (self.embed(labels) if self.embed is not None
                    else F.one_hot(labels, self.num_classes).to(z.dtype))
            return self.body(torch.cat([z, cond.to(z.dtype)], 1))
        for m in self.cbns:
            m.labels = labels
        try:
            return self.body(z)
        finally:
            for m in self.cbns:
                m.labels = None


class ConditionalDiscriminator(nn.Module):
    """``forward(x, labels) -> (logit (B, 1), class_logits (B, K) or None)``; with ``twin``
    (AC-GAN only) the class logits are (B, 2K): the class head's K, then the twin head's K."""

    def __init__(self, spec: dict[str, Any], data_shape: tuple[int, ...], num_classes: int,
                 method: str = "cgan", twin: bool = False) -> None:
        super().__init__()
        self.num_classes, self.method = int(num_classes), method
        shape = tuple(int(s) for s in data_shape)
        if method == "cgan":
            shape = (shape[0] + self.num_classes, *shape[1:])
        elif method not in ("projection", "acgan"):
            raise SpecError(f"unknown discriminator conditioning '{method}'; use cgan, "
                            f"projection or acgan.")
        self.body: SpecNet = build_network(spec, shape, "discriminator")
        if self.body.out_shape != (1,):
            raise SpecError(f"discriminator: output {list(self.body.out_shape)}, but it must "
                            f"output one logit per sample; end it with flatten + dense "
                            f"{{units: 1}}.")
        self.proj: nn.Module | None = None
        self.aux: nn.Module | None = None
        if method in ("projection", "acgan"):
            fi = self.body.feature_index
            feat = self.body.plans[fi].out_shape if fi >= 0 else shape
            if len(feat) != 1:
                raise SpecError(f"{method} conditioning reads D's features (the input of its "
                                f"last dense layer) as a vector; they have shape {list(feat)}. "
                                f"Put flatten before the last dense layer.")
            sn = any(p.spectral_norm for p in self.body.plans)
            if method == "projection":
                emb = nn.Embedding(self.num_classes, feat[0])
                nn.init.normal_(emb.weight, std=0.02)
                if sn:
                    from torch.nn.utils.parametrizations import spectral_norm

                    emb = spectral_norm(emb)
                self.proj = emb
            else:
                self.aux = nn.Linear(feat[0], self.num_classes * (2 if twin else 1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if labels is None:
            labels = cycle_labels(x.shape[0], self.num_classes, x.device)
        labels = labels.to(x.device).long()
        if self.method == "cgan":
            onehot = F.one_hot(labels, self.num_classes).to(x.dtype)
            maps = onehot.view(*onehot.shape, *([1] * (x.dim() - 2))).expand(
                -1, -1, *x.shape[2:])
            return self.body(torch.cat([x, maps], 1)), None
        out, feats = self.body(x, return_features=True)
        if self.proj is not None:
            out = out + (self.proj(labels) * feats).sum(1, keepdim=True)
            return out, None
        return out, self.aux(feats)


def build_conditional_networks(cfg: Any, data_shape: tuple[int, ...]
                               ) -> tuple[ConditionalGenerator, ConditionalDiscriminator]:
    """G and D of a config with a ``conditioning`` section; checks G's output shape."""
    c = cfg.conditioning
    g_method = c.generator or ("cbn" if c.method == "projection" else "concat")
    G = ConditionalGenerator(cfg.generator.model_dump(), cfg.latent.full_shape, c.num_classes,
                             g_method, c.embed_dim)
    if tuple(G.out_shape) != tuple(data_shape):
        raise SpecError(f"generator: output {list(G.out_shape)}, data is {list(data_shape)}. "
                        f"The generator's last layer must produce exactly the data shape.")
    D = ConditionalDiscriminator(cfg.discriminator.model_dump(), data_shape, c.num_classes,
                                 c.method, twin=c.twin)
    return G, D
