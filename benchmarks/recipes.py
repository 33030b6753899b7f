"""Robustness of the 2-D mixture recipes: train a preset on several seeds, score with PacGAN's
protocol, print mean and worst seed, write JSON and a picture of the samples over the modes.

Each run trains the preset at its default budget (``--set`` overrides apply to every seed),
then loads the run from its last checkpoint as ``ganforge sample RUN -n 2500`` does (EMA
weights when ``objective.ema`` is set, G in eval mode) and scores the 2,500 samples with
``ganforge.metrics.mode_coverage``: a sample is high quality within 3 std of its nearest mode,
a mode is covered when it holds one high-quality sample, reverse KL = KL(histogram of the
high-quality samples over the modes || uniform). Training time is the trainer's own clock
(the ``time`` of the last metric-log line): training only, no start-up or scoring.

Run it alone on the machine (it is timed), e.g. through the machine-wide queue:

    heavy --threads 1 python benchmarks/recipes.py gan-ring8 --seeds 0-4 \\
        --json benchmarks/results/recipes/gan-ring8.json \\
        --picture benchmarks/results/recipes/gan-ring8.png
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

# Targets of issue #20 (every seed): modes, high-quality share, reverse KL, minutes of training
TARGETS = {"ring8": (8, 0.90, 0.05, 2.0), "grid25": (25, 0.95, 0.05, 10.0)}


def parse_seeds(text: str) -> list[int]:
    """``0-4`` or ``0,3,7``."""
    if "-" in text:
        lo, hi = text.split("-", 1)
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",") if s]


def train_and_score(preset: str, seed: int, overrides: list[str], run_dir: Path,
                    n: int = 2500, sample_seed: int = 0) -> dict[str, Any]:
    """Train ``preset`` with ``seed``, sample ``n`` points as the CLI does, score them."""
    import ganforge
    from ganforge.data.registry import MIXTURE_STD, mixture_means
    from ganforge.metrics import mode_coverage

    t0 = time.perf_counter()
    ganforge.train(preset, overrides=[f"seed={seed}", "monitor.progress=false", *overrides],
                   run_dir=run_dir)
    total = time.perf_counter() - t0
    run = ganforge.load(run_dir)
    x = run.sample(n, seed=sample_seed)
    data = run.config.data.source
    cov = mode_coverage(x, mixture_means(data), MIXTURE_STD[data])
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_s = max(r["time"] for r in records if r.get("kind") == "train")
    return {"preset": preset, "data": data, "seed": seed, "overrides": overrides,
            "steps": run.step, "modes": cov.modes, "total_modes": cov.total_modes,
            "high_quality": cov.high_quality, "reverse_kl": cov.reverse_kl,
            "counts": cov.counts, "train_s": train_s, "total_s": total,
            "samples": x.numpy().tolist()}


def meets(r: dict[str, Any]) -> bool:
    modes, hq, kl, minutes = TARGETS[r["data"]]
    return (r["modes"] >= modes and r["high_quality"] >= hq and r["reverse_kl"] <= kl
            and r["train_s"] <= 60 * minutes)


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and worst seed (fewest modes, lowest HQ share, highest KL, longest run)."""
    kl = [r["reverse_kl"] for r in results]
    return {
        "seeds": [r["seed"] for r in results],
        "modes_mean": statistics.fmean(r["modes"] for r in results),
        "modes_worst": min(r["modes"] for r in results),
        "hq_mean": statistics.fmean(r["high_quality"] for r in results),
        "hq_worst": min(r["high_quality"] for r in results),
        "kl_mean": statistics.fmean(kl) if all(map(math.isfinite, kl)) else math.inf,
        "kl_worst": max(kl),
        "train_s_mean": statistics.fmean(r["train_s"] for r in results),
        "train_s_worst": max(r["train_s"] for r in results),
        "all_meet_target": all(meets(r) for r in results),
    }


def table(label: str, s: dict[str, Any], total_modes: int) -> str:
    return "\n".join([
        ("| preset | seeds | modes mean / worst | % HQ mean / worst | reverse KL mean / worst | "
        "train s mean / worst | every seed on target |"),
        "|---|---|---|---|---|---|---|",
        (f"| {label} | {len(s['seeds'])} | {s['modes_mean']:.1f} / {s['modes_worst']} of "
        f"{total_modes} | {100 * s['hq_mean']:.1f} / {100 * s['hq_worst']:.1f} | "
        f"{s['kl_mean']:.3f} / {s['kl_worst']:.3f} | {s['train_s_mean']:.0f} / "
        f"{s['train_s_worst']:.0f} | {'yes' if s['all_meet_target'] else 'no'} |")])


def picture(results: list[dict[str, Any]], out: Path, title: str) -> Path:
    """One panel per seed: the samples (dots) over the real modes (circles of 3 std)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ganforge.data.registry import MIXTURE_STD, mixture_means

    data = results[0]["data"]
    means, std = mixture_means(data), MIXTURE_STD[data]
    lim = 1.5 if data == "ring8" else 5.0
    fig, axes = plt.subplots(1, len(results), figsize=(2.3 * len(results), 2.6), squeeze=False)
    for ax, r in zip(axes[0], results, strict=True):
        x = np.asarray(r["samples"])
        ax.scatter(x[:, 0], x[:, 1], s=1, c="tab:blue", alpha=0.4, linewidths=0)
        for m in means:
            ax.add_patch(plt.Circle(m, 3 * std, fill=False, color="tab:red", lw=0.6))
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
        ax.set_title(f"seed {r['seed']}: {r['modes']}/{r['total_modes']}, "
                     f"{100 * r['high_quality']:.0f}% HQ", fontsize=7)
    fig.suptitle(f"{title}: 2,500 samples (blue), modes with 3-std circles (red)", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("preset")
    ap.add_argument("--seeds", default="0-4", help="e.g. 0-4 or 0,2")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--label", help="name in the table (default: the preset)")
    ap.add_argument("--json", help="write every run's numbers (and samples) here")
    ap.add_argument("--picture", help="write the samples of every seed here (.png)")
    args = ap.parse_args()
    label = args.label or args.preset
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    results = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in parse_seeds(args.seeds):
            r = train_and_score(args.preset, seed, args.overrides, Path(tmp) / f"s{seed}")
            results.append(r)
            print(f"{label} seed {seed}: {r['modes']}/{r['total_modes']} modes, "
                  f"{100 * r['high_quality']:.1f}% HQ, reverse KL {r['reverse_kl']:.3f}, "
                  f"train {r['train_s']:.0f} s ({r['steps']} steps){'' if meets(r) else '  MISS'}",
                  flush=True)
    wall = time.perf_counter() - t0
    s = summary(results)
    print()
    print(table(label, s, results[0]["total_modes"]))
    print(f"\nwall {wall / 60:.1f} min; load average at end "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.picture:
        print(f"picture: {picture(results, Path(args.picture), label)}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {"label": label, "preset": args.preset, "overrides": args.overrides,
             "load_average_start": load, "wall_s": wall, "summary": s,
             "runs": [{k: v for k, v in r.items() if k != "samples"} for r in results]},
            indent=1))


if __name__ == "__main__":
    main()
