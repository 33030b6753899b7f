"""Sequence datasets (N, T, F), prepared as TimeGAN (Yoon et al. 2019) prepares its data.

- ``sines``: TimeGAN's generator: each of ``dim`` features is sin(f t + phi) with f, phi drawn
  from U(0, 0.1) (drawn per sample, per feature, frequency first), rescaled by (x + 1) / 2.
  Drawn with ``numpy.random.RandomState(seed)`` in the reference code's order, so a seed gives
  the same numbers as the reference code run after ``np.random.seed(seed)``.
- ``sunspots``, ``co2``, ``macrodata``, ``elnino``, ``nile``: real series bundled in statsmodels.
- ``csv-sequence:PATH``: a user's CSV, one row a time step, numeric columns; with
  ``options.id`` a long-format file of many sequences of their own lengths (one per id),
  padded, with a mask channel (see "variable-length sequences" below).

Real series are min-max scaled per feature (TimeGAN's rule: (x - min) / (max - min + 1e-7)),
cut into every sliding window of length ``seq_len`` (TimeGAN's loop stops one window early:
``len - seq_len`` windows; kept for fidelity) and shuffled with a seeded permutation. The scaling
is kept in ``TensorData.info["scaling"]`` and written to the run directory (``data.json``) so
samples can be written back in original units.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.data.base import TensorData
from ganforge.data.registry import register_dataset
from ganforge.errors import DataError
from ganforge.fileio import atomic_path, atomic_write_text

SCALE_EPS = 1e-7  # TimeGAN's MinMaxScaler adds this to the denominator
DATA_INFO_FILE = "data.json"


# --------------------------------------------------------------------------- sines
def sine_arrays(n: int = 10_000, seq_len: int = 24, dim: int = 5, seed: int = 0) -> np.ndarray:
    """TimeGAN's sines as float64 (n, seq_len, dim) in [0, 1]."""
    rs = np.random.RandomState(seed)
    # The reference draws freq then phase, feature by feature, sample by sample: C order.
    draws = rs.uniform(0.0, 0.1, size=(n, dim, 2))
    freq, phase = draws[..., 0], draws[..., 1]
    t = np.arange(seq_len, dtype=np.float64)
    x = np.sin(freq[:, None, :] * t[None, :, None] + phase[:, None, :])
    return (x + 1.0) * 0.5


def _check_split(split: str) -> None:
    if split not in ("train", "test", "all"):
        raise DataError(f"unknown split '{split}'; use train, test or all.")


def _split_rows(x: np.ndarray, split: str, test_fraction: float) -> np.ndarray:
    """train = first (1 - test_fraction) of the (already shuffled) windows, test = the rest."""
    _check_split(split)
    if split == "all" or test_fraction <= 0:
        return x
    cut = round(len(x) * (1.0 - test_fraction))
    return x[:cut] if split == "train" else x[cut:]


@register_dataset("sines")
def sines(split: str = "all", n: int = 10_000, seq_len: int = 24, dim: int = 5, seed: int = 0,
          test_fraction: float = 0.0) -> TensorData:
    """TimeGAN's 10,000 sines of length 24 with 5 features in [0, 1] (all for training by
    default, as TimeGAN does; ``test_fraction`` holds some out)."""
    if n < 1 or seq_len < 2 or dim < 1:
        raise DataError(f"sines needs n >= 1, seq_len >= 2 and dim >= 1; got n={n}, "
                        f"seq_len={seq_len}, dim={dim}.")
    x = _split_rows(sine_arrays(n, seq_len, dim, seed), split, test_fraction)
    return TensorData(name="sines", x=torch.from_numpy(x.astype(np.float32)), kind="sequence",
                      split=split, info={"columns": [f"sin{i}" for i in range(dim)]})


# ------------------------------------------------------------------ scaling, windows
def minmax_fit(values: np.ndarray) -> dict[str, list[float]]:
    return {"min": values.min(axis=0).tolist(), "max": values.max(axis=0).tolist()}


def minmax_apply(values: np.ndarray, scaling: dict[str, Any]) -> np.ndarray:
    lo, hi = np.asarray(scaling["min"]), np.asarray(scaling["max"])
    return (values - lo) / (hi - lo + SCALE_EPS)


def minmax_invert(values: np.ndarray, scaling: dict[str, Any]) -> np.ndarray:
    """Scaled values back to original units (the exact inverse of :func:`minmax_apply`)."""
    lo, hi = np.asarray(scaling["min"]), np.asarray(scaling["max"])
    return values * (hi - lo + SCALE_EPS) + lo


