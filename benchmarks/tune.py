"""Does ``ganforge tune`` find better settings than the preset's, and what does pruning save?

On ``gan-grid25`` (PacGAN's 2-D networks, 25 Gaussians) with a budget of ``--steps`` generator
updates per run and an evaluation every ``--eval-every`` steps (``--n`` samples, PacGAN's mode
metrics), it runs:

1. the preset's defaults once (the baseline);
2. a study of ``--trials`` trials without pruning;
3. the same study (same sampler seed, same space) with the median pruner;
4. the pruned study's best.yaml re-trained (same seed: the same score).

and prints one table: best score, trials completed / pruned, steps trained in total and wall
time. The space searches both learning rates, the loss, R1 (hinge only), packing and the batch
size.

    python benchmarks/tune.py --trials 30 --steps 3000 --eval-every 500      # the stated size
    python benchmarks/tune.py --small                                         # 6 x 300 steps
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import yaml

from ganforge import api
from ganforge import tune as T
from ganforge.monitor.log import read_log

SPACE = {
    "optim.g.lr": {"loguniform": [3.0e-5, 3.0e-3]},
    "optim.d.lr": {"loguniform": [3.0e-5, 3.0e-3]},
    "objective.loss": {"choice": ["non_saturating", "hinge", "least_squares"]},
    "objective.r1": {"uniform": [0.0, 1.0], "when": {"objective.loss": "hinge"}},
    "objective.packing": {"choice": [1, 2, 4]},
    "train.batch_size": {"choice": [64, 100, 256]},
}


def steps_trained(study_dir: Path) -> int:
    total = 0
    for log in (study_dir / "trials").glob("*/metrics.jsonl"):
        steps = [r["step"] for r in read_log(log) if r.get("kind") == "train"]
        total += max(steps, default=0)
    return total


def run_study(base: list[str], study_dir: Path, args: argparse.Namespace, pruner: str
              ) -> dict[str, object]:
    t0 = time.perf_counter()
    out = io.StringIO()
    res = T.tune("gan-grid25", SPACE, trials=args.trials, metric=args.metric, overrides=base,
                 study_dir=study_dir, pruner=pruner, out=out)
    print(out.getvalue())
    return {"best": res.best_value, "complete": res.counts["complete"],
            "pruned": res.counts["pruned"], "failed": res.counts["fail"],
            "steps": steps_trained(study_dir), "seconds": time.perf_counter() - t0,
            "best_yaml": res.best_yaml}


def final_score(run_dir: Path, metric: str) -> float:
    evals = [r for r in read_log(run_dir / "metrics.jsonl") if r.get("kind") == "eval"]
    return float(evals[-1][metric])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--n", type=int, default=1000, help="samples per evaluation")
    ap.add_argument("--metric", default="high_quality")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--small", action="store_true", help="6 trials x 300 steps (a smoke run)")
    ap.add_argument("--out", default=None, help="keep the studies here (default: a temp dir)")
    args = ap.parse_args()
    if args.small:
        args.trials, args.steps, args.eval_every, args.n = 6, 300, 60, 500
    torch.set_num_threads(args.threads)
    base = [f"train.steps={args.steps}", "train.epochs=null",
            f"monitor.eval_every={args.eval_every}", f"monitor.eval_n={args.n}",
            "monitor.eval_metrics=[modes]", f"monitor.log_every={args.eval_every}",
            f"monitor.sample_every={args.steps}", "monitor.grid_size=500",
            f"train.checkpoint_every={args.steps}"]
    root = Path(args.out or tempfile.mkdtemp(prefix="bench-tune-"))
    quiet = ["monitor.progress=false", "monitor.report=false", "monitor.tensorboard=false"]
    rows = []
    t0 = time.perf_counter()
    api.train("gan-grid25", overrides=[*base, *quiet], run_dir=root / "defaults")
    rows.append(("preset defaults", {"best": final_score(root / "defaults", args.metric),
                                     "complete": 1, "pruned": 0, "failed": 0,
                                     "steps": args.steps,
                                     "seconds": time.perf_counter() - t0}))
    rows.append(("tune, no pruning", run_study(base, root / "nopruning", args, "none")))
    pruned = run_study(base, root / "median", args, "median")
    rows.append(("tune, median pruner", pruned))
    if pruned["best_yaml"] is not None:
        t0 = time.perf_counter()
        api.train(str(pruned["best_yaml"]), overrides=quiet, run_dir=root / "best-again")
        rows.append(("best.yaml re-trained", {"best": final_score(root / "best-again",
                                                                  args.metric),
                                              "complete": 1, "pruned": 0, "failed": 0,
                                              "steps": args.steps,
                                              "seconds": time.perf_counter() - t0}))
    load = os.getloadavg()
    print(f"gan-grid25, {args.trials} trials x {args.steps} steps, eval every {args.eval_every} "
          f"({args.n} samples), metric {args.metric}; {platform.machine()} "
          f"{os.cpu_count()} cores, {args.threads} thread(s), torch {torch.__version__}; load "
          f"average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; studies in {root}\n")
    print(f"| setting | best {args.metric} | trials complete | pruned | failed | steps trained "
          f"| wall s |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows:
        best = "-" if r["best"] is None else f"{r['best']:.4f}"
        print(f"| {name} | {best} | {r['complete']} | {r['pruned']} | {r['failed']} | "
              f"{r['steps']} | {r['seconds']:.1f} |")
    if pruned["best_yaml"] is not None:
        print("\nbest.yaml (pruned study):\n" + yaml.safe_dump(
            {k: v for k, v in yaml.safe_load(Path(pruned["best_yaml"]).read_text()).items()
             if k in ("objective", "optim", "train")}, sort_keys=False))


if __name__ == "__main__":
    main()
