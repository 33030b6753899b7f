"""Does bf16 autocast cost quality? dcgan-mnist trained in fp32 and in bf16, several seeds each.

Same preset, same step budget, same seeds; each run is scored with the `mnist` extractor (FID
and KID against the MNIST test digits, 1,000 generated samples unless --n) and its wall time
is recorded. bf16 "agrees" when the fp32-vs-bf16 gap of the mean FID is within the seed-to-seed
spread (the largest pairwise FID difference between seeds of one precision).

    python benchmarks/precision_quality.py                        # 2 seeds, 600 steps, batch 64
    python benchmarks/precision_quality.py --seeds 0 1 2 --steps 1000

Prints a table and appends it to benchmarks/RESULTS.md (--no-write to skip).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).with_name("RESULTS.md")


def train_and_score(precision: str, seed: int, steps: int, batch: int, n: int,
                    root: Path) -> dict[str, float]:
    import ganforge
    from ganforge.evaluate import evaluate_run

    run_dir = root / f"{precision}-s{seed}"
    t0 = time.perf_counter()
    ganforge.train("dcgan-mnist", run_dir=run_dir, overrides=[
        f"seed={seed}", f"train.precision={precision}", "train.epochs=null",
        f"train.steps={steps}", f"train.batch_size={batch}", "monitor.progress=false",
        f"monitor.sample_every={steps}", f"train.checkpoint_every={steps}", "device=cpu"])
    seconds = time.perf_counter() - t0
    res = evaluate_run(run_dir, metrics="fid,kid", extractor="mnist", n=n, seed=0,
                       real_split="test", log=False)
    return {"fid": float(res["fid"]), "kid": float(res["kid"]), "train_s": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--n", type=int, default=1000, help="generated samples scored per run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows: dict[str, list[dict[str, float]]] = {"fp32": [], "bf16": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:  # interleaved so machine load hits both precisions alike
            for precision, runs in rows.items():
                r = train_and_score(precision, seed, args.steps, args.batch, args.n, Path(tmp))
                runs.append(r)
                print(f"{precision} seed {seed}: FID {r['fid']:.2f}  KID {r['kid']:.4f}  "
                      f"train {r['train_s']:.0f} s", flush=True)
    table = [("| precision | FID per seed | mean FID | seed spread (max-min) | mean KID | "
             "mean train s |"), "|---|---|---|---|---|---|"]
    means = {}
    for precision, rs in rows.items():
        fids = np.array([r["fid"] for r in rs])
        means[precision] = fids.mean()
        table.append(f"| {precision} | {' / '.join(f'{f:.2f}' for f in fids)} | {fids.mean():.2f} "
                     f"| {fids.max() - fids.min():.2f} | "
                     f"{np.mean([r['kid'] for r in rs]):.4f} | "
                     f"{np.mean([r['train_s'] for r in rs]):.0f} |")
    spread = max(np.ptp([r["fid"] for r in rs]) for rs in rows.values())
    gap = abs(means["bf16"] - means["fp32"])
    verdict = (f"|mean FID gap| = {gap:.2f}, largest seed spread = {spread:.2f}: bf16 "
               + ("agrees with fp32 within seed-to-seed spread" if gap <= spread
                  else "does NOT agree with fp32 within seed-to-seed spread"))
    head = (f"dcgan-mnist, {args.steps} steps at batch {args.batch}, seeds "
            f"{', '.join(map(str, args.seeds))}; FID/KID with the `mnist` extractor, {args.n} "
            f"samples vs the MNIST test digits; {args.threads} threads")
    print(head)
    print("\n".join(table))
    print(verdict)
    if not args.no_write:
        with open(RESULTS, "a") as f:
            f.write(f"\n## bf16 vs fp32 quality ({time.strftime('%Y-%m-%d')}, "
                    f"{platform.machine()}, {os.cpu_count()} cores)\n\n{head}. "
                    f"`python benchmarks/precision_quality.py "
                    f"--seeds {' '.join(map(str, args.seeds))} --steps {args.steps}`\n\n"
                    + "\n".join(table) + f"\n\n{verdict}.\n")


if __name__ == "__main__":
    main()