def sliding_windows(values: np.ndarray, seq_len: int, seed: int) -> np.ndarray:
    """Every window ``values[i:i+seq_len]`` for i in range(len - seq_len), shuffled (TimeGAN)."""
    count = len(values) - seq_len
    if count < 1:
        raise DataError(f"the series has {len(values)} time steps; windows of length {seq_len} "
                        f"need at least {seq_len + 1}. Lower data.options.seq_len.")
    idx = np.arange(count)[:, None] + np.arange(seq_len)[None, :]
    windows = values[idx]
    perm = np.random.RandomState(seed).permutation(count)
    return windows[perm]


def series_dataset(name: str, frame: Any, split: str, seq_len: int, seed: int,
                   test_fraction: float, columns: list[str] | None = None) -> TensorData:
    """A (T_total, F) table -> scaled, windowed, shuffled TensorData with its scaling."""
    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataError(f"{name}: no column '{missing[0]}'. Columns: "
                            f"{', '.join(map(str, frame.columns))}.")
        frame = frame[list(columns)]
    values = frame.to_numpy(dtype=np.float64)
    if values.ndim != 2 or values.shape[1] == 0:
        raise DataError(f"{name}: no numeric columns to model.")
    if not np.isfinite(values).all():
        raise DataError(f"{name}: the series holds NaN or infinite values; fill or drop them.")
    scaling = minmax_fit(values)
    windows = sliding_windows(minmax_apply(values, scaling), seq_len, seed)
    x = _split_rows(windows, split, test_fraction)
    if len(x) == 0:
        raise DataError(f"{name}: the '{split}' split is empty; lower data.options.test_fraction "
                        f"or use split: all.")
    return TensorData(name=name, x=torch.from_numpy(x.astype(np.float32)), kind="sequence",
                      split=split, info={"scaling": scaling,
                                         "columns": [str(c) for c in frame.columns]})


# ----------------------------------------------------------- statsmodels real series
def _statsmodels_frame(name: str) -> Any:
    import importlib

    try:  # the dataset module alone: importing statsmodels.api takes seconds
        module = importlib.import_module(f"statsmodels.datasets.{name}")
    except ImportError:  # pragma: no cover - declared dependency
        raise DataError("the real series need statsmodels: pip install statsmodels.") from None
    frame = module.load_pandas().data
    if name == "co2":  # weekly, 59 missing weeks: interpolate in time, as is usual for this set
        frame = frame.interpolate(limit_direction="both")
    if name == "sunspots":
        frame = frame[["SUNACTIVITY"]]
    if name == "nile":
        frame = frame[["volume"]]
    if name == "macrodata":
        frame = frame.drop(columns=["year", "quarter"])
    if name == "elnino":  # 61 years x 12 months -> one monthly series
        frame = frame.drop(columns=["YEAR"]).stack().to_frame("temperature").reset_index(drop=True)
    return frame


STATSMODELS_SERIES = {
    "sunspots": "yearly sunspot numbers 1700-2008 (309 steps, 1 feature)",
    "co2": "weekly Mauna Loa CO2 1958-2001 (2,284 steps, 1 feature, gaps interpolated)",
    "macrodata": "US quarterly macro data 1959-2009 (203 steps, 12 features)",
    "elnino": "monthly Pacific sea surface temperature 1950-2010 (732 steps, 1 feature)",
    "nile": "yearly Nile flow 1871-1970 (100 steps, 1 feature)",
}


def _make_series_loader(name: str) -> None:
    def loader(split: str = "all", seq_len: int = 24, seed: int = 0, test_fraction: float = 0.0,
               columns: list[str] | None = None) -> TensorData:
        _check_split(split)
        return series_dataset(name, _statsmodels_frame(name), split, int(seq_len), seed,
                              test_fraction, columns)

    loader.__doc__ = (f"statsmodels {name}: {STATSMODELS_SERIES[name]}; min-max scaled, "
                      f"every window of seq_len (24), shuffled.")
    register_dataset(name)(loader)


for _name in STATSMODELS_SERIES:
    _make_series_loader(_name)


# ------------------------------------------------------------------------ user CSV
def _read_csv_frame(path: str) -> Any:
    import pandas as pd

    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"sequence CSV '{path}' does not exist. Give data.source as "
                        f"csv-sequence:PATH with one row per time step.")
    try:
        return pd.read_csv(p)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read '{path}' as CSV: {exc}") from None


