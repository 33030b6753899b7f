"""Latent-space tools for a trained generator: interpolation, vector arithmetic, truncation.

- ``slerp`` / ``lerp`` and ``interpolation_path``: walks between two latents. Spherical
  interpolation suits Gaussian latents (a straight line through the origin region of a
  high-dimensional Gaussian passes through latents of unusually small norm, which the generator
  rarely saw); linear interpolation suits uniform latents, whose box is convex.
- ``concept_vector`` / ``latent_arithmetic``: DCGAN-style arithmetic (Radford et al. 2016): the
  average latent of a few chosen samples stands for a concept; concepts are added and
  subtracted, e.g. ``mean(smiling woman) - mean(neutral woman) + mean(neutral man)``.
- ``truncate``: the truncation trick, two ways. ``scale`` moves every latent toward the mean
  latent, ``c + psi * (z - c)`` (StyleGAN's psi, applied in z-space where ganforge has no mapping
  network; the mean of N(0, I) and of U(-1, 1) is 0). ``resample`` redraws each component
  whose magnitude exceeds ``psi`` from the latent distribution restricted to ``[-psi, psi]``
  (BigGAN's truncated normal), keeping the components already inside. Both give one latent
  (the mean) at ``psi = 0`` and leave latents unchanged at ``psi = 1`` (scale) or
  ``psi = inf`` (resample).

Everything above works on tensors of shape ``(N, *latent_shape)`` and never touches the
generator, so it is usable for any spec; ``latent_walk(run, ...)`` applies it to a loaded run.
For class-conditional runs (task ``conditional``) a walk keeps one class per row, and
``label_sweep(run, ...)`` holds each row's latent fixed while the class changes column by column.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ganforge.errors import GanforgeError

TRUNCATION_METHODS = ("scale", "resample")
INTERPOLATION_METHODS = ("auto", "slerp", "lerp")


# ------------------------------------------------------------------------------ interpolation
def _as_steps(t: torch.Tensor | Sequence[float] | float, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(t, dtype=torch.float64).reshape(-1).to(dtype)


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor | Sequence[float] | float
         ) -> torch.Tensor:
    """Linear interpolation. ``z0``, ``z1``: (N, *shape); ``t``: (T,). Returns (N, T, *shape)."""
    _check_pair(z0, z1)
    tt = _as_steps(t, torch.float64).to(z0.device)  # the run's latents may be on a GPU
    a, b = z0.double().unsqueeze(1), z1.double().unsqueeze(1)
    w = tt.reshape(1, -1, *([1] * (z0.ndim - 1)))
    out = a * (1 - w) + b * w
    return _pin_endpoints(out, z0, z1, tt)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor | Sequence[float] | float,
          eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985), as White (2016) uses it for GAN latents:
    ``sin((1-t)w)/sin(w) * z0 + sin(t w)/sin(w) * z1`` with ``w`` the angle between the two
    (each sample flattened). Nearly parallel pairs fall back to linear interpolation.
    Returns (N, T, *shape); ``t = 0`` and ``t = 1`` give the endpoints exactly.
    """
    _check_pair(z0, z1)
    tt = _as_steps(t, torch.float64).to(z0.device)  # the run's latents may be on a GPU
    n = z0.shape[0]
    a = z0.double().reshape(n, -1)
    b = z1.double().reshape(n, -1)
    na, nb = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
    cos = ((a * b).sum(dim=1, keepdim=True) / (na * nb).clamp_min(1e-300)).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)  # (N, 1)
    so = torch.sin(omega)
    w = tt.reshape(1, -1)  # (1, T)
    parallel = (so.abs() < eps) | (na < eps) | (nb < eps)
    safe = torch.where(parallel, torch.ones_like(so), so)
    wa = torch.where(parallel, 1 - w, torch.sin((1 - w) * omega) / safe)  # (N, T)
    wb = torch.where(parallel, w.expand_as(wa), torch.sin(w * omega) / safe)
    out = wa.unsqueeze(-1) * a.unsqueeze(1) + wb.unsqueeze(-1) * b.unsqueeze(1)
    out = out.reshape(n, tt.numel(), *z0.shape[1:])
    return _pin_endpoints(out, z0, z1, tt)


