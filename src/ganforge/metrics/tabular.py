"""Scores of synthetic tables against real ones.

- :func:`column_fidelity`: per column, the Kolmogorov-Smirnov statistic (continuous, integer
  and date/time columns, the latter as seconds; missing values left out) or the total variation distance (categorical columns; a
  missing value counts as a category). 0 is a perfect match, 1 the worst.
- :func:`correlation_difference`: mean absolute difference of the Pearson correlations of every
  pair of numeric columns, real vs synthetic.
- :func:`ml_efficacy`: SDGym's machine-learning efficacy: train classifiers on the synthetic
  rows, test on the real held-out rows. Binary targets: F1 of the minority class (in the real
  test set) for DecisionTree(max_depth 15, balanced), AdaBoost, LogisticRegression(balanced,
  max_iter 50) and MLP(50, max_iter 50), averaged; multiclass targets: macro-F1 of
  DecisionTree(max_depth 30, balanced) and MLP(50, max_iter 50). Features: categorical columns
  one-hot (at most the 1,000 most frequent categories of a column, the rest all-zero), numeric
  columns (date/times as seconds) standardized with the training rows' statistics (missing
  values at the training median).
- :func:`distance_to_closest_record`: a privacy check. Distances (same feature map, scaled by the
  real training rows) from each synthetic row to its nearest real training row, compared with
  the same distance for real held-out rows; and the share of synthetic rows nearer to a random
  training subset than to the holdout of the same size (0.5: no sign of copying).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ganforge.data.tabular import date_format, datetime_seconds
from ganforge.errors import DataError

BINARY_MODELS = ("decision_tree", "adaboost", "logistic_regression", "mlp")
MULTICLASS_MODELS = ("decision_tree", "mlp")
NUMERIC_KINDS = ("continuous", "integer", "datetime")
MAX_LEVELS = 1000  # one-hot features of a categorical column: its most frequent categories


def _numeric(df: Any, kinds: dict[str, str]) -> list[str]:
    return [c for c in df.columns if kinds.get(c) in NUMERIC_KINDS]


def _floats(s: Any, kind: str | None) -> np.ndarray:
    """A numeric column as float64 (NaN where missing); date/times as seconds since 1970."""
    if kind == "datetime":
        import pandas as pd

        fmt = "" if pd.api.types.is_datetime64_dtype(s) else date_format(s) or ""
        return datetime_seconds(s, fmt, str(s.name))
    return s.to_numpy(np.float64, na_value=np.nan)


def _float_frame(df: Any, cols: list[str], kinds: dict[str, str]) -> Any:
    import pandas as pd

    return pd.DataFrame({c: _floats(df[c], kinds.get(c)) for c in cols}, index=df.index,
                        columns=cols)


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample KS statistic: the largest gap between the two empirical CDFs."""
    a = np.sort(np.asarray(a, dtype=np.float64))
    b = np.sort(np.asarray(b, dtype=np.float64))
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) == 0 or len(b) == 0:
        return 1.0
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / len(a)
    fb = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))


def total_variation(a: Any, b: Any) -> float:
    """0.5 * sum |p - q| over the union of categories (missing is a category)."""
    import pandas as pd

    pa = pd.Series(a).astype(object).where(pd.notna(a), "<missing>").astype(str)
    pb = pd.Series(b).astype(object).where(pd.notna(b), "<missing>").astype(str)
    p = pa.value_counts(normalize=True)
    q = pb.value_counts(normalize=True)
    p, q = p.align(q, fill_value=0.0)
    return float(0.5 * np.abs(p - q).sum())


def column_fidelity(real: Any, synth: Any, kinds: dict[str, str]) -> dict[str, Any]:
    """Per-column KS / TV, their means and ``fidelity`` = 1 - mean distance over all columns."""
    per: dict[str, float] = {}
    ks, tv = [], []
    for c in real.columns:
        if c not in synth.columns:
            raise DataError(f"the synthetic table lacks column '{c}'.")
        if kinds[c] in NUMERIC_KINDS:
            v = ks_statistic(_floats(real[c], kinds[c]), _floats(synth[c], kinds[c]))
            ks.append(v)
        else:
            v = total_variation(real[c], synth[c])
            tv.append(v)
        per[c] = v
    allv = ks + tv
    return {"ks_mean": float(np.mean(ks)) if ks else None,
            "tv_mean": float(np.mean(tv)) if tv else None,
            "fidelity": 1.0 - float(np.mean(allv)), "per_column": per}


def correlation_difference(real: Any, synth: Any, kinds: dict[str, str]) -> float | None:
    """Mean |corr_real - corr_synth| over pairs of numeric columns (None with < 2 columns)."""
    cols = _numeric(real, kinds)
    if len(cols) < 2:
        return None
    with np.errstate(all="ignore"):
        cr = _float_frame(real, cols, kinds).corr().to_numpy()
        cs = _float_frame(synth, cols, kinds).corr().to_numpy()
    iu = np.triu_indices(len(cols), 1)
    diff = np.abs(cr[iu] - cs[iu])
    diff = np.where(np.isnan(cr[iu]), np.nan, np.where(np.isnan(diff), 1.0, diff))
    return float(np.nanmean(diff)) if np.isfinite(diff).any() else None


