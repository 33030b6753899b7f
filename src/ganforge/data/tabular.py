"""Tables: loading (CSV, DataFrame, scikit-learn), column typing, missing values, and the fast
vectorized transformer with mode-specific normalization (CTGAN's encoding).

Sources (``data.source``):

- ``sklearn:breast_cancer``, ``sklearn:wine``, ``sklearn:iris``: scikit-learn's bundled tables,
  with the class as a categorical ``target`` column holding the class names;
- ``csv:PATH``: any CSV file with a header row;
- ``frame:NAME``: a pandas DataFrame registered in this process with :func:`register_frame`.

Column types are detected (:func:`detect_columns`): ``boolean`` (bool dtype or only
true/false values), ``datetime`` (datetime64, or text whose cells are all dates/times written
in one of :data:`DATE_FORMATS`; modelled as seconds since 1970 and written back in that
format), ``categorical`` (other text, pandas categories, integers with at most
``max_int_categories`` distinct values), ``integer`` (other integer-valued numbers, modelled as
continuous and rounded back) and ``continuous``. ``data.discrete: [...]`` overrides the
detection: when given, exactly the listed numeric columns are categorical (text and boolean
columns are always categorical; a date column listed there is categorical too).

Missing values are never dropped. A categorical column keeps a missing value as one more
category (decoded back to a missing value). A continuous, integer or datetime column with
missing values gets a 2-way ``null`` span (present / missing) next to its value encoding; the
Gaussian mixture is fitted on the present values only, missing rows are encoded at the column
median, and decoding writes a missing value wherever the null span says so. A column with no
value at all is an error. CSV specifics (missing-value tokens, ``Int64`` for integer columns
with missing cells, stray text in a column of numbers): :func:`read_csv`.

A categorical column with more than ``max_categories`` (``data.options.max_categories``,
default 1000) distinct values keeps the most frequent ones as one-hot slots and pools the rest
into one more slot; decoding turns that slot into a draw from the pooled values' frequencies.

Encoding (:class:`TableTransformer`): a continuous column becomes ``alpha`` (one value in
[-1, 1], tanh) plus a one-hot ``mode`` span: a variational Gaussian mixture (Dirichlet-process
weight prior, at most ``max_modes`` components, CTGAN's settings) is fitted to the column; each
value picks a mode by sampling its posterior and is stored as ``(x - mean_k) / (4 std_k)``.
Categorical columns are one-hot spans. All columns' mixtures are fitted together as one batched
numpy computation and encoding/decoding are whole-array operations: no per-row Python.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.data.base import TensorData
from ganforge.data.registry import register_dataset
from ganforge.errors import DataError, GanforgeError, did_you_mean
from ganforge.fileio import atomic_write_text

KINDS = ("continuous", "integer", "datetime", "categorical", "boolean")
SKLEARN_TABLES = ("breast_cancer", "wine", "iris")
_FRAMES: dict[str, Any] = {}
_TRUE = {"true", "t", "yes", "y"}
_FALSE = {"false", "f", "no", "n"}
# cells of a CSV column of numbers that stand for a missing value (compared stripped, lower case)
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "<na>", "#n/a", "nat"})
# how date / time text is recognised: every present cell of the column is written in one of these
# formats (the first that reads them all and writes each back as the same text)
DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M",
                "%Y-%m-%dT%H:%M", "%Y/%m/%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
                "%d.%m.%Y", "%d/%m/%Y", "%m/%d/%Y", "%d/%m/%Y %H:%M:%S", "%m/%d/%Y %H:%M:%S",
                "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M")
DEFAULT_MAX_CATEGORIES = 1000


# ----------------------------------------------------------------------- column typing
@dataclass
class Column:
    """What the transformer knows about one column (JSON-serialisable)."""

    name: str
    kind: str
    dtype: str
    has_nan: bool = False
    categories: list[Any] = field(default_factory=list)  # None stands for a missing value
    counts: list[int] = field(default_factory=list)
    lo: float = 0.0
    hi: float = 0.0
    means: list[float] = field(default_factory=list)
    stds: list[float] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)  # mixture weight of each kept mode
    fill: float = 0.0  # value used to encode missing rows of a continuous column
    fmt: str = ""  # datetime: the strftime format of the text ("" for a datetime64 column)
    step: float = 0.0  # datetime: decoded seconds are rounded to this (86400 for dates)
    other: list[Any] = field(default_factory=list)  # rare categories pooled into one slot
    other_counts: list[int] = field(default_factory=list)

    @property
    def discrete(self) -> bool:
        return self.kind in ("categorical", "boolean")

    @property
    def slots(self) -> int:
        """Width of a discrete column's one-hot span: its categories, plus one slot for the
        pooled rare ones when there are any."""
        return len(self.categories) + (1 if self.other else 0)


def _is_integer_valued(values: np.ndarray) -> bool:
    return bool(values.size) and bool(np.all(np.isfinite(values))) and bool(
        np.all(values == np.round(values)))


def detect_columns(df: Any, discrete: list[str] | None = None,
                   max_int_categories: int = 10) -> dict[str, str]:
    """Kind of every column: continuous, integer, categorical or boolean.

    ``discrete`` (when not None) is the exact list of numeric columns to treat as categorical.
    """
    import pandas as pd

    if discrete is not None:
        missing = [c for c in discrete if c not in df.columns]
        if missing:
            raise DataError(f"data.discrete names column '{missing[0]}', which is not in the "
                            f"table.{did_you_mean(missing[0], map(str, df.columns))} Columns: "
                            f"{', '.join(map(str, df.columns))}.")
    kinds: dict[str, str] = {}
    for name in df.columns:
        s = df[name]
        present = s.dropna()
        if len(present) == 0:
            raise DataError(f"column '{name}' has no values (every row is missing). Drop the "
                            f"column or fill it before training.")
        if pd.api.types.is_bool_dtype(s) or _looks_boolean(present):
            kinds[name] = "boolean"
        elif pd.api.types.is_datetime64_dtype(s):
            kinds[name] = "datetime"
        elif not pd.api.types.is_numeric_dtype(s):
            listed = discrete is not None and name in discrete
            kinds[name] = ("datetime" if not listed and date_format(present) is not None
                           else "categorical")
        else:
            vals = present.to_numpy(dtype=np.float64)
            if not np.all(np.isfinite(vals)):
                raise DataError(f"column '{name}' holds infinite values; replace them with "
                                f"finite numbers or leave the cells empty (missing).")
            if discrete is not None:
                is_int = _is_integer_valued(vals)
                kinds[name] = ("categorical" if name in discrete else
                               "integer" if is_int else "continuous")
            elif _is_integer_valued(vals):
                kinds[name] = ("categorical" if present.nunique() <= max_int_categories
                               else "integer")
            else:
                kinds[name] = "continuous"
    return kinds


def date_format(values: Any) -> str | None:
    """The one format of :data:`DATE_FORMATS` that every (present) value is written in, or
    None: the values are not all text, one of them does not parse, or one would be written
    back differently (``2024-1-5`` for ``%Y-%m-%d``)."""
    import pandas as pd

    u = pd.unique(pd.Series(values).dropna().to_numpy(dtype=object))
    if len(u) == 0 or not all(isinstance(v, str) for v in u):
        return None
    first = u[: min(len(u), 20)]
    for fmt in DATE_FORMATS:
        head = pd.to_datetime(pd.Index(first), format=fmt, errors="coerce")
        if head.isna().any() or not (head.strftime(fmt) == first).all():
            continue
        parsed = pd.to_datetime(pd.Index(u), format=fmt, errors="coerce")
        if not parsed.isna().any() and (parsed.strftime(fmt) == u).all():
            return fmt
    return None


def datetime_seconds(s: Any, fmt: str = "", name: str = "") -> np.ndarray:
    """Seconds since 1970-01-01 of a date/time column (text in ``fmt``, or datetime64), as
    float64 with NaN where missing. A present cell that is not a date in ``fmt`` is a
    DataError naming the column and the value."""
    import pandas as pd

    if fmt:
        present = s.notna().to_numpy()
        parsed = pd.to_datetime(pd.Index(s.to_numpy(dtype=object)), format=fmt,
                                errors="coerce")
        bad = present & np.asarray(parsed.isna())
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"column '{name}' holds {s.iloc[i]!r} (row {i + 1}), which is not a "
                            f"date/time written as {fmt} like the column's other cells.")
    else:
        parsed = pd.DatetimeIndex(s)
    return np.asarray((parsed - pd.Timestamp(0)).total_seconds(), dtype=np.float64)


def column_numbers(s: Any, col: Column) -> np.ndarray:
    """The float64 values (NaN where missing) that model a continuous, integer or datetime
    column."""
    if col.kind == "datetime":
        return datetime_seconds(s, col.fmt, col.name)
    return s.to_numpy(dtype=np.float64, na_value=np.nan)


def _looks_boolean(present: Any) -> bool:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(present):
        return False
    vals = {str(v).strip().lower() for v in present.unique()[:3]}
    return len(vals) <= 2 and (vals <= _TRUE | _FALSE) and bool(vals & (_TRUE | _FALSE))


def _py(v: Any) -> Any:
    """A JSON-friendly Python scalar (None for a missing value)."""
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, np.generic):
        v = v.item()
        if isinstance(v, float) and math.isnan(v):
            return None
    try:
        import pandas as pd

        if v is pd.NA or v is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    return v


# ------------------------------------------------------------- variational Gaussian mixture
def _digamma(x: np.ndarray) -> np.ndarray:
    from scipy.special import digamma

    return digamma(x)


def _kmeans_pp(z: np.ndarray, w: np.ndarray, k: int, seed: int, rounds: int = 100
               ) -> np.ndarray:
    """Labels (N, C) of k-means with greedy k-means++ seeding, one 1-d problem per column,
    all columns at once. Cluster ids follow the seeding order (first pick = 0), as in the
    k-means that initialises scikit-learn's mixtures; that order matters to the stick-breaking
    prior, which favours early components."""
    rng = np.random.default_rng(seed)
    n, c = z.shape
    trials = 2 + int(np.log(k))
    cols = np.arange(c)
    first = np.argmax(w * rng.random((n, c)), axis=0)  # a uniformly drawn present row
    centres = np.full((c, k), np.inf)
    centres[:, 0] = z[first, cols]
    d2 = (z - centres[:, 0]) ** 2 * w
    for i in range(1, k):
        cum = np.cumsum(d2, axis=0)  # (N, C)
        u = rng.random((trials, c)) * cum[-1]
        pick = np.minimum((cum[None] < u[:, None]).sum(1), n - 1)  # (T, C), D^2 sampling
        cand = z[pick, cols]
        pot = np.minimum(d2[None], (z[None] - cand[:, None]) ** 2 * w[None]).sum(1)
        best = cand[pot.argmin(0), cols]
        centres[:, i] = best
        d2 = np.minimum(d2, (z - best) ** 2 * w)
    lab = np.abs(z[:, :, None] - centres[None]).argmin(-1)
    for _ in range(rounds):  # Lloyd
        onehot = (lab[:, :, None] == np.arange(k)) * w[:, :, None]
        nk = onehot.sum(0)
        centres = np.where(nk > 0, (onehot * z[:, :, None]).sum(0) / np.maximum(nk, 1), centres)
        new = np.abs(z[:, :, None] - centres[None]).argmin(-1)
        if np.array_equal(new, lab):
            break
        lab = new
    return lab


def fit_vgm(values: np.ndarray, present: np.ndarray, max_modes: int = 10,
            concentration: float = 1e-3, max_iter: int = 100, tol: float = 1e-3,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Variational Bayesian Gaussian mixtures, one per column, fitted all at once.

    ``values`` (N, C), ``present`` (N, C) bool. The model is the one of scikit-learn's
    ``BayesianGaussianMixture`` with a Dirichlet-process (stick-breaking) weight prior of
    concentration ``concentration`` as CTGAN configures it, in one dimension: a Normal-Gamma
    prior per component (mean prior = column mean, mean precision 1, 1 degree of freedom, scale
    = column variance). Components start from k-means with greedy k-means++ seeding (``seed``),
    numbered in seeding order as scikit-learn's k-means numbers them (see ``_kmeans_pp``);
    starting from k-means on sorted quantile centres instead leaves near-duplicate components
    that 100 iterations do not merge. Returns weights (C, K), means (C, K) and standard
    deviations (C, K) in the column's units.
    """
    c = values.shape[1]
    k = max_modes
    w = present.astype(np.float64)
    cnt = np.maximum(w.sum(0), 1.0)
    x = np.where(present, values, 0.0).astype(np.float64)
    mu0 = (x * w).sum(0) / cnt
    var0 = ((x - mu0) ** 2 * w).sum(0) / np.maximum(cnt - 1, 1.0)
    sd0 = np.sqrt(np.maximum(var0, 1e-12 * (1.0 + mu0 ** 2)))
    z = np.where(present, (x - mu0) / sd0, 0.0)  # standardized: prior mean 0, scale 1

    # init: k-means with k-means++ seeding (seeded), vectorized over columns; responsibilities
    # are its hard labels, components in seeding order
    lab = _kmeans_pp(z, w, k, seed)
    resp = (lab[:, :, None] == np.arange(k)) * w[:, :, None]

    beta0, nu0, cov0, eps = 1.0, 1.0, 1.0, 10 * np.finfo(np.float64).eps
    prev = None
    for _ in range(max_iter):
        # M step: variational posteriors from responsibilities
        nk = resp.sum(0) + eps  # (C, K)
        xk = np.einsum("nck,nc->ck", resp, z) / nk
        sk = np.einsum("nck,nck->ck", resp, (z[:, :, None] - xk[None]) ** 2) / nk
        a = 1.0 + nk
        b = concentration + (np.cumsum(nk[:, ::-1], axis=1)[:, ::-1] - nk)
        beta = beta0 + nk
        m = nk * xk / beta
        nu = nu0 + nk
        cov = (cov0 + nk * sk + nk * beta0 / beta * xk ** 2) / nu
        if prev is not None and np.max(np.abs(nk - prev) / cnt[:, None]) < tol:
            break
        prev = nk
        # E step: expected log weights (stick breaking) and log likelihoods
        dab = _digamma(a + b)
        elog_v = _digamma(a) - dab
        elog_1mv = _digamma(b) - dab
        elog_pi = elog_v + np.concatenate([np.zeros((c, 1)), np.cumsum(elog_1mv, 1)[:, :-1]], 1)
        elog_lam = _digamma(nu / 2) - np.log(nu / 2) - np.log(cov)
        logr = (elog_pi + 0.5 * elog_lam - 0.5 * np.log(2 * np.pi))[None] - 0.5 * (
            (z[:, :, None] - m[None]) ** 2 / cov[None] + 1.0 / beta[None])
        logr -= logr.max(-1, keepdims=True)
        resp = np.exp(logr)
        resp *= w[:, :, None] / resp.sum(-1, keepdims=True)
    vk = a / (a + b)
    weights = vk * np.concatenate([np.ones((c, 1)), np.cumprod(1 - vk, 1)[:, :-1]], 1)
    weights /= weights.sum(1, keepdims=True)
    means = m * sd0[:, None] + mu0[:, None]
    stds = np.sqrt(cov) * sd0[:, None]
    return weights, means, stds