def _feature_frame(path: str, frame: Any, columns: list[str] | None,
                   exclude: tuple[str, ...] = ()) -> Any:
    """The numeric feature columns of ``frame`` (all of them but ``exclude``, or ``columns``)."""
    import pandas as pd

    if not columns:
        numeric = frame.drop(columns=list(exclude)).select_dtypes(include="number")
        if numeric.shape[1] == 0:
            raise DataError(f"'{path}' has no numeric columns (columns: "
                            f"{', '.join(map(str, frame.columns))}).")
        return numeric
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"csv-sequence:{path}: no column '{missing[0]}'. Columns: "
                        f"{', '.join(map(str, frame.columns))}.")
    if clash := [c for c in columns if c in exclude]:
        raise DataError(f"'{path}': column '{clash[0]}' is the id or order column; it cannot "
                        f"also be a feature in data.options.columns.")
    if any(not pd.api.types.is_numeric_dtype(frame[c]) for c in columns):
        bad = next(c for c in columns if not pd.api.types.is_numeric_dtype(frame[c]))
        raise DataError(f"'{path}': column '{bad}' is not numeric; list only numeric columns "
                        f"in data.options.columns.")
    return frame[list(columns)]


@register_dataset("csv-sequence:")
def csv_sequence(path: str, split: str = "all", seq_len: int | None = None, seed: int = 0,
                 test_fraction: float = 0.0, columns: list[str] | None = None,
                 id: str | None = None, order: str | None = None,
                 max_len: int | None = None) -> TensorData:
    """A CSV with a header row, one row a time step; every numeric column is a feature
    (or the ones named in ``columns``). Min-max scaled, windows of ``seq_len`` (24), shuffled.

    With ``id`` (a column naming the sequence each row belongs to) the file holds many
    sequences of their own lengths: see :func:`variable_length_dataset`."""
    _check_split(split)
    frame = _read_csv_frame(path)
    if id is not None:
        if seq_len is not None:
            raise DataError(f"csv-sequence:{path} with data.options.id: each id is one whole "
                            f"sequence, not cut into windows of seq_len. Remove "
                            f"data.options.seq_len (data.options.max_len caps the length).")
        return variable_length_dataset(path, frame, split, id, order, max_len, seed,
                                       test_fraction, columns)
    for name, value in (("order", order), ("max_len", max_len)):
        if value is not None:
            raise DataError(f"data.options.{name} applies to sequences grouped by "
                            f"data.options.id; set data.options.id (the column naming each "
                            f"row's sequence) or remove data.options.{name}.")
    frame = _feature_frame(path, frame, columns)
    return series_dataset(f"csv-sequence:{path}", frame, split,
                          24 if seq_len is None else int(seq_len), seed, test_fraction,
                          None)


# ------------------------------------------------------------ variable-length sequences
# A variable-length sequence set is held as (N, T, F + 1): F features, min-max scaled, then a
# mask channel that is 1 on a sequence's real steps and 0 on its padding (where the features
# are 0). G learns to emit the mask channel as well; a generated sequence's length is the first
# step whose mask value is below 0.5 (at least 1), see :func:`mask_lengths`.
MASK_THRESHOLD = 0.5


