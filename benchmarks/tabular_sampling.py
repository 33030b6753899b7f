"""Does the way a CTGAN is *sampled* explain ML-efficacy gaps? (issue 25, diagnostic)

The ``ctgan`` package samples its generator without ``.eval()`` (batch norm normalises each
sampling batch with that batch's own statistics) and draws the condition vectors with the
probabilities it trained with: under its default ``log_frequency=True`` these are log
frequencies (``DataSampler.sample_original_condvec`` reads ``_discrete_column_category_prob``,
which holds the log(1 + count) shares; read in ctgan 0.12.1), despite the method's name.
ganforge samples in eval mode (the running statistics) with the empirical frequencies.
This script trains ganforge's ``ctgan`` preset once on a table (as benchmarks/tabular.py does)
and scores synthetic tables drawn four ways: batch norm in eval or train mode, times condition
vectors drawn with the empirical or the log frequencies (the training-time choice, which
oversamples rare categories); "train" + "log" is the package's own way. Each mode is drawn
``--draws`` times (different sampling seeds); ML efficacy (macro-F1 of classifiers trained
on synthetic rows, tested on the real held-out split), fidelity and correlation difference
as in benchmarks/tabular.py, plus the share of each target class in the synthetic rows.

The two switches are applied from outside (a copy of G left in train mode; the sampler's
``draw`` told to use log frequencies): this is a diagnostic, not a feature.

    heavy --threads 2 python benchmarks/tabular_sampling.py --table diamonds --epochs 300 \\
        --json benchmarks/results/tabular/diamonds-sampling.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tabular import run_ganforge, table_source

MODES = [(bn, cond) for bn in ("eval", "train") for cond in ("empirical", "log")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", default="diamonds", help="diamonds, census or a sklearn table")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--draws", type=int, default=3, help="synthetic tables per sampling mode")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write every draw's scores here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import ganforge
    from ganforge.data import load_dataset
    from ganforge.metrics.tabular import evaluate_table
    from ganforge.tasks import ctgan as tasks_ctgan

    work = Path(tempfile.mkdtemp(prefix="gf-sampling-"))
    source = table_source(args.table, work)
    data = load_dataset(source, target="target")
    train, test, kinds = data.info["frame"], data.info["test_frame"], data.info["kinds"]
    _, fit, _ = run_ganforge("ctgan", source, train, args.epochs, args.batch, 10, args.seed,
                             work, 1)
    run = ganforge.load(work / f"ctgan-{args.seed}")
    print(f"{args.table}: {len(train)} training rows, fit {fit:.0f} s", flush=True)

    draw = tasks_ctgan.CondSampler.draw
    rows = []
    try:
        for bn, cond in MODES:
            if cond == "log":
                tasks_ctgan.CondSampler.draw = (
                    lambda self, n, log, gen=None: draw(self, n, True, gen))
            else:
                tasks_ctgan.CondSampler.draw = draw
            G = copy.deepcopy(run.generator)
            if bn == "train":  # as the package samples: batch statistics of each batch
                G.train()
                G.eval = lambda G=G: G  # generate_table's G.eval() leaves it in train mode
            for d in range(args.draws):
                t0 = time.perf_counter()
                df = tasks_ctgan.generate_table(G, run.transformer, run.config, len(train),
                                                seed=100 + d)
                s = evaluate_table(df[train.columns], train, test, kinds, "target", args.seed)
                share = df["target"].value_counts(normalize=True).round(3).to_dict()
                row = {"bn": bn, "cond": cond, "draw": d, "ml_efficacy": s["ml_efficacy"],
                       "fidelity": s["fidelity"], "corr_diff": s["corr_diff"],
                       "target_share": share, "seconds": time.perf_counter() - t0}
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        tasks_ctgan.CondSampler.draw = draw

    real = train["target"].value_counts(normalize=True).round(3).to_dict()
    print(f"\nreal target shares: {real}\n")
    print("| batch norm | conditions | ML efficacy (draws) | fidelity | corr. diff |")
    print("|---|---|---|---|---|")
    for bn, cond in MODES:
        sel = [r for r in rows if r["bn"] == bn and r["cond"] == cond]
        eff = [r["ml_efficacy"] for r in sel]
        print(f"| {bn} | {cond} | {np.mean(eff):.3f} ({', '.join(f'{e:.3f}' for e in eff)}) "
              f"| {np.mean([r['fidelity'] for r in sel]):.3f} "
              f"| {np.mean([r['corr_diff'] for r in sel]):.3f} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {"table": args.table, "epochs": args.epochs, "batch": args.batch, "seed": args.seed,
             "fit_seconds": fit, "real_target_share": real, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
