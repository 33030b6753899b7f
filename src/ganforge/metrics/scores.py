"""Distribution metrics, computed from scratch in float64.

Every function takes either features (N, D) (``extractor=None``) or raw samples plus an
``extractor`` (a registered name, an Extractor, an ``nn.Module`` or a callable), in which case
the features are computed first.

- ``fid``: Frechet distance between Gaussians fitted to the two feature sets. The trace of the
  matrix square root of S1 S2 is computed as the sum of square roots of the eigenvalues of the
  symmetric matrix sqrt(S1) S2 sqrt(S1) (both from symmetric eigendecompositions, negative
  round-off eigenvalues clipped to 0), which stays real and stable for near-singular covariances.
- ``kid``: unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged
  over random subsets (Binkowski et al. 2018; subset draws as torch-fidelity's).
- ``inception_score``: exp(E_x KL(p(y|x) || p(y))) over splits, from a classifier's logits.
- ``precision_recall``: improved precision/recall (Kynkaanniemi et al. 2019), k-NN radii, k=3.
- ``density_coverage``: density and coverage (Naeem et al. 2020), k=5.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ganforge.errors import DataError, GanforgeError
from ganforge.metrics.features import get_extractor


def _features(x: Any, extractor: Any, who: str) -> np.ndarray:
    """float64 (N, D) features of ``x``."""
    if extractor is not None:
        return get_extractor(extractor).features(x).double().numpy()
    arr = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.ndim != 2:
        raise DataError(f"{who}: without an extractor the inputs must be features of shape "
                        f"(N, D), got shape {arr.shape}. Pass extractor='mnist', 'inception' "
                        f"or 'raw' to score raw samples.")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise DataError(f"{who}: the features contain NaN or infinite values.")
    return arr


def _pair(real: Any, fake: Any, extractor: Any, who: str, min_n: int = 1
          ) -> tuple[np.ndarray, np.ndarray]:
    r = _features(real, extractor, who)
    f = _features(fake, extractor, who)
    if r.shape[1] != f.shape[1]:
        raise DataError(f"{who}: real features have dimension {r.shape[1]} but fake ones "
                        f"{f.shape[1]}; compute both with the same extractor.")
    if min(len(r), len(f)) < min_n:
        raise DataError(f"{who} needs at least {min_n} real and {min_n} fake samples, got "
                        f"{len(r)} and {len(f)}.")
    return r, f


# ------------------------------------------------------------------------------- FID
def gaussian_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (ddof=1) of (N, D) features, float64."""
    x = np.asarray(feats, dtype=np.float64)
    mu = x.mean(axis=0)
    xc = x - mu
    sigma = xc.T @ xc / max(len(x) - 1, 1)
    return mu, sigma


def _sym_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), via symmetric eigendecompositions."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    root1 = _sym_sqrt(s1)
    m = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(eig, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)


def fid(real: Any, fake: Any, extractor: Any = None) -> float:
    """Frechet Inception Distance (in the extractor's embedding). Lower is better."""
    r, f = _pair(real, fake, extractor, "FID", min_n=2)
    return frechet_distance(*gaussian_stats(r), *gaussian_stats(f))


# ------------------------------------------------------------------------------- KID
def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0
                      ) -> np.ndarray:
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(kxx: np.ndarray, kxy: np.ndarray, kyy: np.ndarray) -> float:
    """Unbiased MMD^2 from kernel matrices of two equal-size samples (diagonals excluded)."""
    m = kxx.shape[0]
    sxx = kxx.sum() - np.trace(kxx)
    syy = kyy.sum() - np.trace(kyy)
    return float((sxx + syy) / (m * (m - 1)) - 2.0 * kxy.sum() / (m * m))


def kid(real: Any, fake: Any, extractor: Any = None, subset_size: int = 1000,
        subsets: int = 100, seed: int = 0, degree: int = 3) -> dict[str, float]:
    """Kernel Inception Distance: mean and std of unbiased MMD^2 over random subsets.

    ``subset_size`` is capped at the smaller sample count. Subsets are drawn without
    replacement by ``np.random.RandomState(seed)`` (real, then fake, per subset).
    """
    r, f = _pair(real, fake, extractor, "KID", min_n=2)
    m = int(min(subset_size, len(r), len(f)))
    if subsets < 1:
        raise GanforgeError(f"KID needs subsets >= 1, got {subsets}.")
    rng = np.random.RandomState(seed)
    vals = np.empty(subsets)
    for i in range(subsets):
        x = r[rng.choice(len(r), m, replace=False)]
        y = f[rng.choice(len(f), m, replace=False)]
        vals[i] = mmd2_unbiased(polynomial_kernel(x, x, degree), polynomial_kernel(x, y, degree),
                                polynomial_kernel(y, y, degree))
    return {"kid": float(vals.mean()), "kid_std": float(vals.std()), "kid_subset_size": m,
            "kid_subsets": subsets}