def variable_length_dataset(path: str, frame: Any, split: str, id_column: str,
                            order: str | None, max_len: int | None, seed: int,
                            test_fraction: float, columns: list[str] | None) -> TensorData:
    """One sequence per value of ``id_column`` (rows in file order, or sorted by ``order``,
    ties in file order), every feature min-max scaled over all rows, padded with zeros to the
    longest sequence (or cut to ``max_len`` steps), plus the mask channel; sequences shuffled
    with a seeded permutation, then split as the windows are (``test_fraction``)."""
    name = f"csv-sequence:{path}"
    for what, col in (("id", id_column), ("order", order)):
        if col is not None and col not in frame.columns:
            raise DataError(f"{name}: data.options.{what} is '{col}', but the CSV has no such "
                            f"column. Columns: {', '.join(map(str, frame.columns))}.")
    if order is not None and order == id_column:
        raise DataError(f"{name}: data.options.order and data.options.id are both '{order}'; "
                        f"order names the column that sorts the steps of one id.")
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int)
                                or max_len < 1):
        raise DataError(f"data.options.max_len must be a positive integer, got {max_len!r}.")
    if frame[id_column].isna().any():
        row = int(np.flatnonzero(frame[id_column].isna().to_numpy())[0])
        raise DataError(f"{name}: the id column '{id_column}' is empty on data row {row + 1}; "
                        f"every row needs the id of its sequence.")
    exclude = tuple(c for c in (id_column, order) if c is not None)
    feats = _feature_frame(path, frame, columns, exclude)
    values = feats.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
        raise DataError(f"{name}: data row {row + 1} holds a missing, NaN or infinite value; "
                        f"fill or drop it.")
    if order is not None:
        keys = frame[order]
        if keys.isna().any():
            row = int(np.flatnonzero(keys.isna().to_numpy())[0])
            raise DataError(f"{name}: the order column '{order}' is empty on data row "
                            f"{row + 1}.")
        rows = np.argsort(keys.to_numpy(), kind="stable")
    else:
        rows = np.arange(len(frame))
    ids = frame[id_column].to_numpy()
    # sequences in order of first appearance in the file; rows of one id in ``rows`` order
    codes, first = _id_codes(ids)
    by_id = [rows[codes[rows] == k] for k in range(len(first))]
    lengths_all = np.array([len(r) for r in by_id])
    t = int(lengths_all.max()) if max_len is None else int(max_len)
    n, f = len(by_id), values.shape[1]
    scaling = minmax_fit(values)
    scaled = minmax_apply(values, scaling)
    x = np.zeros((n, t, f + 1), dtype=np.float64)
    lengths = np.minimum(lengths_all, t)
    for k, r in enumerate(by_id):
        x[k, :lengths[k], :f] = scaled[r[:lengths[k]]]
        x[k, :lengths[k], f] = 1.0
    perm = np.random.RandomState(seed).permutation(n)
    x, lengths, id_values = x[perm], lengths[perm], [ids[first[k]] for k in perm]
    x = _split_rows(x, split, test_fraction)
    kept = _split_rows(np.arange(n), split, test_fraction)
    if len(x) == 0:
        raise DataError(f"{name}: the '{split}' split is empty; lower data.options.test_fraction "
                        f"or use split: all.")
    lengths = lengths[kept]
    info = {"scaling": scaling, "columns": [str(c) for c in feats.columns],
            "variable_length": {"id": str(id_column), "order": order, "steps": t,
                                "truncated": int((lengths_all > t).sum()),
                                "lengths": length_histogram(lengths)},
            "lengths": lengths.tolist(), "ids": [_plain(id_values[i]) for i in kept]}
    return TensorData(name=name, x=torch.from_numpy(x.astype(np.float32)), kind="sequence",
                      split=split, info=info)


def _id_codes(ids: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Each row's sequence number (by first appearance) and each sequence's first row."""
    seen: dict[Any, int] = {}
    codes = np.empty(len(ids), dtype=np.int64)
    first: list[int] = []
    for i, v in enumerate(ids.tolist()):
        k = seen.get(v)
        if k is None:
            k = seen[v] = len(first)
            first.append(i)
        codes[i] = k
    return codes, first


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def length_histogram(lengths: np.ndarray) -> dict[str, int]:
    """{"length": count} of a set of sequence lengths (JSON keys are strings)."""
    vals, counts = np.unique(np.asarray(lengths, dtype=np.int64), return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(vals, counts, strict=True)}


def mask_lengths(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """The length of each (N, T, F + 1) sequence from its mask channel (the last): the first
    step whose mask value is below 0.5, or T when there is none; at least 1 (every real
    sequence has a step)."""
    m = x[..., -1].detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)[..., -1]
    below = m < MASK_THRESHOLD
    first = np.where(below.any(axis=1), below.argmax(axis=1), m.shape[1])
    return np.maximum(first, 1).astype(np.int64)


def apply_mask(x: torch.Tensor) -> torch.Tensor:
    """(N, T, F + 1) -> the features multiplied by the mask channel (differentiably), the mask
    channel kept: real padded data is unchanged (0 features where the mask is 0), and generated
    steps are faded out by their own mask, so D sees padding the same way in both."""
    mask = x[..., -1:]
    return torch.cat([x[..., :-1] * mask, mask], dim=-1)


def split_mask(x: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, T, F + 1) with a mask channel -> (N, T, F) features with NaN after each sequence's
    length (:func:`mask_lengths`), and the lengths. This is what users get (``.npy``)."""
    arr = (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x))
    lengths = mask_lengths(arr)
    out = arr[..., :-1].astype(np.float64 if arr.dtype == np.float64 else np.float32)
    out[np.arange(arr.shape[1])[None, :] >= lengths[:, None]] = np.nan
    return out, lengths


def nan_lengths(x: np.ndarray) -> np.ndarray:
    """The length of each NaN-padded (N, T, F) sequence: its steps before the first all-NaN
    step. Every step after it must be all NaN and every step before it finite."""
    arr = np.asarray(x)
    pad = np.isnan(arr).all(axis=2)
    lengths = np.where(pad.any(axis=1), pad.argmax(axis=1), arr.shape[1])
    steps = np.arange(arr.shape[1])[None, :]
    if (pad != (steps >= lengths[:, None])).any() or not np.isfinite(
            arr[steps < lengths[:, None]]).all():
        raise DataError("variable-length sequences are NaN-padded: every step after a "
                        "sequence's last one all NaN, and no NaN or infinite value before it.")
    return lengths.astype(np.int64)


