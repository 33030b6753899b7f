"""Health signals computed from a training run: gradient norms, sample diversity, learning rates.

All functions are pure (they read modules and tensors, never change them, never draw random
numbers from the global generator), so watching a run does not change what it trains.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn

from ganforge.errors import ConfigError, did_you_mean

# Losses whose D is a critic (no probabilities) and whose d_real - d_fake estimates the
# Wasserstein-1 distance. Keyed by name so this module does not import the losses.
WASSERSTEIN_LOSSES = ("wasserstein", "wgan_gp", "wgan", "wgan_div")
# Other losses without probabilities (raw critic values in d_real / d_fake).
CRITIC_LOSSES = WASSERSTEIN_LOSSES + ("hinge", "least_squares", "lsgan")

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]
FEATURE_EXTRACTORS: dict[str, FeatureExtractor] = {}


def register_feature_extractor(name: str) -> Callable[[FeatureExtractor], FeatureExtractor]:
    """Register ``fn(x: (N, *shape)) -> (N, F)`` for ``monitor.diversity_features: NAME``."""

    def deco(fn: FeatureExtractor) -> FeatureExtractor:
        FEATURE_EXTRACTORS[name] = fn
        return fn

    return deco


@register_feature_extractor("raw")
def raw_features(x: torch.Tensor) -> torch.Tensor:
    """The samples' own values (pixels, vector entries), flattened."""
    return x.reshape(x.shape[0], -1).float()


def get_feature_extractor(name: str) -> FeatureExtractor:
    if name not in FEATURE_EXTRACTORS:
        raise ConfigError(f"unknown monitor.diversity_features '{name}'."
                          f"{did_you_mean(name, FEATURE_EXTRACTORS)} Known: "
                          f"{', '.join(sorted(FEATURE_EXTRACTORS))} (register more with "
                          f"ganforge.monitor.register_feature_extractor).")
    return FEATURE_EXTRACTORS[name]


def grad_norm(parameters: Iterable[nn.Parameter]) -> float | None:
    """L2 norm of all gradients currently in ``p.grad`` (None when no parameter has one)."""
    grads = [p.grad.detach() for p in parameters if p.grad is not None]
    if not grads:
        return None
    norms = torch._foreach_norm(grads, 2.0)
    return float(torch.linalg.vector_norm(torch.stack([n.float() for n in norms])))


@torch.no_grad()
def mean_pairwise_distance(features: torch.Tensor) -> float:
    """Mean Euclidean distance over all pairs i != j of the rows of ``features`` (N, F)."""
    f = features.reshape(features.shape[0], -1).double()
    n = f.shape[0]
    if n < 2:
        return 0.0
    d = torch.cdist(f, f)
    return float(d.sum() / (n * (n - 1)))  # the diagonal is zero


def learning_rates(optimizers: Mapping[str, torch.optim.Optimizer]) -> dict[str, float]:
    """``lr_g``/``lr_d`` (or ``lr_NAME``) from the first parameter group of each optimizer."""
    short = {"generator": "g", "discriminator": "d"}
    out = {}
    for name, opt in optimizers.items():
        if opt.param_groups:
            out[f"lr_{short.get(name, name)}"] = float(opt.param_groups[0]["lr"])
    return out


def logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return math.log(p / (1 - p))


def is_probability_loss(name: str) -> bool:
    """True when D's d_real / d_fake are probabilities (BCE family)."""
    return name not in CRITIC_LOSSES