# -------------------------------------------------------------------------------- IS
def inception_score(samples: Any, extractor: Any = None, splits: int = 10, seed: int = 0
                    ) -> dict[str, float]:
    """exp(E KL(p(y|x) || p(y))) per split; mean and std over splits. Higher is better.

    With ``extractor=None`` the input is taken as logits (N, classes). The score lies in
    [1, classes]: the number of classes for confident, evenly spread predictions. Samples are
    shuffled (``torch.randperm`` seeded with ``seed``) before splitting, so data sorted by
    class is not scored per class.
    """
    if extractor is not None:
        logits = get_extractor(extractor).logits(samples).double()
    else:
        logits = torch.as_tensor(np.asarray(samples) if not isinstance(samples, torch.Tensor)
                                 else samples).detach().cpu().double()
        if logits.ndim != 2:
            raise DataError(f"inception_score: without an extractor the input must be logits "
                            f"(N, classes), got shape {tuple(logits.shape)}.")
    n = logits.shape[0]
    splits = int(max(1, min(splits, n)))
    logits = logits[torch.randperm(n, generator=torch.Generator().manual_seed(seed))]
    logp = torch.log_softmax(logits, dim=1)
    scores = []
    for chunk in torch.tensor_split(logp, splits):
        p = chunk.exp()
        log_py = torch.logsumexp(chunk, dim=0) - np.log(chunk.shape[0])
        kl = (p * (chunk - log_py)).sum(1).mean()
        scores.append(float(torch.exp(kl)))
    arr = np.array(scores)
    return {"is": float(arr.mean()), "is_std": float(arr.std()), "is_splits": splits}


# ---------------------------------------------------------------- k-NN based metrics
def pairwise_distances(a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Euclidean distances (len(a), len(b)) in float64, computed in row chunks."""
    bt = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float64))
    out = np.empty((len(a), len(b)))
    for i in range(0, len(a), chunk):
        at = torch.from_numpy(np.ascontiguousarray(a[i:i + chunk], dtype=np.float64))
        out[i:i + chunk] = torch.cdist(at, bt, compute_mode="donot_use_mm_for_euclid_dist").numpy()
    return out


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest other point of the same set."""
    if len(x) <= k:
        raise DataError(f"k-NN radii need more than k={k} samples, got {len(x)}.")
    d = pairwise_distances(x, x)
    return np.partition(d, k, axis=1)[:, k]  # index 0 is the point itself (distance 0)


def precision_recall(real: Any, fake: Any, k: int = 3, extractor: Any = None
                     ) -> dict[str, float]:
    """Improved precision and recall: the share of fakes inside the union of real k-NN balls,
    and the share of reals inside the union of fake k-NN balls (strict inequality)."""
    r, f = _pair(real, fake, extractor, "precision/recall", min_n=k + 1)
    d_rf = pairwise_distances(r, f)
    precision = float((d_rf < knn_radii(r, k)[:, None]).any(axis=0).mean())
    recall = float((d_rf < knn_radii(f, k)[None, :]).any(axis=1).mean())
    return {"precision": precision, "recall": recall}


def density_coverage(real: Any, fake: Any, k: int = 5, extractor: Any = None
                     ) -> dict[str, float]:
    """Density: mean number of real k-NN balls holding each fake, divided by k (can exceed 1).
    Coverage: share of reals whose k-NN ball holds at least one fake."""
    r, f = _pair(real, fake, extractor, "density/coverage", min_n=k + 1)
    radii = knn_radii(r, k)
    d_rf = pairwise_distances(r, f)
    density = float((d_rf < radii[:, None]).sum(axis=0).mean() / k)
    coverage = float((d_rf.min(axis=1) < radii).mean())
    return {"density": density, "coverage": coverage}