def _check_pair(z0: torch.Tensor, z1: torch.Tensor) -> None:
    if z0.shape != z1.shape:
        raise GanforgeError(f"interpolation endpoints must have the same shape, got "
                            f"{tuple(z0.shape)} and {tuple(z1.shape)}.")
    if z0.ndim < 2:
        raise GanforgeError("interpolation endpoints must be batches (N, *latent_shape); "
                            "use z.unsqueeze(0) for a single latent.")


def _pin_endpoints(out: torch.Tensor, z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor
                   ) -> torch.Tensor:
    """Cast back to the input dtype and make t=0 / t=1 equal the endpoints bit for bit."""
    out = out.to(z0.dtype)
    for i, ti in enumerate(t.tolist()):
        if ti == 0.0:
            out[:, i] = z0
        elif ti == 1.0:
            out[:, i] = z1
    return out


def interpolation_method(distribution: str, method: str = "auto") -> str:
    """``auto`` picks slerp for Gaussian latents and lerp for uniform ones."""
    if method not in INTERPOLATION_METHODS:
        raise GanforgeError(f"unknown interpolation method '{method}'; use one of "
                            f"{', '.join(INTERPOLATION_METHODS)}.")
    if method == "auto":
        return "lerp" if distribution == "uniform" else "slerp"
    return method


def interpolation_path(z0: torch.Tensor, z1: torch.Tensor, steps: int, method: str = "slerp"
                       ) -> torch.Tensor:
    """``steps`` evenly spaced latents from ``z0`` to ``z1`` inclusive: (N, steps, *shape)."""
    if steps < 2:
        raise GanforgeError(f"an interpolation needs at least 2 steps (both endpoints), "
                            f"got {steps}.")
    t = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)
    if method == "slerp":
        return slerp(z0, z1, t)
    if method == "lerp":
        return lerp(z0, z1, t)
    raise GanforgeError(f"unknown interpolation method '{method}'; use slerp or lerp.")


# ------------------------------------------------------------------------------- arithmetic
def concept_vector(z: torch.Tensor) -> torch.Tensor:
    """The average latent of a group of chosen samples (N, *shape) -> (*shape)."""
    if z.ndim < 2 or z.shape[0] < 1:
        raise GanforgeError("a concept is a non-empty batch of latents (N, *latent_shape).")
    return z.mean(dim=0)


def latent_arithmetic(add: Sequence[torch.Tensor], subtract: Sequence[torch.Tensor] = ()
                      ) -> torch.Tensor:
    """Sum of the concept vectors in ``add`` minus those in ``subtract`` (each a batch of latents
    whose mean stands for the concept). DCGAN's ``man with glasses - man + woman`` is
    ``latent_arithmetic([man_glasses, woman], [man])``."""
    if not add:
        raise GanforgeError("latent arithmetic needs at least one concept to add.")
    shapes = {tuple(g.shape[1:]) for g in list(add) + list(subtract)}
    if len(shapes) != 1:
        raise GanforgeError(f"all concepts must hold latents of one shape, got {sorted(shapes)}.")
    out = torch.zeros_like(concept_vector(add[0]))
    for g in add:
        out = out + concept_vector(g)
    for g in subtract:
        out = out - concept_vector(g)
    return out


def jitter(z: torch.Tensor, n: int, scale: float = 0.25, seed: int = 0) -> torch.Tensor:
    """``n`` variations of one latent (*shape): z plus uniform noise in [-scale, scale], as in
    DCGAN's arithmetic figures. Row 0 is ``z`` itself."""
    g = torch.Generator().manual_seed(seed)
    noise = (torch.rand((n, *z.shape), generator=g, dtype=torch.float64) * 2 - 1) * scale
    noise[0] = 0
    return (z.unsqueeze(0).double() + noise.to(z.device)).to(z.dtype)


