"""Mode coverage of 2-D Gaussian mixtures, with PacGAN's protocol (Lin et al. 2018).

Each sample is assigned to its nearest mode; it is *high quality* when that distance is below
``threshold`` (3) standard deviations. A mode is *covered* when at least one high-quality sample
is nearest to it. Reverse KL is KL(histogram of high-quality samples over modes || uniform).
PacGAN scores 2,500 samples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass
class ModeCoverage:
    modes: int
    total_modes: int
    high_quality: float  # fraction of samples within threshold*std of their nearest mode
    reverse_kl: float
    counts: list[int]
    n_samples: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def mode_coverage(samples: torch.Tensor | np.ndarray, means: np.ndarray | list, std: float,
                  threshold: float = 3.0) -> ModeCoverage:
    x = torch.as_tensor(np.asarray(samples, dtype=np.float64) if not isinstance(samples, torch.Tensor)
                        else samples.detach().cpu().double())
    mu = torch.as_tensor(np.asarray(means, dtype=np.float64))
    finite = torch.isfinite(x).all(dim=1)
    d = torch.cdist(x[finite], mu)  # (n, K)
    dist, nearest = d.min(dim=1)
    hq = dist < threshold * std
    k = mu.shape[0]
    counts = torch.bincount(nearest[hq], minlength=k).double()
    n_hq = counts.sum().item()
    if n_hq > 0:
        p = counts / n_hq
        nz = p > 0
        rkl = float((p[nz] * torch.log(p[nz] * k)).sum())
    else:
        rkl = float("inf")
    return ModeCoverage(
        modes=int((counts > 0).sum()),
        total_modes=k,
        high_quality=float(n_hq / max(x.shape[0], 1)),
        reverse_kl=rkl,
        counts=[int(c) for c in counts.tolist()],
        n_samples=int(x.shape[0]),
    )