# -------------------------------------------------------------------------- transformer
@dataclass
class Span:
    """A slice of the encoded row: ``start:start+width``; ``act`` tanh or softmax."""

    column: int
    role: str  # alpha | mode | null | category
    start: int
    width: int

    @property
    def act(self) -> str:
        return "tanh" if self.role == "alpha" else "softmax"


class TableTransformer:
    """Encode a DataFrame to a float matrix (CTGAN's encoding) and decode it back."""

    def __init__(self, columns: list[Column], max_modes: int = 10,
                 weight_threshold: float = 0.005,
                 max_categories: int = DEFAULT_MAX_CATEGORIES) -> None:
        self.columns = columns
        self.max_modes = max_modes
        self.weight_threshold = weight_threshold
        self.max_categories = max_categories
        self.spans: list[Span] = []
        pos = 0
        for i, col in enumerate(columns):
            if col.discrete:
                self.spans.append(Span(i, "category", pos, col.slots))
                pos += col.slots
                continue
            self.spans.append(Span(i, "alpha", pos, 1))
            self.spans.append(Span(i, "mode", pos + 1, len(col.means)))
            pos += 1 + len(col.means)
            if col.has_nan:
                self.spans.append(Span(i, "null", pos, 2))
                pos += 2
        self.width = pos

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, df: Any, kinds: dict[str, str] | None = None, max_modes: int = 10,
            weight_threshold: float = 0.005, discrete: list[str] | None = None,
            max_categories: int = DEFAULT_MAX_CATEGORIES) -> TableTransformer:
        """Fit on ``df``. A categorical column with more than ``max_categories`` distinct
        values (missing counts as one) keeps its ``max_categories - 1`` most frequent ones as
        one-hot slots and pools the rest into one more slot, decoded as a draw from the pooled
        values' own frequencies."""
        import pandas as pd

        if len(df) == 0:
            raise DataError("the table has no rows.")
        if int(max_categories) < 2:
            raise DataError(f"max_categories must be at least 2, got {max_categories}.")
        kinds = kinds or detect_columns(df, discrete)
        cols: list[Column] = []
        cont: list[int] = []
        numbers: dict[int, np.ndarray] = {}
        for name in df.columns:
            s = df[name]
            kind = kinds[name]
            col = Column(name=str(name), kind=kind, dtype=str(s.dtype),
                         has_nan=bool(s.isna().any()))
            if col.discrete:
                _fit_categories(col, s, int(max_categories))
            else:
                if kind == "datetime" and not pd.api.types.is_datetime64_dtype(s):
                    col.fmt = date_format(s) or ""
                    if not col.fmt:
                        raise DataError(f"column '{name}' is typed datetime, but its cells are "
                                        f"not dates/times written in one format (such as "
                                        f"2024-01-31 or 2024-01-31 12:00:00).")
                vals = column_numbers(s, col)
                col.lo, col.hi = float(np.nanmin(vals)), float(np.nanmax(vals))
                col.fill = float(np.nanmedian(vals))
                col.counts = [int((~np.isnan(vals)).sum()), int(np.isnan(vals).sum())]
                if kind == "datetime":
                    col.step = _datetime_step(col.fmt, vals)
                numbers[len(cols)] = vals
                cont.append(len(cols))
            cols.append(col)
        if cont:
            x = np.stack([numbers[i] for i in cont], 1)
            present = ~np.isnan(x)
            weights, means, stds = fit_vgm(x, present, max_modes)
            for j, i in enumerate(cont):
                keep = weights[j] > weight_threshold
                if not keep.any():
                    keep = weights[j] == weights[j].max()
                cols[i].means = [float(v) for v in means[j][keep]]
                cols[i].stds = [float(max(v, 1e-6 * (1 + abs(mv)))) for v, mv in
                                zip(stds[j][keep], means[j][keep], strict=True)]
                cols[i].weights = [float(v) for v in weights[j][keep]]
        return cls(cols, max_modes, weight_threshold, int(max_categories))

    # ----------------------------------------------------------------- encoding
    def transform(self, df: Any, seed: int = 0) -> np.ndarray:
        """The encoded (N, width) float32 matrix; modes are drawn from their posterior."""
        rng = np.random.default_rng(seed)
        n = len(df)
        out = np.zeros((n, self.width), dtype=np.float32)
        rows = np.arange(n)
        missing = [c.name for c in self.columns if c.name not in df.columns]
        if missing:
            raise DataError(f"the table lacks column '{missing[0]}' that the model was trained "
                            f"on.")
        for span in self.spans:
            col = self.columns[span.column]
            s = df[col.name]
            if span.role == "category":
                codes = self._codes(s, col)
                out[rows, span.start + codes] = 1.0
            elif span.role == "alpha":
                vals = column_numbers(s, col)
                nan = np.isnan(vals)
                vals = np.where(nan, col.fill, vals)
                mu = np.asarray(col.means)
                sd = np.asarray(col.stds)
                wts = np.asarray(col.weights, dtype=np.float64)
                zk = (vals[:, None] - mu) / sd
                logp = np.log(wts + 1e-12) - np.log(sd) - 0.5 * zk ** 2
                # modes whose +-4 std window holds the value; none: the nearest in std units
                fits = np.abs(zk) < 4 * 0.99
                fits[~fits.any(1), :] = False
                fits[np.arange(n), np.where(fits.any(1), 0, np.abs(zk).argmin(1))] |= ~fits.any(1)
                logp = np.where(fits, logp, -np.inf)
                gumbel = -np.log(-np.log(rng.uniform(1e-12, 1.0, size=logp.shape)))
                k = (logp + gumbel).argmax(1)
                out[:, span.start] = np.clip((vals - mu[k]) / (4 * sd[k]), -0.99, 0.99)
                out[rows, span.start + 1 + k] = 1.0
                if col.has_nan:
                    out[rows, span.start + 1 + len(mu) + nan.astype(np.int64)] = 1.0
        return out

    @staticmethod
    def _codes(s: Any, col: Column) -> np.ndarray:
        import pandas as pd

        keys = [_py(v) for v in col.categories]
        lookup = {_key(k): i for i, k in enumerate(keys)}
        pooled = len(keys)  # the slot of the pooled rare categories
        lookup.update({_key(_py(v)): pooled for v in col.other})
        # factorize once (vectorized), then map each distinct value to its category index
        codes_u, uniques = pd.factorize(s, use_na_sentinel=False)
        table = np.empty(len(uniques), dtype=np.int64)
        for j, v in enumerate(uniques):
            key = _key(_py(v))
            if key not in lookup:
                raise DataError(f"column '{col.name}' holds the value {v!r}, which is not one of "
                                f"its categories ({', '.join(map(repr, keys[:10]))}).")
            table[j] = lookup[key]
        return table[codes_u]

    # ----------------------------------------------------------------- decoding
    def inverse_transform(self, m: np.ndarray | torch.Tensor, seed: int = 0) -> Any:
        """Decode an (N, width) matrix to a DataFrame with the original names and dtypes.

        Softmax spans are read by argmax, ``alpha`` is clipped to [-1, 1], continuous values are
        clipped to the training range, integer columns are rounded, date/time columns are
        rounded to their resolution and written in their format. The slot of pooled rare
        categories is decoded as a draw (``seed``) from the pooled values' frequencies.
        """
        import pandas as pd

        rng = np.random.default_rng(seed)
        if isinstance(m, torch.Tensor):
            m = m.detach().float().cpu().numpy()
        m = np.asarray(m, dtype=np.float64)
        if m.ndim != 2 or m.shape[1] != self.width:
            raise DataError(f"cannot decode a matrix of shape {m.shape}; expected (N, "
                            f"{self.width}).")
        data: dict[str, Any] = {}
        by_col: dict[int, dict[str, Span]] = {}
        for span in self.spans:
            by_col.setdefault(span.column, {})[span.role] = span
        for i, col in enumerate(self.columns):
            sp = by_col[i]
            if col.discrete:
                s = sp["category"]
                idx = m[:, s.start:s.start + s.width].argmax(1)
                data[col.name] = _restore_categorical(col, idx, rng)
                continue
            a, md = sp["alpha"], sp["mode"]
            k = m[:, md.start:md.start + md.width].argmax(1)
            vals = (np.clip(m[:, a.start], -1, 1) * 4 * np.asarray(col.stds)[k] +
                    np.asarray(col.means)[k])
            vals = np.clip(vals, col.lo, col.hi)
            if col.kind == "integer":
                vals = np.round(vals)
            nan = np.zeros(len(vals), dtype=bool)
            if "null" in sp:
                s = sp["null"]
                nan = m[:, s.start + 1] > m[:, s.start]
            data[col.name] = (_restore_datetime(col, vals, nan) if col.kind == "datetime" else
                              _restore_numeric(col, vals, nan))
        return pd.DataFrame(data)

    # ------------------------------------------------------------ conditioning
    @property
    def discrete_spans(self) -> list[Span]:
        return [s for s in self.spans if s.role == "category"]

    def category_index(self, column: str, value: str) -> tuple[int, int]:
        """(index among discrete columns, category index) of ``column=value`` for --where. A
        column or category the table lacks is a bad option value (usage, exit status 2), not a
        data error."""
        names = [self.columns[s.column].name for s in self.discrete_spans]
        if column not in names:
            every = [c.name for c in self.columns]
            if column in every:
                raise GanforgeError(f"--where needs a categorical column; '{column}' is "
                                    f"{self.column(column).kind}. Categorical columns: "
                                    f"{', '.join(names) or 'none'}.")
            raise GanforgeError(f"--where names column '{column}', which the table does not "
                                f"have.{did_you_mean(column, every)} Columns: "
                                f"{', '.join(every)}.")
        d = names.index(column)
        col = self.column(column)
        cats = col.categories
        for j, c in enumerate(cats):
            if str(c) == value or (c is None and value in ("", "nan", "NaN", "None")):
                return d, j
        if any(str(c) == value for c in col.other):
            raise GanforgeError(f"column '{column}': '{value}' is one of its "
                                f"{len(col.other)} rare categories, pooled into one slot (only "
                                f"the {len(cats)} most frequent have their own; "
                                f"data.options.max_categories sets how many), so --where "
                                f"cannot ask for it.")
        raise GanforgeError(f"column '{column}' has no category '{value}'."
                            f"{did_you_mean(value, map(str, cats))} Categories: "
                            f"{', '.join(map(str, cats))}.")

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    # ------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        return {"format": "ganforge-table-transformer/1", "max_modes": self.max_modes,
                "weight_threshold": self.weight_threshold,
                "max_categories": self.max_categories,
                "columns": [asdict(c) for c in self.columns]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TableTransformer:
        if d.get("format") != "ganforge-table-transformer/1":
            raise DataError("not a ganforge table transformer file (format tag missing).")
        return cls([Column(**c) for c in d["columns"]], int(d["max_modes"]),
                   float(d["weight_threshold"]),
                   int(d.get("max_categories", DEFAULT_MAX_CATEGORIES)))

    def save(self, path: str | Path) -> Path:
        return atomic_write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> TableTransformer:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"cannot read the table transformer '{path}': {exc}") from None


