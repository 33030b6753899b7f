"""Mode-collapse benchmark with PacGAN's protocol (Lin et al. 2018) on ring8 and grid25.

Every setting trains the PacGAN 2-D networks (``pacgan-grid25-paper`` with packing 1: G 4x400
BN+ReLU, D 3x200 maxout with 5 pieces, z 2-d N(0, I), batch 100, Adam lr 1e-4 beta1 0.8) with
one objective switch changed, on several seeds, then scores 2,500 samples with ``ganforge.metrics.mode_coverage``:
a sample is high quality within 3 std of its nearest mode, a mode is covered when it holds at
least one high-quality sample, reverse KL = KL(mode histogram of high-quality samples ||
uniform). It prints mean +- standard error beside the published PacGAN Table 1 rows.

PacGAN trains 400 epochs (400,000 steps). That is hours per run on a 2-core CPU, so the
default budget here is far shorter (``--steps``); the table says which budget it used.

    python benchmarks/mode_collapse.py --steps 3000 --seeds 3 --workers 2
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

# PacGAN Table 1 (10 trials, mean +- s.e.): modes, % high quality, reverse KL
PUBLISHED = {
    ("ring8", "gan"): "6.3±0.5 / 98.2±0.2 / 0.45±0.09",
    ("ring8", "pacgan2"): "7.9±0.1 / 95.6±2.0 / 0.07±0.03",
    ("ring8", "pacgan3"): "7.8±0.1 / 97.7±0.3 / 0.10±0.02",
    ("ring8", "pacgan4"): "7.8±0.1 / 95.9±1.4 / 0.07±0.02",
    ("grid25", "gan"): "17.3±0.8 / 94.8±0.7 / 0.70±0.07",
    ("grid25", "pacgan2"): "23.8±0.7 / 91.3±0.8 / 0.13±0.04",
    ("grid25", "pacgan3"): "24.6±0.4 / 94.2±0.4 / 0.06±0.02",
    ("grid25", "pacgan4"): "24.8±0.2 / 93.6±0.6 / 0.04±0.01",
}

PRESET = "pacgan-grid25-paper"  # PacGAN's exact networks, optimizer and data
MAXOUT = {"maxout": {"units": 200, "pieces": 5}}
MBD_D = [MAXOUT, MAXOUT, MAXOUT, {"minibatch_discrimination": {"kernels": 100, "dim": 5}},
         {"dense": {"units": 1}}]
LN_D = [MAXOUT, "layer_norm", MAXOUT, "layer_norm", MAXOUT, {"dense": {"units": 1}}]

# name -> overrides of the pacgan-grid25-paper preset with packing 1 (values are YAML, as with
# --set)
SETTINGS: dict[str, list[str]] = {
    "gan": [],
    "pacgan2": ["objective.packing=2"],
    "pacgan3": ["objective.packing=3"],
    "pacgan4": ["objective.packing=4"],
    "minibatch_disc": [f"discriminator.layers={json.dumps(MBD_D)}"],
    "wgan_gp": ["objective.loss=wgan_gp", "train.d_steps=5",
                "optim.d.betas=[0.0, 0.9]", "optim.g.betas=[0.0, 0.9]"],
    "spectral_norm": ["discriminator.spectral_norm=true"],
    "pacgan4+sn": ["objective.packing=4", "discriminator.spectral_norm=true"],
    "pacgan4+ema": ["objective.packing=4", "objective.ema=0.999"],
}
DEFAULT_GRID = ["gan", "pacgan2", "pacgan3", "pacgan4", "minibatch_disc", "wgan_gp",
                "spectral_norm", "pacgan4+sn"]
DEFAULT_RING = ["gan", "pacgan2"]


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    import ganforge
    from ganforge.metrics import mode_coverage

    overrides = [f"data.source={job['data']}", "train.epochs=null",
                 f"train.steps={job['steps']}", f"seed={job['seed']}", "monitor.progress=false",
                 f"monitor.log_every={job['steps']}", f"monitor.sample_every={job['steps']}",
                 f"train.checkpoint_every={job['steps']}", f"name={job['setting']}",
                 "device=cpu", "objective.packing=1", *job["lr"], *SETTINGS[job["setting"]]]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        run = ganforge.train(PRESET, overrides=overrides, run_dir=Path(d) / "run")
        x = run.sample(2500, seed=1000 + job["seed"])
    from ganforge.data.registry import MIXTURE_STD, mixture_means

    cov = mode_coverage(x, mixture_means(job["data"]), MIXTURE_STD[job["data"]])
    return {**job, "modes": cov.modes, "high_quality": cov.high_quality,
            "reverse_kl": cov.reverse_kl, "seconds": time.perf_counter() - t0}


def mean_se(values: list[float]) -> str:
    vals = [v for v in values if math.isfinite(v)]
    if not vals:
        return "inf"
    m = statistics.fmean(vals)
    se = statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else 0.0
    inf = len(values) - len(vals)
    return f"{m:.2f}±{se:.2f}" + (f" ({inf} inf)" if inf else "")


def table(results: list[dict[str, Any]]) -> str:
    head = ("| data | setting | seeds | modes | % high quality | reverse KL | all modes | "
            "PacGAN Table 1 (modes / % HQ / KL) | s/run |")
    rows = [head,
            "|---|---|---|---|---|---|---|---|---|"]
    keys = list(dict.fromkeys((r["data"], r["setting"]) for r in results))
    for data, setting in keys:
        rs = [r for r in results if (r["data"], r["setting"]) == (data, setting)]
        k = 25 if data == "grid25" else 8
        full = sum(r["modes"] == k for r in rs)
        modes = mean_se([r["modes"] for r in rs])
        hq = mean_se([100 * r["high_quality"] for r in rs])
        kl = mean_se([r["reverse_kl"] for r in rs])
        secs = statistics.fmean(r["seconds"] for r in rs)
        rows.append(f"| {data} | {setting} | {len(rs)} | {modes} | {hq} | {kl} | "
                    f"{full}/{len(rs)} | {PUBLISHED.get((data, setting), '')} | {secs:.0f} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000, help="generator steps per run")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="runs in parallel (1 thread each)")
    ap.add_argument("--lr", type=float, default=1e-4, help="Adam lr of G and D (PacGAN: 1e-4)")
    ap.add_argument("--grid", default=",".join(DEFAULT_GRID), help="grid25 settings")
    ap.add_argument("--ring", default=",".join(DEFAULT_RING), help="ring8 settings ('' = none)")
    ap.add_argument("--json", help="also write every run's numbers to this file")
    args = ap.parse_args()
    lr = [f"optim.g.lr={args.lr}", f"optim.d.lr={args.lr}"]
    jobs = [{"data": data, "setting": s, "seed": seed, "steps": args.steps, "lr": lr}
            for data, names in (("grid25", args.grid), ("ring8", args.ring))
            for s in [n for n in names.split(",") if n] for seed in range(args.seeds)]
    unknown = sorted({j["setting"] for j in jobs} - set(SETTINGS))
    if unknown:
        raise SystemExit(f"unknown settings {unknown}; known: {', '.join(SETTINGS)}")
    t0 = time.perf_counter()
    results = []
    with ProcessPoolExecutor(args.workers) as pool:
        for r in pool.map(run_one, jobs):
            results.append(r)
            print(f"{r['data']:6s} {r['setting']:15s} seed {r['seed']}: {r['modes']:2d} modes, "
                  f"{100 * r['high_quality']:5.1f}% HQ, KL {r['reverse_kl']:.3f} "
                  f"({r['seconds']:.0f} s)", flush=True)
    wall = time.perf_counter() - t0
    print()
    print(f"budget: {args.steps} G steps per run (PacGAN: 400 epochs = 400,000), batch 100, "
          f"Adam lr {args.lr}, {args.seeds} seeds, 2,500 samples scored; wall {wall / 60:.1f} min "
          f"with {args.workers} workers")
    print()
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