# ------------------------------------------------------------------------------- truncation
def check_truncation(psi: float, method: str) -> None:
    if method not in TRUNCATION_METHODS:
        raise GanforgeError(f"unknown truncation method '{method}'; use one of "
                            f"{', '.join(TRUNCATION_METHODS)}.")
    if isinstance(psi, bool) or not isinstance(psi, (int, float)) or math.isnan(psi):
        raise GanforgeError(f"truncation psi must be a number, got {psi!r}.")
    if psi < 0:
        raise GanforgeError(f"truncation psi must be >= 0 (0 = the mean latent only, 1 = no "
                            f"truncation for 'scale'), got {psi}.")
    if method == "scale" and psi > 1:
        raise GanforgeError(f"truncation psi for 'scale' must be in [0, 1] (1 = no truncation), "
                            f"got {psi}.")


def mean_latent(distribution: str, shape: Sequence[int]) -> torch.Tensor:
    """The mean of the latent distribution: 0 for N(0, I) and for U(-1, 1)."""
    if distribution not in ("normal", "uniform"):
        raise GanforgeError(f"unknown latent distribution '{distribution}'.")
    return torch.zeros(tuple(shape))


def truncate(z: torch.Tensor, psi: float, distribution: str = "normal", method: str = "scale",
             seed: int = 0, center: torch.Tensor | None = None) -> torch.Tensor:
    """Truncate latents ``z`` (N, *shape) with strength ``psi`` (see the module notes).

    ``scale``: ``center + psi * (z - center)``, psi in [0, 1]; ``center`` defaults to the
    distribution's mean (0). ``resample``: components with ``|z| > psi`` are redrawn (seeded by
    ``seed``) from the latent distribution restricted to ``[-psi, psi]``, by inverting its CDF,
    so the result is exactly a truncated normal (or uniform) sample; the others are kept.
    """
    check_truncation(psi, method)
    psi = float(psi)
    if method == "scale":
        c = mean_latent(distribution, z.shape[1:]) if center is None else center
        c = c.to(device=z.device, dtype=torch.float64)
        return (c + psi * (z.double() - c)).to(z.dtype)
    if center is not None:
        raise GanforgeError("a custom center applies to method 'scale' only.")
    if distribution not in ("normal", "uniform"):
        raise GanforgeError(f"unknown latent distribution '{distribution}'.")
    zd = z.double().cpu()
    outside = zd.abs() > psi
    if psi == 0.0:
        out = torch.zeros_like(zd)
    elif not bool(outside.any()):
        out = zd
    else:
        g = torch.Generator().manual_seed(seed)
        u = torch.rand(zd.shape, generator=g, dtype=torch.float64)
        if distribution == "uniform":
            lim = min(psi, 1.0)
            fresh = (u * 2 - 1) * lim
        else:
            lo = torch.special.ndtr(torch.tensor(-psi, dtype=torch.float64))
            hi = 1.0 - lo  # symmetric
            fresh = torch.special.ndtri(lo + u * (hi - lo)).clamp(-psi, psi)
        out = torch.where(outside, fresh, zd)
    return out.to(device=z.device, dtype=z.dtype)