def _fit_categories(col: Column, s: Any, max_categories: int) -> None:
    """Categories and counts of a discrete column (sorted by text, missing last); beyond
    ``max_categories`` the rarest are pooled into ``col.other``."""
    vc = s.value_counts(dropna=False, sort=False)
    cats = [_py(v) for v in vc.index]
    counts = [int(c) for c in vc.to_numpy()]
    by_text = sorted(range(len(cats)), key=lambda j: (cats[j] is None, str(cats[j])))
    if col.kind == "categorical" and len(cats) > max_categories:
        rank = {j: r for r, j in enumerate(by_text)}
        by_count = sorted(range(len(cats)), key=lambda j: (-counts[j], rank[j]))
        kept = set(by_count[:max_categories - 1])
        col.other = [cats[j] for j in by_text if j not in kept]
        col.other_counts = [counts[j] for j in by_text if j not in kept]
        by_text = [j for j in by_text if j in kept]
    col.categories = [cats[j] for j in by_text]
    col.counts = [counts[j] for j in by_text]
    if col.other:
        col.counts.append(sum(col.other_counts))


def _datetime_step(fmt: str, seconds: np.ndarray) -> float:
    """The resolution decoded date/times are rounded to: a day for a date format (or a
    datetime64 column holding only midnights), a minute for a format without seconds, else a
    second."""
    if fmt:
        if not any(d in fmt for d in ("%H", "%M", "%S")):
            return 86400.0
        return 1.0 if "%S" in fmt else 60.0
    present = seconds[~np.isnan(seconds)]
    return 86400.0 if np.all(np.mod(present, 86400.0) == 0) else 1.0