# ------------------------------------------------------------------------- features
class FeatureMap:
    """One-hot categoricals + standardized numerics, fitted on one frame."""

    def __init__(self, frame: Any, kinds: dict[str, str], exclude: tuple[str, ...] = ()) -> None:
        self.num = [c for c in _numeric(frame, kinds) if c not in exclude]
        self.cat = [c for c in frame.columns if c not in self.num and c not in exclude]
        self.kinds = kinds
        x = _float_frame(frame, self.num, kinds)
        self.median = x.median().fillna(0.0)
        self.mean = x.fillna(self.median).mean()
        self.std = x.fillna(self.median).std(ddof=0).replace(0.0, 1.0).fillna(1.0)
        self.levels = {c: sorted(frame[c].astype(str).value_counts().index[:MAX_LEVELS])
                       for c in self.cat}

    def __call__(self, frame: Any) -> np.ndarray:
        parts = []
        if self.num:
            x = _float_frame(frame, self.num, self.kinds).fillna(self.median)
            parts.append(((x - self.mean) / self.std).to_numpy())
        for c in self.cat:
            v = frame[c].astype(str).to_numpy()
            parts.append((v[:, None] == np.asarray(self.levels[c])[None]).astype(np.float64))
        return np.concatenate(parts, 1) if parts else np.zeros((len(frame), 0))


def _models(binary: bool, seed: int) -> dict[str, Any]:
    from sklearn.ensemble import AdaBoostClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.tree import DecisionTreeClassifier

    mlp = MLPClassifier(hidden_layer_sizes=(50,), max_iter=50, random_state=seed)
    if binary:
        return {"decision_tree": DecisionTreeClassifier(max_depth=15, class_weight="balanced",
                                                        random_state=seed),
                "adaboost": AdaBoostClassifier(random_state=seed),
                "logistic_regression": LogisticRegression(class_weight="balanced", max_iter=50),
                "mlp": mlp}
    return {"decision_tree": DecisionTreeClassifier(max_depth=30, class_weight="balanced",
                                                    random_state=seed),
            "mlp": mlp}


def ml_efficacy(train: Any, test: Any, target: str, kinds: dict[str, str], seed: int = 0
                ) -> dict[str, Any]:
    """Train on ``train`` (synthetic rows), test on ``test`` (real held-out rows)."""
    from sklearn.metrics import accuracy_score, f1_score

    for name, frame in (("training", train), ("test", test)):
        if target not in frame.columns:
            raise DataError(f"target column '{target}' is not in the {name} table.")
    y_test = test[target].astype(str).to_numpy()
    y_train = train[target].astype(str).to_numpy()
    labels, counts = np.unique(y_test, return_counts=True)
    binary = len(labels) <= 2
    pos = labels[counts.argmin()]
    fmap = FeatureMap(train, kinds, exclude=(target,))
    x_train, x_test = fmap(train), fmap(test)
    scores: dict[str, float] = {}
    accs: dict[str, float] = {}
    for name, model in _models(binary, seed).items():
        if len(np.unique(y_train)) < 2:
            pred = np.full(len(y_test), y_train[0])
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pred = model.fit(x_train, y_train).predict(x_test)
        if binary:
            scores[name] = float(f1_score(y_test, pred, pos_label=pos, average="binary",
                                          zero_division=0))
        else:
            scores[name] = float(f1_score(y_test, pred, labels=labels, average="macro",
                                          zero_division=0))
        accs[name] = float(accuracy_score(y_test, pred))
    return {"ml_efficacy": float(np.mean(list(scores.values()))), "per_model": scores,
            "accuracy": float(np.mean(list(accs.values()))),
            "score": "f1" if binary else "macro_f1", "positive": str(pos) if binary else None}


def distance_to_closest_record(synth: Any, train: Any, holdout: Any, kinds: dict[str, str],
                               seed: int = 0) -> dict[str, float]:
    """Median nearest-neighbour distances to the real training rows, and the share of
    synthetic rows nearer to (an equal-size subset of) the training rows than to the holdout."""
    from sklearn.neighbors import NearestNeighbors

    fmap = FeatureMap(train, kinds)
    tr, ho, sy = fmap(train), fmap(holdout), fmap(synth)
    nn_train = NearestNeighbors(n_neighbors=1).fit(tr)
    d_syn = nn_train.kneighbors(sy)[0][:, 0]
    d_hold = nn_train.kneighbors(ho)[0][:, 0]
    rng = np.random.default_rng(seed)
    sub = tr[rng.choice(len(tr), size=min(len(ho), len(tr)), replace=False)]
    d_sub = NearestNeighbors(n_neighbors=1).fit(sub).kneighbors(sy)[0][:, 0]
    d_ho = NearestNeighbors(n_neighbors=1).fit(ho).kneighbors(sy)[0][:, 0]
    return {"dcr_synthetic_median": float(np.median(d_syn)),
            "dcr_holdout_median": float(np.median(d_hold)),
            "dcr_synthetic_min": float(d_syn.min()),
            "closer_to_train_share": float(np.mean(d_sub < d_ho))}


def evaluate_table(synth: Any, train: Any, test: Any, kinds: dict[str, str],
                   target: str | None = None, seed: int = 0) -> dict[str, Any]:
    """All scores in one flat record (``protocol`` says how they were computed)."""
    fid = column_fidelity(train, synth, kinds)
    out: dict[str, Any] = {"fidelity": fid["fidelity"], "ks_mean": fid["ks_mean"],
                           "tv_mean": fid["tv_mean"],
                           "corr_diff": correlation_difference(train, synth, kinds)}
    if target is not None and len(test):
        eff = ml_efficacy(synth, test, target, kinds, seed)
        out.update({"ml_efficacy": eff["ml_efficacy"], "ml_accuracy": eff["accuracy"]})
        out["ml_efficacy_per_model"] = eff["per_model"]
    if len(test):
        out.update(distance_to_closest_record(synth, train, test, kinds, seed))
    out["protocol"] = {"fidelity": "1 - mean(KS continuous, TV categorical) vs real train",
                       "ml_efficacy": "SDGym: train on synthetic, test on real holdout, "
                                      "F1 (binary, minority positive) / macro-F1",
                       "rows_synthetic": len(synth), "rows_train": len(train),
                       "rows_test": len(test)}
    return out
