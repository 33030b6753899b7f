"""Truncation vs the precision/recall trade-off, on dcgan-mnist and on gan-ring8.

For each truncation strength PSI and method (scale toward the mean latent, or resample outside
[-PSI, PSI]) the same latents are truncated and decoded. Expected: precision-like scores rise
and recall-like scores fall as PSI goes down.

- ``--preset dcgan-mnist`` (default): as many samples as there are real MNIST test digits,
  improved precision and recall (Kynkaenniemi et al. 2019, k = 3) in the MNIST-classifier
  feature space, with ``ganforge.metrics.precision_recall(real, fake, k=3, extractor="mnist")``.
- ``--preset gan-ring8``: PacGAN's protocol on 2,500 samples (``ganforge.metrics.mode_coverage``):
  share of high-quality samples (within 3 std of a mode: precision) and modes covered and
  reverse KL (recall), available on every branch.

    python benchmarks/truncation.py --run-dir runs/dcgan-mnist-...      # a trained run
    python benchmarks/truncation.py --train-steps 1500                   # train one first
    python benchmarks/truncation.py --preset gan-ring8                   # trains 3,000 steps

It prints a table and appends it to benchmarks/RESULTS.md (``--no-write`` to skip).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

import ganforge
from ganforge.data import load_dataset

RESULTS = Path(__file__).with_name("RESULTS.md")


def mnist_scorer(k: int) -> tuple[Any, list[str], str]:
    """Score fakes by precision/recall against the MNIST test digits."""
    try:
        from ganforge.metrics import precision_recall
    except ImportError:
        raise SystemExit("the dcgan-mnist part needs ganforge.metrics.precision_recall(real, "
                         "fake, k=3, extractor='mnist'), added by the metrics issue. Merge "
                         "that branch first, or run --preset gan-ring8.") from None
    real = load_dataset("mnist", split="test").x

    def score(fake: torch.Tensor) -> list[float]:
        pr = precision_recall(real, fake, k=k, extractor="mnist")
        return [pr["precision"], pr["recall"]]

    proto = (f"{real.shape[0]} samples vs the {real.shape[0]} MNIST test digits, k = {k}, "
             f"MNIST-classifier features")
    return (score, real.shape[0]), ["precision", "recall"], proto


def ring_scorer() -> tuple[Any, list[str], str]:
    """PacGAN's mode-coverage protocol on 2,500 samples."""
    from ganforge.data.registry import MIXTURE_STD, mixture_means
    from ganforge.metrics.modes import mode_coverage

    means, std = mixture_means("ring8"), MIXTURE_STD["ring8"]

    mu = torch.as_tensor(means, dtype=torch.float64)

    def score(fake: torch.Tensor) -> list[float]:
        m = mode_coverage(fake, means, std)
        dist, nearest = torch.cdist(fake.double(), mu).min(dim=1)
        return [m.high_quality, float(m.modes), m.reverse_kl, float(dist.median() / std),
                float(nearest.unique().numel())]

    proto = ("2,500 samples; high quality = within 3 std of the nearest mode (PacGAN); also "
             "the median distance to the nearest mode in std units (lower = more precise) and "
             "how many modes are nearest to some sample at any distance (recall-like)")
    return (score, 2500), ["high-quality share", "modes (of 8)", "reverse KL",
                           "median dist / std", "modes nearest"], proto


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=("dcgan-mnist", "gan-ring8"), default="dcgan-mnist")
    ap.add_argument("--run-dir", help="a trained run of that preset (else train one)")
    ap.add_argument("--train-steps", type=int, default=None,
                    help="generator steps when training a fresh run (default: 1500 for "
                         "dcgan-mnist, the preset's 3000 for gan-ring8)")
    ap.add_argument("--psi", default="1.0,0.9,0.8,0.7,0.6,0.5,0.4,0.3,0.2,0.1,0.0",
                    help="comma-separated truncation strengths")
    ap.add_argument("--methods", default="scale,resample")
    ap.add_argument("--k", type=int, default=3, help="k of precision/recall (dcgan-mnist)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.preset == "dcgan-mnist":
        (score, n), names, proto = mnist_scorer(args.k)  # fail early without the metric
    else:
        (score, n), names, proto = ring_scorer()
    trained = ""
    if args.run_dir:
        run = ganforge.load(args.run_dir)
    else:
        steps = args.train_steps or (1500 if args.preset == "dcgan-mnist" else 3000)
        t0 = time.perf_counter()
        run = ganforge.train(args.preset, overrides=[
            "train.epochs=null", f"train.steps={steps}", "monitor.progress=false"],
            run_dir=Path("runs") / f"bench-truncation-{args.preset}-"
                                   f"{time.strftime('%Y%m%d-%H%M%S')}")
        trained = f" (trained here: {time.perf_counter() - t0:.0f} s)"
        print(f"trained {run.run_dir} for {steps} steps{trained}")
    psis = [float(p) for p in args.psi.split(",") if p.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]

    rows = [("none", "-", score(run.sample(n, seed=args.seed)))]
    for method in methods:
        for psi in psis:
            fake = run.sample(n, seed=args.seed, truncation=psi, truncation_method=method)
            rows.append((method, f"{psi:g}", score(fake)))
            print(f"{method:8s} psi {psi:<4g} " + ", ".join(
                f"{k} {v:.3f}" for k, v in zip(names, rows[-1][2], strict=True)), flush=True)

    table = ["| method | psi | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    table += [f"| {m} | {p} | " + " | ".join(f"{v:.3f}" for v in vals) + " |"
              for m, p, vals in rows]
    print("\n".join(table))
    if not args.no_write:
        cmd = f"python benchmarks/truncation.py --preset {args.preset}" + (
            f" --run-dir {args.run_dir}" if args.run_dir else "")
        head = (f"\n## Truncation trade-off ({args.preset})\n\n"
                f"{time.strftime('%Y-%m-%d')}, {platform.machine()} CPU "
                f"({os.cpu_count()} cores), "
                f"{torch.get_num_threads()} thread(s). Run `{run.run_dir}` at step "
                f"{run.step}{trained}; {proto}; sampling seed {args.seed} (the same latents "
                f"in every row before truncation). `{cmd}`\n\n")
        with RESULTS.open("a") as f:
            f.write(head + "\n".join(table) + "\n")
        print(f"appended to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