def _key(v: Any) -> Any:
    """Category lookup key: numbers compare by value (1 == 1.0), others by string."""
    if v is None:
        return ("nan",)
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, (int, float)):
        return ("num", float(v))
    return ("str", str(v))


def _restore_categorical(col: Column, idx: np.ndarray, rng: np.random.Generator) -> Any:
    import pandas as pd

    cats = col.categories
    if col.kind == "boolean" and col.dtype == "bool":
        return np.asarray([bool(_as_bool(c)) for c in cats])[idx]
    if col.other:  # the pooled slot: a draw from the rare categories' frequencies
        pooled = idx == len(cats)
        p = np.asarray(col.other_counts, dtype=np.float64)
        idx = idx.copy()
        idx[pooled] = len(cats) + rng.choice(len(p), size=int(pooled.sum()), p=p / p.sum())
        cats = [*cats, *col.other]
    values = np.empty(len(cats), dtype=object)
    values[:] = [np.nan if c is None else c for c in cats]
    out = values[idx]
    if col.dtype.startswith(("int", "uint")) and not any(c is None for c in cats):
        return out.astype(col.dtype)
    if col.dtype.startswith(("Int", "UInt")):  # pandas' nullable integers: <NA> where missing
        return pd.array([None if _py(v) is None else v for v in out], dtype=col.dtype)
    if col.dtype.startswith("float"):
        return out.astype(np.float64)
    if col.dtype == "category":
        return pd.Categorical(out, categories=[c for c in cats if c is not None])
    if col.dtype in ("str", "string"):  # pandas' string dtypes (default text dtype in pandas 3)
        return pd.array(out, dtype=col.dtype)
    return out


