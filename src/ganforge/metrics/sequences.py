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
- Variable-length sequences (NaN after each sequence's last step, or explicit lengths): the
  GRUs read each sequence up to its length (``pack_padded_sequence``) and the predictive loss
  and error count real next steps only; what padding holds never changes a score.
  :func:`length_ks` is the two-sample Kolmogorov-Smirnov statistic of the lengths.
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

from ganforge.data.sequences import nan_lengths
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


def _with_lengths(x: torch.Tensor | np.ndarray, lengths: Any, what: str
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, T, F) float32 with padding set to 0, and each sequence's length (None: all are T).
    ``lengths`` None: read from NaN padding (variable-length samples as ``Run.sample``
    returns them); given: the steps after each length are padding whatever they hold."""
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.ndim != 3:
        raise DataError(f"{what} must be sequences of shape (N, T, F), got {arr.shape}.")
    if lengths is None and np.isnan(arr).any():
        try:
            lengths = nan_lengths(arr)
        except DataError as exc:
            raise DataError(f"{what}: {exc}") from None
    if lengths is None:
        return _as_array(arr, what), None
    lens = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if len(lens) != len(arr) or (lens < 1).any() or (lens > arr.shape[1]).any():
        raise DataError(f"{what}: lengths must be one per sequence, in [1, {arr.shape[1]}]; got "
                        f"{len(lens)} for {len(arr)} sequences (min {lens.min(initial=0)}, max "
                        f"{lens.max(initial=0)}).")
    pad = np.arange(arr.shape[1])[None, :] >= lens[:, None]
    arr = np.where(pad[..., None], 0.0, arr)
    return _as_array(arr, what), lens


def length_ks(real_lengths: Any, fake_lengths: Any) -> float:
    """The two-sample Kolmogorov-Smirnov statistic of two sets of sequence lengths: the largest
    gap between their empirical CDFs (0: the same distribution of lengths; 1: disjoint).
    The same number as ``scipy.stats.ks_2samp(real, fake).statistic``."""
    r = np.sort(np.asarray(real_lengths, dtype=np.float64).reshape(-1))
    g = np.sort(np.asarray(fake_lengths, dtype=np.float64).reshape(-1))
    if len(r) == 0 or len(g) == 0:
        raise DataError("the length KS statistic needs at least one real and one synthetic "
                        "sequence.")
    at = np.concatenate([r, g])
    cdf_r = np.searchsorted(r, at, side="right") / len(r)
    cdf_g = np.searchsorted(g, at, side="right") / len(g)
    return float(np.abs(cdf_r - cdf_g).max())


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

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            seq, last = self.rnn(x)
            return self.out(seq).squeeze(-1) if self.every_step else self.out(last[-1]).squeeze(-1)
        # variable lengths: the GRU runs over each sequence's own steps only (packed), so the
        # last state is the one at its last real step and padding never enters it
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                   enforce_sorted=False)
        seq_p, last = self.rnn(packed)
        if not self.every_step:
            return self.out(last[-1]).squeeze(-1)
        seq, _ = nn.utils.rnn.pad_packed_sequence(seq_p, batch_first=True,
                                                  total_length=x.shape[1])
        return self.out(seq).squeeze(-1)


def _adam(params: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)


def discriminative_score(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray,
                         iterations: int = DISC_ITERATIONS, batch_size: int = BATCH_SIZE,
                         seed: int = 0, train_rate: float = TRAIN_RATE,
                         real_lengths: Any = None, fake_lengths: Any = None,
                         details: dict[str, Any] | None = None) -> float:
    """|test accuracy - 0.5| of a post-hoc GRU classifier of real vs synthetic (TimeGAN).

    Variable-length sequences: NaN-padded, or with ``real_lengths`` / ``fake_lengths``; the
    classifier reads each sequence up to its length only (what the padding holds is ignored).
    ``details``, when given, receives ``accuracy`` and ``one_class``: whether the classifier
    put every test sequence in the same class. The test halves are equal in size, so such a
    classifier scores exactly 0 whatever the data: a 0 that says it did not train, not that
    the sets are alike.
    """
    r, lr = _with_lengths(real, real_lengths, "real data")
    g, lg = _with_lengths(fake, fake_lengths, "synthetic data")
    _check_pair(r, g)
    varlen = lr is not None or lg is not None
    lr = np.full(len(r), r.shape[1]) if lr is None else lr
    lg = np.full(len(g), g.shape[1]) if lg is None else lg
    rs = np.random.RandomState(seed)
    # TimeGAN's train_test_divide: one permutation per set, first train_rate of each to train.
    # Sets of unequal size are cut to the smaller one, so that chance accuracy stays 0.5.
    k = min(len(r), len(g))
    pr, pg = rs.permutation(len(r))[:k], rs.permutation(len(g))[:k]
    r, g, lr, lg = r[pr], g[pg], lr[pr], lg[pg]
    pr, pg = np.arange(k), np.arange(k)
    nr, ng = int(len(r) * train_rate), int(len(g) * train_rate)
    if min(nr, ng) < 1 or nr == len(r) or ng == len(g):
        raise DataError(f"the discriminative score needs at least 2 real and 2 synthetic "
                        f"sequences; got {len(r)} and {len(g)}.")
    r_tr, r_te = torch.from_numpy(r[pr[:nr]]), torch.from_numpy(r[pr[nr:]])
    g_tr, g_te = torch.from_numpy(g[pg[:ng]]), torch.from_numpy(g[pg[ng:]])
    lr_tr, lr_te = torch.from_numpy(lr[:nr]), torch.from_numpy(lr[nr:])
    lg_tr, lg_te = torch.from_numpy(lg[:ng]), torch.from_numpy(lg[ng:])
    dim = r.shape[2]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _GRUHead(dim, max(1, dim // 2), every_step=False)
    opt = _adam(model.parameters())
    br, bg = min(batch_size, nr), min(batch_size, ng)
    for _ in range(iterations):
        ir = torch.from_numpy(rs.permutation(nr)[:br])
        ig = torch.from_numpy(rs.permutation(ng)[:bg])
        if varlen:
            lr_, lg_ = model(r_tr[ir], lr_tr[ir]), model(g_tr[ig], lg_tr[ig])
        else:
            lr_, lg_ = model(r_tr[ir]), model(g_tr[ig])
        loss = (F.binary_cross_entropy_with_logits(lr_, torch.ones_like(lr_))
                + F.binary_cross_entropy_with_logits(lg_, torch.zeros_like(lg_)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        out_r = model(r_te, lr_te) if varlen else model(r_te)
        out_g = model(g_te, lg_te) if varlen else model(g_te)
        said_real = torch.cat([torch.sigmoid(out_r) > 0.5, torch.sigmoid(out_g) > 0.5])
        correct = said_real[:len(r_te)].sum() + (~said_real[len(r_te):]).sum()
    acc = float(correct) / (len(r_te) + len(g_te))
    if details is not None:
        details.update(accuracy=acc, one_class=bool(said_real.all() or not said_real.any()))
    return abs(0.5 - acc)


def predictive_score(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray,
                     iterations: int = PRED_ITERATIONS, batch_size: int = BATCH_SIZE,
                     seed: int = 0, real_lengths: Any = None, fake_lengths: Any = None
                     ) -> float:
    """MAE on real data of a next-step GRU regressor trained on synthetic data (TimeGAN).

    Variable-length sequences (NaN-padded, or with ``real_lengths`` / ``fake_lengths``): the
    regressor reads each sequence up to its length, and only the steps with a real next step
    count in the training loss and in the error (a sequence of length 1 has none; the score
    averages the sequences that have)."""
    r, lr = _with_lengths(real, real_lengths, "real data")
    g, lg = _with_lengths(fake, fake_lengths, "synthetic data")
    _check_pair(r, g)
    dim = r.shape[2]
    if dim < 2:
        raise DataError("the predictive score predicts the last feature from the others, so "
                        "it needs at least 2 features; this data has 1.")
    if lr is not None or lg is not None:  # variable lengths
        lr = np.full(len(r), r.shape[1]) if lr is None else lr
        lg = np.full(len(g), g.shape[1]) if lg is None else lg
        # inputs: steps 0..len-2 (a length-1 sequence gives one input step, weighted 0)
        g_keep, r_keep = lg >= 2, lr >= 2
        if not g_keep.any() or not r_keep.any():
            raise DataError("the predictive score needs sequences of at least 2 steps in both "
                            "sets (it predicts step t+1 from step t).")
        g, lg = g[g_keep], lg[g_keep]
        r, lr = r[r_keep], lr[r_keep]
    gx, gy = torch.from_numpy(g[:, :-1, : dim - 1]), torch.from_numpy(g[:, 1:, dim - 1])
    # variable lengths: the GRU reads len-1 input steps; a step counts where it has a real next
    # step (weight 1, else 0). Fixed length: every step counts, plain means (no weights).
    g_in, gw = _predictive_mask(lg, g.shape[1])
    rs = np.random.RandomState(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _GRUHead(dim - 1, max(1, dim // 2), every_step=True)
    opt = _adam(model.parameters())
    b = min(batch_size, len(g))
    for _ in range(iterations):
        idx = torch.from_numpy(rs.permutation(len(g))[:b])
        if gw is None:
            pred = torch.sigmoid(model(gx[idx]))
            loss = (pred - gy[idx]).abs().mean()
        else:
            pred = torch.sigmoid(model(gx[idx], g_in[idx]))
            w = gw[idx]
            loss = ((pred - gy[idx]).abs() * w).sum() / w.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    r_in, rw = _predictive_mask(lr, r.shape[1])
    with torch.no_grad():
        pred = torch.sigmoid(model(torch.from_numpy(r[:, :-1, : dim - 1]), r_in))
        err = (pred - torch.from_numpy(r[:, 1:, dim - 1])).abs()
        mae_per_seq = err.mean(dim=1) if rw is None else (err * rw).sum(dim=1) / rw.sum(dim=1)
    return float(mae_per_seq.mean())


def _predictive_mask(lengths: np.ndarray | None, steps: int
                     ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The predictive score's GRU input lengths (len - 1) and (N, steps - 1) step weights (1
    where step t has a real step t+1) of sequences with these lengths; (None, None) without
    lengths (every step counts)."""
    if lengths is None:
        return None, None
    w = (np.arange(steps - 1)[None, :] < (lengths - 1)[:, None]).astype(np.float32)
    return torch.from_numpy(lengths - 1), torch.from_numpy(w)


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
    vals, one_class = [], []
    try:
        for i in range(repeats):
            info: dict[str, Any] = {}
            extra = {"details": info} if name == "discriminative" else {}
            vals.append(fn(real, fake, iterations=its, batch_size=batch_size, seed=seed + i,
                           **extra))
            if info.get("one_class"):
                one_class.append(i)
            bar.update()
    finally:
        bar.close()
    std = float(np.std(vals)) if len(vals) > 1 else 0.0
    protocol = {"name": f"timegan-{name}", "iterations": its, "batch_size": batch_size,
                "repeats": repeats, "hidden": "floor(dim/2)", "seed": seed,
                "n_real": len(real), "n_synthetic": len(fake)}
    if name == "discriminative":
        protocol["train_rate"] = TRAIN_RATE
        # repeats whose classifier called every test sequence one class (score exactly 0)
        protocol["one_class_repeats"] = one_class
    return RepeatedScore(name, float(np.mean(vals)), std, [float(v) for v in vals], protocol)


def sequence_scores(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray,
                    repeats: int = REPEATS, disc_iterations: int = DISC_ITERATIONS,
                    pred_iterations: int = PRED_ITERATIONS, seed: int = 0
                    ) -> dict[str, RepeatedScore]:
    """Both scores (the predictive one only when there are >= 2 features). NaN-padded
    (variable-length) sequences are scored over their real steps only."""
    out = {"discriminative": repeated_score("discriminative", real, fake, repeats,
                                            disc_iterations, seed=seed)}
    if real.shape[2] >= 2:
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
    """PNG with one scatter panel per method (PCA, t-SNE) of real vs synthetic sequences
    (the NaN padding of variable-length ones counts as 0)."""
    from PIL import Image

    r, _ = _with_lengths(real, None, "real data")
    g, _ = _with_lengths(fake, None, "synthetic data")
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
