"""Seeds, devices, latent sampling and RNG state capture."""

from __future__ import annotations

from typing import Any

import torch

from ganforge.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for but no CUDA GPU is available; "
                          "use device: auto or cpu.")
    return torch.device(name)


def sample_latent(n: int, shape: tuple[int, ...], distribution: str,
                  generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """z ~ N(0, I) or U(-1, 1), drawn on the CPU generator (reproducible), moved to device."""
    if distribution == "uniform":
        z = torch.rand((n, *shape), generator=generator) * 2 - 1
    else:
        z = torch.randn((n, *shape), generator=generator)
    return z.to(device, non_blocking=True)


def fork_rng() -> Any:
    """A context in which random draws leave the run's streams untouched: it forks the CPU RNG
    and, once CUDA is in use, every GPU's (``fork_rng(devices=[])`` forks the CPU's alone, and
    a stochastic layer run on a GPU inside it, e.g. Gumbel noise, would move training's)."""
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    return torch.random.fork_rng(devices=range(torch.cuda.device_count()) if cuda else [])


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))
