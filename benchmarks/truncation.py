"""Truncation vs the precision/recall trade-off on dcgan-mnist.

For each truncation strength PSI and method (scale toward the mean latent, or resample outside
[-PSI, PSI]) draw as many samples as there are real test digits and compute improved precision
and recall (Kynkaanniemi et al. 2019, k = 3) in the MNIST-classifier feature space. Expected:
precision rises and recall falls as PSI goes down.

    python benchmarks/truncation.py --run-dir runs/dcgan-mnist-...      # a trained run
    python benchmarks/truncation.py --train-steps 1500                   # train one first

It needs ``ganforge.metrics.precision_recall(real, fake, k=3, extractor="mnist")`` (the
metrics issue). It prints a table and appends it to benchmarks/RESULTS.md (``--no-write`` to
skip).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

try:
    from ganforge.metrics import precision_recall
except ImportError:  # pragma: no cover - depends on another branch
    sys.exit("benchmarks/truncation.py needs ganforge.metrics.precision_recall(real, fake, k=3, "
             "extractor='mnist'), added by the metrics issue. Merge that branch first.")

import ganforge
from ganforge.data import load_dataset

RESULTS = Path(__file__).with_name("RESULTS.md")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", help="a trained dcgan-mnist run (else train one)")
    ap.add_argument("--train-steps", type=int, default=1500,
                    help="generator steps when training a fresh run (default 1500)")
    ap.add_argument("--psi", default="1.0,0.9,0.8,0.7,0.6,0.5,0.4,0.3,0.2",
                    help="comma-separated truncation strengths")
    ap.add_argument("--methods", default="scale,resample")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.run_dir:
        run = ganforge.load(args.run_dir)
    else:
        t0 = time.perf_counter()
        run = ganforge.train("dcgan-mnist", overrides=[
            "train.epochs=null", f"train.steps={args.train_steps}", "monitor.progress=false"],
            run_dir=Path("runs") / f"bench-truncation-{time.strftime('%Y%m%d-%H%M%S')}")
        print(f"trained {run.run_dir} for {args.train_steps} steps in "
              f"{time.perf_counter() - t0:.0f} s")
    real = load_dataset("mnist", split="test").x
    n = real.shape[0]
    psis = [float(p) for p in args.psi.split(",") if p.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]

    rows = []
    base = precision_recall(real, run.sample(n, seed=args.seed), k=args.k, extractor="mnist")
    rows.append(("none", "-", base["precision"], base["recall"]))
    for method in methods:
        for psi in psis:
            fake = run.sample(n, seed=args.seed, truncation=psi, truncation_method=method)
            pr = precision_recall(real, fake, k=args.k, extractor="mnist")
            rows.append((method, f"{psi:g}", pr["precision"], pr["recall"]))
            print(f"{method:8s} psi {psi:<4g} precision {pr['precision']:.3f} "
                  f"recall {pr['recall']:.3f}", flush=True)

    table = ["| method | psi | precision | recall |", "|---|---|---|---|"]
    table += [f"| {m} | {p} | {pr:.3f} | {rc:.3f} |" for m, p, pr, rc in rows]
    print("\n".join(table))
    if not args.no_write:
        head = (f"\n## Truncation vs precision/recall (dcgan-mnist)\n\n"
                f"{time.strftime('%Y-%m-%d')}, {platform.machine()} CPU, "
                f"{torch.get_num_threads()} thread(s). Run `{run.run_dir}` at step {run.step}; "
                f"{n} samples vs the {n} MNIST test digits, k = {args.k}, MNIST-classifier "
                f"features, sampling seed {args.seed} (same latents for every row before "
                f"truncation). `python benchmarks/truncation.py "
                f"{'--run-dir ' + str(args.run_dir) if args.run_dir else ''}`\n\n")
        with RESULTS.open("a") as f:
            f.write(head + "\n".join(table) + "\n")
        print(f"appended to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