def truncated_normal_std(psi: float) -> float:
    """Standard deviation of N(0, 1) restricted to [-psi, psi] (a reference for tests)."""
    if psi <= 0:
        return 0.0
    phi = math.exp(-psi * psi / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(psi / math.sqrt(2))
    return math.sqrt(max(1.0 - 2 * psi * phi / mass, 0.0))


def describe_truncation(psi: float | None, method: str) -> dict[str, Any] | None:
    """A JSON-able record of a truncation setting, for logs and sample metadata."""
    if psi is None:
        return None
    return {"psi": float(psi), "method": method}


# ---------------------------------------------------------------------------- with a run
def is_conditional(run: Any) -> bool:
    """Whether a loaded run's generator takes a class label (``ConditionalRun``)."""
    return hasattr(run, "num_classes")


def row_labels(run: Any, rows: int, labels: int | Sequence[int] | None = None) -> torch.Tensor:
    """One class per row for a conditional run: ``None`` cycles 0..K-1 over the rows, an int is
    every row's class, a sequence gives each row's class. (rows,) int64."""
    if not is_conditional(run):
        raise GanforgeError(f"class labels apply to conditional runs (task conditional, e.g. the "
                            f"cgan-mnist preset); this run's task is '{run.config.task}'. Drop "
                            f"the label option.")
    return run.labels_for(rows, labels)


def check_classes(run: Any, classes: Sequence[int] | None) -> torch.Tensor:
    """The sweep's columns: ``None`` = every class 0..K-1, else distinct classes in 0..K-1."""
    if not is_conditional(run):
        raise GanforgeError(f"a label sweep needs a conditional run (task conditional, e.g. the "
                            f"cgan-mnist preset); this run's task is '{run.config.task}'.")
    k = int(run.num_classes)
    if classes is None:
        return torch.arange(k)
    y = torch.as_tensor(list(classes), dtype=torch.long).reshape(-1)
    if y.numel() == 0:
        raise GanforgeError(f"give at least one class to sweep (0..{k - 1}).")
    bad = [int(c) for c in y if not 0 <= int(c) < k]
    if bad:
        raise GanforgeError(f"classes must be in 0..{k - 1}, got {bad}.")
    if len(set(y.tolist())) != y.numel():
        raise GanforgeError(f"classes to sweep must be distinct, got {y.tolist()}.")
    return y


def latent_walk(run: Any, pairs: int = 8, steps: int = 10, seed: int = 0, method: str = "auto",
                truncation: float | None = None, truncation_method: str = "scale",
                labels: int | Sequence[int] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Walks between ``pairs`` pairs of random latents of a run (``ganforge.api.Run``).

    Returns ``(z, x)``: latents (pairs, steps, *latent_shape) and samples
    (pairs, steps, *data_shape). Endpoints are drawn with ``run.latent(2 * pairs, seed)`` (first
    half start, second half end) and truncated first when ``truncation`` is given, so
    ``x[:, 0]`` and ``x[:, -1]`` are the samples of those two latents.

    Conditional runs: walk ``i`` keeps one class, ``row_labels(run, pairs, labels)[i]`` (by
    default 0..K-1 cycled over the walks), so only the latent changes along a row. ``labels``
    on an unconditional run is an error.
    """
    if pairs < 1:
        raise GanforgeError(f"--pairs must be >= 1, got {pairs}.")
    y = row_labels(run, pairs, labels) if (labels is not None or is_conditional(run)) else None
    cfg = run.config.latent
    how = interpolation_method(cfg.distribution, method)
    ends = run.latent(2 * pairs, seed)
    if truncation is not None:
        ends = truncate(ends, truncation, cfg.distribution, truncation_method,
                        seed=seed + 1_000_003)
    z = interpolation_path(ends[:pairs], ends[pairs:], steps, how)
    flat = z.reshape(pairs * steps, *z.shape[2:])
    if y is None:
        x = run.generate(flat)
    else:
        x = run.generate(flat, labels=y.repeat_interleave(steps))
    return z, x.reshape(pairs, steps, *x.shape[1:])


def label_sweep(run: Any, rows: int = 8, seed: int = 0, classes: Sequence[int] | None = None,
                truncation: float | None = None, truncation_method: str = "scale"
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fixed-z sweep across labels of a conditional run: row ``i`` holds one latent
    ``run.latent(rows, seed)[i]`` (truncated first when ``truncation`` is given, as in
    ``Run.sample``) and column ``j`` asks for class ``classes[j]`` (default every class).

    Returns ``(z, y, x)``: latents (rows, *latent_shape), classes (C,) and samples
    (rows, C, *data_shape), ``x[i, j] = G(z[i], y[j])``. What stays the same along a row is
    what the generator took from z (style, stroke, pose); what changes is the class.
    """
    if rows < 1:
        raise GanforgeError(f"the number of rows (latents) must be >= 1, got {rows}.")
    y = check_classes(run, classes)
    z = run.latent(rows, seed)
    if truncation is not None:
        z = truncate(z, truncation, run.config.latent.distribution, truncation_method,
                     seed=seed + 1_000_003)
    c = y.numel()
    flat = z.repeat_interleave(c, dim=0)
    x = run.generate(flat, labels=y.repeat(rows))
    return z, y, x.reshape(rows, c, *x.shape[1:])
