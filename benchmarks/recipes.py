"""Robustness of the issue-20 recipes: train a preset on several seeds, score it, print mean and
worst seed, write JSON and a picture of the samples (2-D: over the modes; MNIST: a grid).

2-D mixtures (gan-ring8, gan-grid25) are scored with PacGAN's protocol (below); MNIST presets
(dcgan-mnist, ...) as ``ganforge evaluate RUN --metrics fid,pr,modes --extractor mnist --n 5000``
does: FID, precision / recall (k = 5) and the class histogram (classes covered, KL to uniform)
of 5,000 samples against the 4,000 train digits, features of the bundled MNIST classifier.

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

from common import last_train_record, parse_seeds

# Targets of issue #20 (every seed): modes, high-quality share, reverse KL, minutes of training
TARGETS = {"ring8": (8, 0.90, 0.05, 2.0), "grid25": (25, 0.95, 0.05, 10.0)}
# ... and of the MNIST demo: FID, precision, recall, classes, class-histogram KL, minutes
MNIST_TARGET = {"fid": 2.0, "precision": 0.80, "recall": 0.75, "modes": 10, "modes_kl": 0.02,
                "minutes": 10.0}


def train_and_score(preset: str, seed: int, overrides: list[str], run_dir: Path,
                    n: int = 2500, sample_seed: int = 0,
                    filter_quantiles: tuple[float, ...] = ()) -> dict[str, Any]:
    """Train ``preset`` with ``seed``, sample ``n`` points as the CLI does, score them; 2-D
    runs also score the same run's samples under ``sampling.rejection: filter`` at each of
    ``filter_quantiles`` (no retraining: the trade-off of the filter's quantile)."""
    import ganforge
    from ganforge.data.registry import MIXTURE_STD, mixture_means
    from ganforge.metrics import mode_coverage

    t0 = time.perf_counter()
    ganforge.train(preset, overrides=[f"seed={seed}", "monitor.progress=false", *overrides],
                   run_dir=run_dir)
    total = time.perf_counter() - t0
    train_s = last_train_record(run_dir)["time"]
    run = ganforge.load(run_dir)
    data = run.config.data.source
    if data == "mnist":
        from ganforge.evaluate import evaluate_run

        scores = evaluate_run(run_dir, metrics=["fid", "pr", "modes"], extractor="mnist",
                              n=5000, seed=sample_seed, log=False, run=run)
        x = run.sample(64, seed=sample_seed)
        return {"preset": preset, "data": data, "seed": seed, "overrides": overrides,
                "steps": run.step, "train_s": train_s, "total_s": total,
                **{k: scores[k] for k in ("fid", "precision", "recall", "modes", "modes_kl")},
                "samples": x.numpy().tolist()}
    x = run.sample(n, seed=sample_seed)
    cov = mode_coverage(x, mixture_means(data), MIXTURE_STD[data])
    by_quantile = {}
    for q in filter_quantiles:  # 0: no rejection
        if q > 0:
            run.config.sampling.quantile = q
        xq = run.sample(n, seed=sample_seed, rejection="filter" if q > 0 else "none")
        c = mode_coverage(xq, mixture_means(data), MIXTURE_STD[data])
        by_quantile[str(q)] = {"modes": c.modes, "high_quality": c.high_quality,
                               "reverse_kl": c.reverse_kl}
    return {"preset": preset, "data": data, "seed": seed, "overrides": overrides,
            "steps": run.step, "modes": cov.modes, "total_modes": cov.total_modes,
            "high_quality": cov.high_quality, "reverse_kl": cov.reverse_kl,
            "counts": cov.counts, "train_s": train_s, "total_s": total,
            "filter_quantiles": by_quantile, "samples": x.numpy().tolist()}


def meets_mnist(r: dict[str, Any]) -> bool:
    t = MNIST_TARGET
    return (r["fid"] <= t["fid"] and r["precision"] >= t["precision"]
            and r["recall"] >= t["recall"] and r["modes"] >= t["modes"]
            and r["modes_kl"] <= t["modes_kl"] and r["train_s"] <= 60 * t["minutes"])


def meets(r: dict[str, Any]) -> bool:
    if r["data"] == "mnist":
        return meets_mnist(r)
    modes, hq, kl, minutes = TARGETS[r["data"]]
    return (r["modes"] >= modes and r["high_quality"] >= hq and r["reverse_kl"] <= kl
            and r["train_s"] <= 60 * minutes)


MNIST_KEYS = {"fid": max, "precision": min, "recall": min, "modes": min, "modes_kl": max,
              "train_s": max}  # score -> which seed is the worst one


def summary_mnist(results: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"seeds": [r["seed"] for r in results]}
    for key, worst in MNIST_KEYS.items():
        out[f"{key}_mean"] = statistics.fmean(r[key] for r in results)
        out[f"{key}_worst"] = worst(r[key] for r in results)
    out["all_meet_target"] = all(meets(r) for r in results)
    return out


def table_mnist(label: str, s: dict[str, Any]) -> str:
    t = MNIST_TARGET
    cells = " | ".join(f"{s[f'{k}_mean']:.{d}f} / {s[f'{k}_worst']:.{d}f}" for k, d in
                       (("fid", 2), ("precision", 3), ("recall", 3), ("modes", 1),
                        ("modes_kl", 3), ("train_s", 0)))
    return "\n".join([
        ("| preset | seeds | FID mean / worst | precision | recall | classes | class KL | "
         "train s | every seed on target |"),
        "|---|---|---|---|---|---|---|---|---|",
        f"| {label} | {len(s['seeds'])} | {cells} | {'yes' if s['all_meet_target'] else 'no'} |",
        (f"| target | every seed | <= {t['fid']} | >= {t['precision']} | >= {t['recall']} | "
         f"{t['modes']} | <= {t['modes_kl']} | <= {60 * t['minutes']:.0f} | |")])


def picture_mnist(results: list[dict[str, Any]], out: Path, title: str) -> Path:
    """One 8x8 grid of samples per seed (sampling seed 0, as ``ganforge sample`` gives)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(results), figsize=(2.4 * len(results), 2.7), squeeze=False)
    for ax, r in zip(axes[0], results, strict=True):
        x = (np.asarray(r["samples"])[:64, 0] + 1) / 2  # (64, 28, 28) in [0, 1]
        grid = x.reshape(8, 8, 28, 28).transpose(0, 2, 1, 3).reshape(8 * 28, 8 * 28)
        ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
        ax.set_axis_off()
        ax.set_title(f"seed {r['seed']}: FID {r['fid']:.2f}", fontsize=7)
    fig.suptitle(f"{title}: 64 samples per seed", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


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
    ap.add_argument("--filter-quantiles", default="", metavar="Q,Q",
                    help="2-D: also score each run with sampling.rejection=filter at these "
                         "quantiles (0 = no rejection), e.g. 0,0.1,0.15,0.2")
    args = ap.parse_args()
    quantiles = tuple(float(q) for q in args.filter_quantiles.split(",") if q)
    label = args.label or args.preset
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    results = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in parse_seeds(args.seeds):
            r = train_and_score(args.preset, seed, args.overrides, Path(tmp) / f"s{seed}",
                                filter_quantiles=quantiles)
            results.append(r)
            if r["data"] == "mnist":
                scores = (f"FID {r['fid']:.2f}, precision {r['precision']:.3f}, recall "
                          f"{r['recall']:.3f}, {r['modes']}/10 classes, class KL "
                          f"{r['modes_kl']:.3f}")
            else:
                scores = (f"{r['modes']}/{r['total_modes']} modes, {100 * r['high_quality']:.1f}"
                          f"% HQ, reverse KL {r['reverse_kl']:.3f}")
            print(f"{label} seed {seed}: {scores}, train {r['train_s']:.0f} s ({r['steps']} "
                  f"steps){'' if meets(r) else '  MISS'}", flush=True)
            for q, c in r.get("filter_quantiles", {}).items():
                print(f"    filter quantile {q}: {c['modes']} modes, "
                      f"{100 * c['high_quality']:.1f}% HQ, reverse KL {c['reverse_kl']:.3f}",
                      flush=True)
    wall = time.perf_counter() - t0
    mnist = results[0]["data"] == "mnist"
    s = summary_mnist(results) if mnist else summary(results)
    print()
    print(table_mnist(label, s) if mnist else table(label, s, results[0]["total_modes"]))
    print(f"\nwall {wall / 60:.1f} min; load average at end "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.picture:
        draw = picture_mnist if mnist else picture
        print(f"picture: {draw(results, Path(args.picture), label)}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {"label": label, "preset": args.preset, "overrides": args.overrides,
             "load_average_start": load, "wall_s": wall, "summary": s,
             "runs": [{k: v for k, v in r.items() if k != "samples"} for r in results]},
            indent=1))


if __name__ == "__main__":
    main()