def with_mask_channel(x: np.ndarray) -> np.ndarray:
    """NaN-padded (N, T, F) -> (N, T, F + 1): padding as zeros and the mask channel (the
    training representation; the inverse of :func:`split_mask`)."""
    arr = np.asarray(x)
    lengths = nan_lengths(arr)
    mask = (np.arange(arr.shape[1])[None, :] < lengths[:, None]).astype(arr.dtype)
    return np.concatenate([np.nan_to_num(arr, nan=0.0), mask[..., None]], axis=2)


# ----------------------------------------------------------- stored with each run
def data_sha256(data: TensorData) -> str:
    """The sha256 of the training samples as loaded (float tensor bytes, row order)."""
    import hashlib

    return hashlib.sha256(data.x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def save_data_info(run_dir: str | Path, data: TensorData) -> Path:
    """Write ``data.json``: the data's kind, sample shape, size, where it came from and its
    sha256, so a run samples without its data (and resume / evaluate can tell whether the data
    they are given is the one it was trained on); sequences add their columns and scaling."""
    info: dict[str, Any] = {"kind": data.kind, "shape": list(data.shape), "n": len(data),
                            "source": data.name, "sha256": data_sha256(data)}
    if data.kind == "sequence":
        info.update(columns=data.info.get("columns"), scaling=data.info.get("scaling"))
        if "variable_length" in data.info:  # id column, padded length, length histogram
            info["variable_length"] = data.info["variable_length"]
        if "music" in data.info:  # music runs: the quantization grid of MIDI / MusicXML output
            info["music"] = {k: v for k, v in data.info["music"].items()
                             if k in ("grid", "encoding", "vocab")}  # + one-hot decoding
    return atomic_write_text(Path(run_dir) / DATA_INFO_FILE, json.dumps(info, indent=1))


def load_data_info(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / DATA_INFO_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError) as exc:
        raise DataError(f"'{path}' is corrupt ({exc}); delete it to sample in scaled "
                        f"units.") from None
    if not isinstance(info, dict):
        raise DataError(f"'{path}' is not a ganforge data description; delete it.")
    return info


def sequences_to_long(samples: np.ndarray, columns: list[str] | None = None,
                      scaling: dict[str, Any] | None = None, id_column: str = "sample"
                      ) -> tuple[list[str], np.ndarray]:
    """(N, T, F) -> header and a (rows, 2+F) table: sample, step, features (original units).
    Steps whose features are all NaN (the padding of variable-length sequences) are left out,
    so each sample has as many rows as its length."""
    n, t, f = samples.shape
    vals = samples.reshape(n * t, f).astype(np.float64)
    if scaling is not None:
        vals = minmax_invert(vals, scaling)
    cols = list(columns) if columns and len(columns) == f else [f"x{i}" for i in range(f)]
    ids = np.repeat(np.arange(n), t)
    steps = np.tile(np.arange(t), n)
    keep = ~np.isnan(vals).all(axis=1)
    step_name = "step" if id_column != "step" and "step" not in cols else "step_index"
    return ([id_column, step_name, *cols],
            np.column_stack([ids[keep], steps[keep], vals[keep]]))


def write_sequence_csv(samples: np.ndarray, out: str | Path, run_dir: str | Path | None = None,
                       scaled: bool = True) -> Path:
    """Write (N, T, F) samples as a long CSV (sample, step, one column per feature, named as
    the run's data columns). ``scaled``: the samples are in the networks' [0, 1] space and are
    mapped back to original units with the scaling stored in the run directory, if any;
    ``scaled=False``: they already are in original units (what ``Run.sample`` returns).
    Variable-length runs: NaN-padded samples (what ``Run.sample`` returns), written with only
    each sequence's real steps, and the first column named as the data's id column."""
    info = load_data_info(run_dir) if run_dir is not None else None
    info = info or {}
    varlen = info.get("variable_length")
    id_column = str(varlen["id"]) if isinstance(varlen, dict) and varlen.get("id") else "sample"
    header, table = sequences_to_long(np.asarray(samples), info.get("columns"),
                                      info.get("scaling") if scaled else None, id_column)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt = ["%d", "%d"] + ["%.8g"] * (table.shape[1] - 2)
    with atomic_path(out) as tmp:
        np.savetxt(tmp, table, delimiter=",", header=",".join(header), comments="", fmt=fmt)
    return out
