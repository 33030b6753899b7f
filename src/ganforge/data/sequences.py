"""Sequence datasets (N, T, F), prepared as TimeGAN (Yoon et al. 2019) prepares its data.

- ``sines``: TimeGAN's generator: each of ``dim`` features is sin(f t + phi) with f, phi drawn
  from U(0, 0.1) (drawn per sample, per feature, frequency first), rescaled by (x + 1) / 2.
  Drawn with ``numpy.random.RandomState(seed)`` in the reference code's order, so a seed gives
  the same numbers as the reference code run after ``np.random.seed(seed)``.
- ``sunspots``, ``co2``, ``macrodata``, ``elnino``, ``nile``: real series bundled in statsmodels.
- ``csv-sequence:PATH``: a user's CSV, one row a time step, numeric columns.

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
@register_dataset("csv-sequence:")
def csv_sequence(path: str, split: str = "all", seq_len: int = 24, seed: int = 0,
                 test_fraction: float = 0.0, columns: list[str] | None = None) -> TensorData:
    """A CSV with a header row, one row a time step; every numeric column is a feature
    (or the ones named in ``columns``). Min-max scaled, windows of ``seq_len``, shuffled."""
    import pandas as pd

    _check_split(split)
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"sequence CSV '{path}' does not exist. Give data.source as "
                        f"csv-sequence:PATH with one row per time step.")
    try:
        frame = pd.read_csv(p)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read '{path}' as CSV: {exc}") from None
    if not columns:
        numeric = frame.select_dtypes(include="number")
        if numeric.shape[1] == 0:
            raise DataError(f"'{path}' has no numeric columns (columns: "
                            f"{', '.join(map(str, frame.columns))}).")
        frame = numeric
    elif any(c in frame.columns and not pd.api.types.is_numeric_dtype(frame[c]) for c in columns):
        bad = next(c for c in columns if c in frame.columns
                   and not pd.api.types.is_numeric_dtype(frame[c]))
        raise DataError(f"'{path}': column '{bad}' is not numeric; list only numeric columns "
                        f"in data.options.columns.")
    return series_dataset(f"csv-sequence:{path}", frame, split, int(seq_len), seed,
                          test_fraction, columns)


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
        if "music" in data.info:  # music runs: the quantization grid of MIDI / MusicXML output
            info["music"] = {"grid": data.info["music"]["grid"]}
    path = Path(run_dir) / DATA_INFO_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=1))
    tmp.replace(path)
    return path


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
                      scaling: dict[str, Any] | None = None) -> tuple[list[str], np.ndarray]:
    """(N, T, F) -> header and a (N*T, 2+F) table: sample, step, features (original units)."""
    n, t, f = samples.shape
    vals = samples.reshape(n * t, f).astype(np.float64)
    if scaling is not None:
        vals = minmax_invert(vals, scaling)
    cols = list(columns) if columns and len(columns) == f else [f"x{i}" for i in range(f)]
    ids = np.repeat(np.arange(n), t)
    steps = np.tile(np.arange(t), n)
    return ["sample", "step", *cols], np.column_stack([ids, steps, vals])


def write_sequence_csv(samples: np.ndarray, out: str | Path, run_dir: str | Path | None = None,
                       scaled: bool = True) -> Path:
    """Write (N, T, F) samples as a long CSV (sample, step, one column per feature, named as
    the run's data columns). ``scaled``: the samples are in the networks' [0, 1] space and are
    mapped back to original units with the scaling stored in the run directory, if any;
    ``scaled=False``: they already are in original units (what ``Run.sample`` returns)."""
    info = load_data_info(run_dir) if run_dir is not None else None
    info = info or {}
    header, table = sequences_to_long(np.asarray(samples), info.get("columns"),
                                      info.get("scaling") if scaled else None)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt = ["%d", "%d"] + ["%.8g"] * (table.shape[1] - 2)
    tmp = out.with_name(out.name + ".tmp")
    np.savetxt(tmp, table, delimiter=",", header=",".join(header), comments="", fmt=fmt)
    tmp.replace(out)
    return out
