"""Discriminator rejection sampling (DRS; Azadi et al. 2019, "Discriminator Rejection Sampling").

A GAN's discriminator, trained with the standard (non-saturating or minimax) loss, estimates
``D*(x) = log p_data(x) / p_g(x)`` in its logit. Rejection sampling with acceptance
``p_data / (M p_g) = exp(D*(x) - D*_M)`` (``D*_M`` the largest logit) would then turn the
generator's distribution into the data's; DRS makes it practical:

- ``D*_M`` is estimated on a burn-in set of generated samples and raised whenever a larger
  logit is seen;
- the acceptance probability is ``sigmoid(F(x))`` with
  ``F(x) = D*(x) - D*_M - log(1 - exp(D*(x) - D*_M - eps)) - gamma``: the log-odds form of
  ``exp(D*(x) - D*_M)`` shifted by ``gamma``, which trades acceptance rate for fidelity;
- ``gamma`` is set once, from the burn-in: the ``quantile`` of ``F`` without ``gamma`` (the
  paper takes a percentile of F per batch), so a burn-in sample at that quantile is accepted
  half the time; when a later batch raises ``D*_M``, F falls for every candidate and gamma
  stays, so acceptance falls with it.

D's logit estimates the density ratio against the generator D was trained with; a run that
samples from an EMA generator is scored against a slightly different distribution, so DRS is
then an approximation, where ``filter``, which only ranks by the logit, is unaffected.

``filter`` is the hard version: keep the candidates whose logit is above the ``quantile`` of
the burn-in's logits, i.e. drop the ``quantile`` share that D finds least real. On 2-D mixtures
it removes the samples G strings between modes while every mode keeps its share (D's soft
DRS acceptance instead favours the modes it scores higher; benchmarks/RESULTS.md, issue 20).

Samples are drawn in seeded batches until ``n`` are accepted; the same seed gives the same
samples. Pure functions here; ``Run.sample`` (run.py) wires them to a run's G and D.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ganforge.errors import GanforgeError

REJECTION_METHODS = ("none", "drs", "filter")
# the quantile each method uses when the config leaves it unset
DEFAULT_QUANTILE = {"drs": 0.8, "filter": 0.1}
# F's log(1 - exp(.)) is finite only below 0: the paper's epsilon
DRS_EPS = 1e-6
# candidate batches are seeded from a stream of their own, away from the seeds of plain
# sampling (0, 1, ...) and of other sample seeds' batches (2**20 batches apart)
SEED_BASE, SEED_STRIDE = 2**40, 2**20


def burn_in_seed(seed: int) -> int:
    """The latent seed of the burn-in set of ``seed``; its batches follow it (+1, +2, ...)."""
    return SEED_BASE + seed * SEED_STRIDE


def check_rejection(method: str, quantile: float | None = None) -> None:
    if method not in REJECTION_METHODS:
        raise GanforgeError(f"unknown rejection method '{method}'; use one of "
                            f"{', '.join(REJECTION_METHODS)}.")
    if quantile is not None and not (0.0 <= quantile < 1.0):
        raise GanforgeError(f"the rejection quantile must be in [0, 1), got {quantile}.")


def drs_logits_f(logits: torch.Tensor, max_logit: float) -> torch.Tensor:
    """F(x) without gamma: ``D - M - log(1 - exp(D - M - eps))`` (log-odds of exp(D - M))."""
    d = logits.double() - max_logit
    return d - torch.log1p(-torch.exp(torch.clamp(d - DRS_EPS, max=-DRS_EPS)))


def drs_accept_prob(logits: torch.Tensor, max_logit: float, gamma: float) -> torch.Tensor:
    """Probability of keeping each candidate: ``sigmoid(F(x) - gamma)``."""
    return torch.sigmoid(drs_logits_f(logits, max_logit) - gamma)


Draw = Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]


def drs_sample(draw: Draw, n: int, quantile: float = 0.8, burn_in: int = 10000,
               batch: int = 2048, seed: int = 0, max_candidates: int | None = None,
               gamma: float | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """``n`` samples kept by DRS from candidates ``draw(count, batch_seed) -> (x, logits)``.
    ``gamma`` fixes the shift instead of taking ``quantile`` of the burn-in's F; ``gamma=0``
    is exact rejection sampling of ``p_g exp(D*)`` once ``D*_M`` is the true maximum.

    Returns the samples and a record: candidates drawn, acceptance rate, ``D*_M`` at the end,
    ``gamma``. Raises when ``max_candidates`` (default ``200 n + burn_in``) are not enough."""
    check_rejection("drs", quantile)
    _, burn_logits = draw(max(burn_in, 1), burn_in_seed(seed))
    state = {"max": float(burn_logits.max())}
    if gamma is None:
        gamma = float(torch.quantile(drs_logits_f(burn_logits, state["max"]), quantile))
    coin = torch.Generator().manual_seed(seed + 7919)

    def keep(logits: torch.Tensor) -> torch.Tensor:
        state["max"] = max(state["max"], float(logits.max()))
        p = drs_accept_prob(logits, state["max"], gamma)
        return torch.rand(len(p), generator=coin, dtype=torch.float64) < p

    out, drawn, acceptance = _collect(draw, n, keep, batch, seed, max_candidates, burn_in)
    return out, {"method": "drs", "quantile": quantile, "burn_in": burn_in, "gamma": gamma,
                 "max_logit": state["max"], "candidates": drawn, "acceptance": acceptance}


def filter_sample(draw: Draw, n: int, quantile: float = 0.1, burn_in: int = 10000,
                  batch: int = 2048, seed: int = 0, max_candidates: int | None = None
                  ) -> tuple[torch.Tensor, dict[str, Any]]:
    """``n`` candidates whose logit is above the ``quantile`` of the burn-in's logits (hard
    discriminator filtering); the record holds that threshold and the acceptance rate."""
    check_rejection("filter", quantile)
    _, burn_logits = draw(max(burn_in, 1), burn_in_seed(seed))
    threshold = float(torch.quantile(burn_logits.double(), quantile))
    out, drawn, acceptance = _collect(draw, n, lambda logits: logits.double() >= threshold,
                                      batch, seed, max_candidates, burn_in)
    return out, {"method": "filter", "quantile": quantile, "burn_in": burn_in,
                 "threshold": threshold, "candidates": drawn, "acceptance": acceptance}


def _collect(draw: Draw, n: int, keep: Callable[[torch.Tensor], torch.Tensor], batch: int,
             seed: int, max_candidates: int | None, burn_in: int
             ) -> tuple[torch.Tensor, int, float]:
    """Draw seeded batches after the burn-in's until ``keep`` has passed ``n`` candidates;
    the first ``n`` kept, the candidates drawn and the share of them kept."""
    if n < 1:
        raise GanforgeError(f"the number of samples must be >= 1, got {n}.")
    limit = max_candidates if max_candidates is not None else 200 * n + burn_in
    batch_seed = burn_in_seed(seed) + 1
    kept: list[torch.Tensor] = []
    have, drawn = 0, 0
    while have < n:
        if drawn >= limit:
            raise GanforgeError(
                f"rejection sampling kept {have} of {drawn} candidates, fewer than the {n} "
                f"asked for; lower sampling.quantile or sample without rejection "
                f"(--rejection none).")
        x, logits = draw(batch, batch_seed)
        batch_seed += 1
        drawn += len(logits)
        mask = keep(logits)
        kept.append(x[mask])
        have += int(mask.sum())
    return torch.cat(kept)[:n], drawn, have / drawn
