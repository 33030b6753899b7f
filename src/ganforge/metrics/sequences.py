"""TimeGAN's post-hoc scores of synthetic sequences (Yoon et al. 2019), and a picture.

- **Discriminative score**: a 1-layer GRU (hidden = floor(dim / 2)) + linear logit is trained
  for 2,000 iterations (batch 128 real + 128 synthetic, Adam) to tell real from synthetic on 80%
  of each set; the score is |accuracy - 0.5| on the other 20%. 0 is best (indistinguishable).
  TimeGAN always has as many synthetic as real sequences; when the counts differ, a random
  subset of the larger set is used so that chance accuracy stays 0.5.
- **Predictive score** (train on synthetic, test on real): a GRU (hidden = floor(dim / 2)) with
  a sigmoid head is trained for 5,000 iterations (batch 128, L1 loss, Adam) on synthetic
  sequences to predict feature dim-1 at step t+1 from features 0..dim-2 at step t; the score
  is the mean absolute error on all real sequences. Lower is better.
- Each is repeated over seeds (TimeGAN repeats 10 times) and reported as mean +- std.
- :func:`embedding_picture`: PCA (fitted on real) and t-SNE of real vs synthetic sequences,
  each sequence averaged over its features first, as in TimeGAN's visualisation.

Adam uses TensorFlow's defaults (lr 1e-3, betas 0.9/0.999, eps 1e-8) as in the reference code.
PyTorch's GRU places the reset gate slightly differently from TensorFlow's GRUCell; the scores
are statistics of a trained classifier and regressor, not bit-equal to the reference.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.errors import DataError
from ganforge.progress import Progress

DISC_ITERATIONS = 2000
PRED_ITERATIONS = 5000
BATCH_SIZE = 128
TRAIN_RATE = 0.8
REPEATS = 10
PICTURE_SAMPLES = 1000
PROGRESS_ITERATIONS = 5000  # scores of at least this many training iterations show progress


@dataclass
class RepeatedScore:
    name: str
    mean: float
    std: float
    values: list[float]
    protocol: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.mean:.3f} +- {self.std:.3f}"


def _as_array(x: torch.Tensor | np.ndarray, what: str) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.ndim != 3:
        raise DataError(f"{what} must be sequences of shape (N, T, F), got {arr.shape}.")
    if not np.isfinite(arr).all():
        raise DataError(f"{what} holds NaN or infinite values.")
    return arr.astype(np.float32)


def _check_pair(real: np.ndarray, fake: np.ndarray) -> None:
    if real.shape[1:] != fake.shape[1:]:
        raise DataError(f"real sequences are {real.shape[1:]} (T, F) but synthetic ones are "
                        f"{fake.shape[1:]}; they must match.")


class _GRUHead(nn.Module):
    """GRU over (N, T, F) and a linear map of its last state or of every step."""

    def __init__(self, in_features: int, hidden: int, every_step: bool) -> None:
        super().__init__()
        self.rnn = nn.GRU(in_features, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 1)
        self.every_step = every_step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, last = self.rnn(x)
        return self.out(seq).squeeze(-1) if self.every_step else self.out(last[-1]).squeeze(-1)


def _adam(params: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)


def discriminative_score(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray,
                         iterations: int = DISC_ITERATIONS, batch_size: int = BATCH_SIZE,
                         seed: int = 0, train_rate: float = TRAIN_RATE) -> float:
    """|test accuracy - 0.5| of a post-hoc GRU classifier of real vs synthetic (TimeGAN)."""
    r, g = _as_array(real, "real data"), _as_array(fake, "synthetic data")
    _check_pair(r, g)
    rs = np.random.RandomState(seed)
    # TimeGAN's train_test_divide: one permutation per set, first train_rate of each to train.
    # Sets of unequal size are cut to the smaller one, so that chance accuracy stays 0.5.
    k = min(len(r), len(g))
    pr, pg = rs.permutation(len(r))[:k], rs.permutation(len(g))[:k]
    r, g = r[pr], g[pg]
    pr, pg = np.arange(k), np.arange(k)
    nr, ng = int(len(r) * train_rate), int(len(g) * train_rate)
    if min(nr, ng) < 1 or nr == len(r) or ng == len(g):
        raise DataError(f"the discriminative score needs at least 2 real and 2 synthetic "
                        f"sequences; got {len(r)} and {len(g)}.")
    r_tr, r_te = torch.from_numpy(r[pr[:nr]]), torch.from_numpy(r[pr[nr:]])
    g_tr, g_te = torch.from_numpy(g[pg[:ng]]), torch.from_numpy(g[pg[ng:]])
    dim = r.shape[2]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _GRUHead(dim, max(1, dim // 2), every_step=False)
    opt = _adam(model.parameters())
    br, bg = min(batch_size, nr), min(batch_size, ng)
    for _ in range(iterations):
        xr = r_tr[torch.from_numpy(rs.permutation(nr)[:br])]
        xg = g_tr[torch.from_numpy(rs.permutation(ng)[:bg])]
        lr_, lg_ = model(xr), model(xg)
        loss = (F.binary_cross_entropy_with_logits(lr_, torch.ones_like(lr_))
                + F.binary_cross_entropy_with_logits(lg_, torch.zeros_like(lg_)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        correct = (torch.sigmoid(model(r_te)) > 0.5).sum() + (torch.sigmoid(model(g_te)) <= 0.5).sum()
    acc = float(correct) / (len(r_te) + len(g_te))
    return abs(0.5 - acc)


def predictive_score(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray,
                     iterations: int = PRED_ITERATIONS, batch_size: int = BATCH_SIZE,
                     seed: int = 0) -> float:
    """MAE on real data of a next-step GRU regressor trained on synthetic data (TimeGAN)."""
    r, g = _as_array(real, "real data"), _as_array(fake, "synthetic data")
    _check_pair(r, g)
    dim = r.shape[2]
    if dim < 2:
        raise DataError("the predictive score predicts the last feature from the others, so "
                        "it needs at least 2 features; this data has 1.")
    rs = np.random.RandomState(seed)
    gx, gy = torch.from_numpy(g[:, :-1, : dim - 1]), torch.from_numpy(g[:, 1:, dim - 1])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _GRUHead(dim - 1, max(1, dim // 2), every_step=True)
    opt = _adam(model.parameters())
    b = min(batch_size, len(g))
    for _ in range(iterations):
        idx = torch.from_numpy(rs.permutation(len(g))[:b])
        pred = torch.sigmoid(model(gx[idx]))
        loss = (pred - gy[idx]).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = torch.sigmoid(model(torch.from_numpy(r[:, :-1, : dim - 1])))
        mae_per_seq = (pred - torch.from_numpy(r[:, 1:, dim - 1])).abs().mean(dim=1)
    return float(mae_per_seq.mean())


def repeated_score(name: str, real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray,
                   repeats: int = REPEATS, iterations: int | None = None,
                   batch_size: int = BATCH_SIZE, seed: int = 0) -> RepeatedScore:
    """``discriminative`` or ``predictive`` score repeated with seeds seed..seed+repeats-1."""
    fns = {"discriminative": (discriminative_score, DISC_ITERATIONS),
           "predictive": (predictive_score, PRED_ITERATIONS)}
    if name not in fns:
        raise ValueError(f"unknown score '{name}'; use discriminative or predictive")
    fn, default_its = fns[name]
    its = default_its if iterations is None else int(iterations)
    # a post-hoc network trained per repeat: minutes at TimeGAN's iteration counts
    bar = Progress(repeats * its >= PROGRESS_ITERATIONS, repeats, 0, f"{name} score",
                   unit="repeat")
    vals = []
    try:
        for i in range(repeats):
            vals.append(fn(real, fake, iterations=its, batch_size=batch_size, seed=seed + i))
            bar.update()
    finally:
        bar.close()
    std = float(np.std(vals)) if len(vals) > 1 else 0.0
    protocol = {"name": f"timegan-{name}", "iterations": its, "batch_size": batch_size,
                "repeats": repeats, "hidden": "floor(dim/2)", "seed": seed,
                "n_real": len(real), "n_synthetic": len(fake)}
    if name == "discriminative":
        protocol["train_rate"] = TRAIN_RATE
    return RepeatedScore(name, float(np.mean(vals)), std, [float(v) for v in vals], protocol)


def sequence_scores(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray,
                    repeats: int = REPEATS, disc_iterations: int = DISC_ITERATIONS,
                    pred_iterations: int = PRED_ITERATIONS, seed: int = 0
                    ) -> dict[str, RepeatedScore]:
    """Both scores (the predictive one only when there are >= 2 features)."""
    out = {"discriminative": repeated_score("discriminative", real, fake, repeats,
                                            disc_iterations, seed=seed)}
    if _as_array(real, "real data").shape[2] >= 2:
        out["predictive"] = repeated_score("predictive", real, fake, repeats, pred_iterations,
                                           seed=seed)
    return out


# ------------------------------------------------------------------------- picture
def embed_2d(real: np.ndarray, fake: np.ndarray, method: str, seed: int = 0
             ) -> tuple[np.ndarray, np.ndarray]:
    """2-D PCA (fitted on real) or t-SNE (on both) of feature-averaged sequences."""
    pr, pf = real.mean(axis=2), fake.mean(axis=2)
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed).fit(pr)
        return pca.transform(pr), pca.transform(pf)
    if method == "tsne":
        from sklearn.manifold import TSNE

        both = np.concatenate([pr, pf])
        perplexity = float(min(40, max(2, (len(both) - 1) // 3)))
        emb = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                   max_iter=300 if len(both) > 500 else 500).fit_transform(both)
        return emb[: len(pr)], emb[len(pr):]
    raise ValueError(f"unknown method '{method}'; use pca or tsne")


def _panel(real: np.ndarray, fake: np.ndarray, title: str, size: int) -> Any:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size + 18), "white")
    draw = ImageDraw.Draw(img)
    both = np.concatenate([real, fake])
    lo, hi = both.min(axis=0), both.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    margin = 8

    def px(p: np.ndarray) -> tuple[float, float]:
        u = (p - lo) / span
        return (margin + u[0] * (size - 2 * margin), 18 + margin + (1 - u[1]) * (size - 2 * margin))

    for pts, color in ((real, (220, 40, 40)), (fake, (40, 80, 220))):
        for p in pts:
            x, y = px(p)
            draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=color)
    draw.text((4, 3), f"{title}: real (red) vs synthetic (blue)", fill=(0, 0, 0))
    return img


def embedding_picture(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray,
                      path: str | Path, methods: tuple[str, ...] = ("pca", "tsne"),
                      n: int = PICTURE_SAMPLES, seed: int = 0, size: int = 360) -> Path:
    """PNG with one scatter panel per method (PCA, t-SNE) of real vs synthetic sequences."""
    from PIL import Image

    r, g = _as_array(real, "real data"), _as_array(fake, "synthetic data")
    _check_pair(r, g)
    rs = np.random.RandomState(seed)
    k = min(n, len(r), len(g))
    r, g = r[rs.permutation(len(r))[:k]], g[rs.permutation(len(g))[:k]]
    panels = [_panel(*embed_2d(r, g, m, seed), m.upper() if m == "pca" else "t-SNE", size)
              for m in methods]
    out = Image.new("RGB", (size * len(panels), panels[0].height), "white")
    for i, p in enumerate(panels):
        out.paste(p, (i * size, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path)
    return path


def score_summary(scores: dict[str, RepeatedScore]) -> dict[str, Any]:
    """Flat ``eval`` record fields: ``discriminative``, ``discriminative_std``, ... + protocol."""
    rec: dict[str, Any] = {}
    for name, s in scores.items():
        rec[name] = s.mean if math.isfinite(s.mean) else None
        rec[f"{name}_std"] = s.std
    rec["protocol"] = {name: s.protocol for name, s in scores.items()}
    return rec
