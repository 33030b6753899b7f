"""Does ganforge encode a table's numbers as the ``ctgan`` package does? (issue 25, diagnostic)

Both systems encode a numeric column with a variational Gaussian mixture (at most 10 modes,
Dirichlet-process weight prior 0.001, modes under weight 0.005 dropped) and store each value as
``(x - mean_k) / (4 std_k)`` plus the one-hot of a mode ``k`` drawn from its posterior.
ganforge fits all columns at once with its own numpy code (``data.tabular.fit_vgm``); the
package fits one scikit-learn ``BayesianGaussianMixture`` per column through rdt's
``ClusterBasedNormalizer``. This script fits both on the training split that
benchmarks/tabular.py uses and prints, per numeric column:

- the modes each keeps;
- ``tv``: the total-variation distance between the two fitted mixture densities (0 = the same
  density, 1 = disjoint), computed on a grid of 20,000 points over the column's range;
- ``mode_agree``: how often the two encoders put the same row in modes whose means are within
  a quarter of the smaller standard deviation of each other (each encoder draws its mode, so
  even one encoder against itself agrees less than 100 %: ``self_agree`` is ganforge's
  encoder against a second draw of itself);
- fit seconds of each.

    heavy --threads 2 python benchmarks/tabular_encoding.py --table diamonds \\
        --json benchmarks/results/tabular/diamonds-encoding.json

Needs the ``bench`` extra (rdt comes with the ``ctgan`` package).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tabular import table_source


def mixture_pdf(grid: np.ndarray, w: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    z = (grid[:, None] - mu[None]) / sd[None]
    return (w[None] / (sd[None] * np.sqrt(2 * np.pi)) * np.exp(-0.5 * z ** 2)).sum(1)


def total_variation(x: np.ndarray, a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]
                    ) -> float:
    lo, hi = float(x.min()), float(x.max())
    pad = 0.05 * (hi - lo)
    grid = np.linspace(lo - pad, hi + pad, 20_000)
    pa, pb = mixture_pdf(grid, *a), mixture_pdf(grid, *b)
    pa, pb = pa / pa.sum(), pb / pb.sum()
    return float(0.5 * np.abs(pa - pb).sum())


def same_mode(ka: np.ndarray, kb: np.ndarray, a: tuple[np.ndarray, ...],
              b: tuple[np.ndarray, ...]) -> float:
    """Share of rows whose two drawn modes have means within 1/4 of the smaller std."""
    mu_a, sd_a = a[1][ka], a[2][ka]
    mu_b, sd_b = b[1][kb], b[2][kb]
    return float(np.mean(np.abs(mu_a - mu_b) < 0.25 * np.minimum(sd_a, sd_b)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default="diamonds", help="diamonds, census or a sklearn table")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the per-column rows here")
    args = ap.parse_args()

    from ganforge.data import load_dataset
    from ganforge.data.tabular import TableTransformer

    try:
        from rdt.transformers.numerical import ClusterBasedNormalizer
    except ImportError:
        sys.exit("rdt is not installed: pip install -e .[bench] (it comes with ctgan)")

    workdir = Path(tempfile.mkdtemp(prefix="gf-encoding-"))
    data = load_dataset(table_source(args.table, workdir), target="target")
    train, kinds = data.info["frame"], data.info["kinds"]
    numeric = [c for c, k in kinds.items() if k in ("continuous", "integer")]

    t0 = time.perf_counter()
    ours = TableTransformer.fit(train, kinds)
    t_ours = time.perf_counter() - t0
    enc = ours.transform(train, seed=args.seed)
    enc2 = ours.transform(train, seed=args.seed + 1)
    by_name = {c.name: c for c in ours.columns}
    alpha = {ours.columns[s.column].name: s for s in ours.spans if s.role == "alpha"}

    rows: list[dict[str, Any]] = []
    for name in numeric:
        x = train[name].to_numpy(dtype=float)
        col = by_name[name]
        a = (np.asarray(col.weights, float), np.asarray(col.means, float),
             np.asarray(col.stds, float))
        a = (a[0] / a[0].sum(), a[1], a[2])
        span = alpha[name]
        ka = enc[:, span.start + 1:span.start + 1 + len(a[1])].argmax(1)
        ka2 = enc2[:, span.start + 1:span.start + 1 + len(a[1])].argmax(1)

        np.random.seed(args.seed)
        t0 = time.perf_counter()
        cbn = ClusterBasedNormalizer(max_clusters=min(len(x), 10), weight_threshold=0.005,
                                     missing_value_generation="from_column")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cbn.fit(train[[name]], name)
            out = cbn.transform(train[[name]])
        t_pkg = time.perf_counter() - t0
        bgm, keep = cbn._bgm_transformer, cbn.valid_component_indicator
        wb = bgm.weights_[keep]
        b = (wb / wb.sum(), bgm.means_[keep, 0], np.sqrt(bgm.covariances_[keep, 0, 0]))
        kb = out[f"{name}.component"].to_numpy().astype(int)
        row = {"column": name, "modes_ganforge": len(a[1]), "modes_package": len(b[1]),
               "tv": total_variation(x, a, b), "mode_agree": same_mode(ka, kb, a, b),
               "self_agree": same_mode(ka, ka2, a, a), "fit_s_package": t_pkg}
        rows.append(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                          for k, v in row.items()}), flush=True)

    print(f"\n{args.table}: {len(train)} training rows; ganforge fits every column's mixture "
          f"at once in {t_ours:.1f} s (whole transformer), the package "
          f"{sum(r['fit_s_package'] for r in rows):.1f} s (numeric columns, fit + transform)")
    keys = ["column", "modes_ganforge", "modes_package", "tv", "mode_agree", "self_agree"]
    print(" | ".join(keys))
    print(" | ".join("---" for _ in keys))
    for r in rows:
        print(" | ".join(f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in keys))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "fit_s_ganforge": t_ours,
                                               "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