def _as_bool(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in _TRUE
    return bool(v)


def _restore_numeric(col: Column, vals: np.ndarray, nan: np.ndarray) -> Any:
    import pandas as pd

    if col.dtype.startswith(("Int", "UInt")):  # nullable integers stay so, <NA> where missing
        return pd.array(np.where(nan, np.nan, vals), dtype="Float64").round().astype(col.dtype)
    if nan.any():
        return np.where(nan, np.nan, vals)
    if col.dtype.startswith(("int", "uint", "Int", "UInt")):
        return vals.astype(col.dtype.lower())
    if col.dtype.startswith("float"):
        return vals.astype(col.dtype)
    return vals


def _restore_datetime(col: Column, vals: np.ndarray, nan: np.ndarray) -> Any:
    """Seconds back to the column's text format (NaN where missing), or to datetime64."""
    import pandas as pd

    step = col.step or 1.0
    secs = np.where(nan, np.nan, np.round(vals / step) * step)
    stamps = pd.to_datetime(secs, unit="s")
    if not col.fmt:
        return np.asarray(stamps.astype(col.dtype))
    out = np.asarray(stamps.strftime(col.fmt), dtype=object)
    out[nan] = np.nan
    return out


# ------------------------------------------------------------------------ loading tables
def register_frame(name: str, frame: Any) -> str:
    """Make a DataFrame trainable as ``data.source: frame:NAME``; returns that source string."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"register_frame needs a pandas DataFrame, got {type(frame).__name__}.")
    _FRAMES[name] = frame.copy()
    return f"frame:{name}"


def sklearn_frame(name: str) -> Any:
    """A scikit-learn bundled table with its class as a categorical ``target`` column."""
    from sklearn import datasets

    if name not in SKLEARN_TABLES:
        raise DataError(f"unknown scikit-learn table '{name}'.{did_you_mean(name, SKLEARN_TABLES)}"
                        f" Tables: {', '.join(SKLEARN_TABLES)}.")
    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    df = bunch.frame.copy()
    df["target"] = np.asarray(bunch.target_names, dtype=object)[bunch.target.to_numpy()]
    return df


def read_csv(path: str | Path, discrete: list[str] | None = None) -> Any:
    """Read a CSV with a header row; malformed files give a DataError naming the line.

    Cells that are empty or one of :data:`MISSING_TOKENS` (any case, spaces around) in a column
    of numbers are missing values; a column of numbers with a few other cells is an error (see
    :func:`clean_numeric_columns`; columns listed in ``discrete`` are left as text). A column
    whose cells are all written as integers but has missing values is read as pandas' ``Int64``
    (not float), so it is sampled back as integers.
    """
    import pandas as pd

    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"CSV file '{path}' does not exist. Give data.source as csv:PATH.")
    try:
        with p.open(newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise DataError(f"CSV file '{path}' is empty; it needs a header row and data rows.")
            for row in reader:
                if row and len(row) != len(header):
                    raise DataError(
                        f"CSV file '{path}' line {reader.line_num} has {len(row)} fields, but the "
                        f"header has {len(header)}. Fix that row (a missing value is an empty "
                        f"field between commas).")
        df = pd.read_csv(p)
        df, text = clean_numeric_columns(df, f"CSV file '{path}'", discrete)
        # integer-written columns with missing cells: float64 in pandas, Int64 here
        maybe = [i for i, name in enumerate(df.columns) if name not in text
                 and df[name].dtype.kind == "f" and df[name].hasnans
                 and _is_integer_valued(df[name].dropna().to_numpy())]
        if maybe:
            raw = pd.read_csv(p, usecols=maybe, dtype=str, keep_default_na=False)
            text.update({df.columns[i]: raw.iloc[:, j] for j, i in enumerate(maybe)})
    except UnicodeDecodeError as exc:
        raise DataError(f"CSV file '{path}' is not UTF-8 text ({exc.reason}).") from None
    except (pd.errors.ParserError, csv.Error) as exc:
        raise DataError(f"CSV file '{path}' cannot be parsed: {exc}") from None
    if len(df) == 0:
        raise DataError(f"CSV file '{path}' has a header but no data rows.")
    for name, cells in text.items():
        col = df[name]
        if (col.dtype.kind == "f" and _is_integer_valued(col.dropna().to_numpy())
                and not cells[col.notna()].str.contains(r"[.eE]").any()):
            df[name] = col.astype("Int64" if col.hasnans else "int64")
    return df


def clean_numeric_columns(df: Any, what: str, discrete: list[str] | None = None,
                          share: float = 0.9) -> tuple[Any, dict[str, Any]]:
    """Text columns of a freshly read CSV that hold numbers.

    A column whose present cells (cells that are not empty or a missing-value token, see
    :data:`MISSING_TOKENS`) all parse as numbers becomes a float column, NaN where missing. A
    column whose present cells are numbers but for a few (at least ``share`` of them parse) is
    a numeric column with stray cells: a DataError naming the column, the CSV lines and values,
    and the two fixes (clean the cells, or declare the column categorical with
    ``data.discrete``), instead of silently turning the column into categories. Columns listed
    in ``discrete`` are left alone. Returns the frame and the stripped text of every converted
    column (for the integer check of :func:`read_csv`).
    """
    import pandas as pd

    text: dict[str, Any] = {}
    for name in df.columns:
        col = df[name]
        if col.dtype != object or (discrete is not None and name in discrete):
            continue
        cells = col.astype(str).str.strip()
        present = col.notna() & ~cells.str.lower().isin(MISSING_TOKENS)
        if not present.any():
            continue
        numbers = pd.to_numeric(cells.where(present), errors="coerce")
        stray = present & numbers.isna()
        n_bad, n_ok = int(stray.sum()), int((present & numbers.notna()).sum())
        if n_bad == 0:
            df[name] = numbers.astype(np.float64)
            text[name] = cells
            continue
        if n_ok < share * (n_ok + n_bad):
            continue
        rows = [int(i) for i in np.flatnonzero(stray.to_numpy())]
        listing = ", ".join(f"line {i + 2} ({col.iloc[i]!r})" for i in rows[:5])
        more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
        listed = ", ".join([*(discrete or []), str(name)])
        raise DataError(
            f"{what}: column '{name}' holds numbers except {n_bad} cell(s): {listing}{more}. "
            f"Fix them, or leave them empty (a missing value; NA, NaN, null and None count as "
            f"missing too). If the column is categorical after all, declare it: "
            f"data.discrete: [{listed}] (--set 'data.discrete=[{listed}]'; data.discrete "
            f"replaces the type detection, so list every numeric column to treat as "
            f"categorical). Line 1 is the header.")
    return df, text


def table_frame(source: str, discrete: list[str] | None = None) -> Any:
    """The DataFrame of ``sklearn:NAME``, ``csv:PATH`` or ``frame:NAME`` (``discrete``: the
    declared categorical columns, which a CSV keeps as text)."""
    prefix, _, rest = source.partition(":")
    if prefix == "sklearn":
        return sklearn_frame(rest)
    if prefix == "csv":
        return read_csv(rest, discrete)
    if prefix == "frame":
        if rest not in _FRAMES:
            raise DataError(f"no DataFrame registered as '{rest}'. Call "
                            f"ganforge.data.tabular.register_frame('{rest}', df) first.")
        return _FRAMES[rest].copy()
    raise DataError(f"'{source}' is not a table source; use sklearn:NAME, csv:PATH or frame:NAME.")


def split_frame(df: Any, split: str, test_fraction: float = 0.2, seed: int = 0,
                stratify: str | None = None) -> Any:
    """Fixed seeded train/test split (stratified by ``stratify`` when every class has 2 rows)."""
    if split == "all":
        return df.reset_index(drop=True)
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}.")
    from sklearn.model_selection import train_test_split

    strat = None
    if stratify is not None:
        counts = df[stratify].value_counts(dropna=False)
        if len(counts) > 1 and counts.min() >= 2:
            strat = df[stratify].map(str)  # NaN is a class label of its own
    tr, te = train_test_split(df, test_size=test_fraction, random_state=seed, stratify=strat)
    return (tr if split == "train" else te).reset_index(drop=True)


def load_table(source: str, split: str = "train", discrete: list[str] | None = None,
               target: str | None = None, test_fraction: float = 0.2, split_seed: int = 0,
               max_modes: int = 10, weight_threshold: float = 0.005,
               max_int_categories: int = 10, encode_seed: int = 0,
               transformer: TableTransformer | None = None,
               max_categories: int = DEFAULT_MAX_CATEGORIES) -> TensorData:
    """Load, split, type, fit the transformer on the train split and encode ``split``.

    ``info`` holds the ``transformer``, the ``frame`` of this split, the ``target`` column and
    the ``test_frame`` (held-out rows, for ML efficacy and privacy checks). The keyword options
    are ``data.options`` (``max_categories``: the widest one-hot span of a categorical column).
    """
    df = table_frame(source, discrete)
    df.columns = [str(c) for c in df.columns]
    if target is not None and target not in df.columns:
        hint = did_you_mean(target, df.columns)
        raise DataError(f"target column '{target}' is not in the table.{hint} Columns: "
                        f"{', '.join(df.columns)}.")
    if len(df) < 2:
        raise DataError(f"'{source}' has {len(df)} row(s); a table needs at least 2.")
    kinds = detect_columns(df, discrete, max_int_categories)
    strat = target if target is not None and kinds[target] in ("categorical", "boolean") else None
    train = split_frame(df, "train" if split != "all" else "all", test_fraction, split_seed, strat)
    test = (split_frame(df, "test", test_fraction, split_seed, strat) if split != "all"
            else train.iloc[:0])
    if transformer is None:
        transformer = TableTransformer.fit(train, kinds, max_modes, weight_threshold,
                                           max_categories=max_categories)
    frame = test if split == "test" else train
    x = torch.from_numpy(transformer.transform(frame, seed=encode_seed))
    return TensorData(name=source, x=x, kind="table", split=split,
                      info={"transformer": transformer, "frame": frame, "test_frame": test,
                            "target": target, "kinds": kinds})


def _table_loader(prefix: str) -> Any:
    def load(path: str, split: str = "train", **options: Any) -> TensorData:
        return load_table(prefix + path, split, **options)

    load.__doc__ = f"A table from {prefix}...: see ganforge.data.tabular.load_table."
    return load


for _prefix in ("sklearn:", "csv:", "frame:"):
    register_dataset(_prefix)(_table_loader(_prefix))
