"""Reference values: every metric for real MNIST test split vs train split (and noise).

    python benchmarks/metrics_mnist_reference.py                 # mnist extractor, table
    python benchmarks/metrics_mnist_reference.py --inception 200 # + Inception FID/KID/PR/DC
                                                                 #   on 200 vs 200 digits, and the
                                                                 #   clean-fid pipeline check
Prints a markdown table and, with --write, appends it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ganforge import metrics as M
from ganforge.data import load_dataset
from ganforge.metrics.features import get_extractor


def score_all(real_feats: np.ndarray, fake_feats: np.ndarray, fake_logits: torch.Tensor | None,
              seed: int = 0) -> dict[str, float]:
    out = {"fid": M.fid(real_feats, fake_feats)}
    k = M.kid(real_feats, fake_feats, seed=seed)
    out["kid"], out["kid_std"] = k["kid"], k["kid_std"]
    out.update(M.precision_recall(real_feats, fake_feats, k=3))
    out.update(M.density_coverage(real_feats, fake_feats, k=5))
    if fake_logits is not None:
        s = M.inception_score(fake_logits)
        out["is"], out["is_std"] = s["is"], s["is_std"]
        cm = M.class_modes(fake_logits, extractor=None)
        out["modes"], out["modes_kl"] = cm.modes, cm.kl
    return out


def fmt(v: float) -> str:
    return str(v) if isinstance(v, int) else f"{v:.4g}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--inception", type=int, default=0,
                    help="also score N test vs N train digits with the Inception extractor")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--write", action="store_true", help="append to benchmarks/RESULTS.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    train, test = load_dataset("mnist", split="train"), load_dataset("mnist", split="test")
    noise = torch.rand(len(test), 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ext = get_extractor("mnist")
    t0 = time.perf_counter()
    f_train, f_test, f_noise = (ext.features(x).double().numpy()
                                for x in (train.x, test.x, noise))
    l_test, l_noise, l_train = ext.logits(test.x), ext.logits(noise), ext.logits(train.x)
    t_feat = time.perf_counter() - t0
    acc = float((l_test.argmax(1) == test.y).float().mean())
    acc_train = float((l_train.argmax(1) == train.y).float().mean())
    t0 = time.perf_counter()
    cols = {"test vs train": score_all(f_train, f_test, l_test),
            "uniform noise vs train": score_all(f_train, f_noise, l_noise)}
    t_metrics = time.perf_counter() - t0
    is_train = M.inception_score(l_train)

    lines = [(f"mnist extractor sha256 {ext.sha256[:16]}..., held-out accuracy {acc:.4f} "
              f"(train split {acc_train:.4f}); IS of the train split "
              f"{is_train['is']:.3f} +- {is_train['is_std']:.3f}"), "",
             "| metric | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for key in cols["test vs train"]:
        lines.append(f"| {key} | " + " | ".join(fmt(c[key]) for c in cols.values()) + " |")
    lines.append("")
    lines.append(f"(n_real = {len(train)} train digits, n_fake = {len(test)}; features of 6,000 "
                 f"images {t_feat:.1f} s, all metrics {t_metrics:.1f} s on 1 thread)")

    if args.inception:
        n = args.inception
        inc = get_extractor("inception")
        t0 = time.perf_counter()
        fi_train = inc.features(train.x[:n]).double().numpy()
        fi_test = inc.features(test.x[:n]).double().numpy()
        t_inc = time.perf_counter() - t0
        r = score_all(fi_train, fi_test, None)
        lines += ["", (f"Inception extractor, {n} test vs {n} train digits "
                       f"({2 * n / t_inc:.1f} images/s on {args.threads} thread(s)):"), "",
                  "| metric | test vs train |", "|---|---|"]
        lines += [f"| {k} | {fmt(v)} |" for k, v in r.items()]
        lines.append("(FID at n=" + str(n) + " is biased upwards; Lucic et al. use 10k vs 10k.)")

    text = "\n".join(lines)
    print(text)
    if args.write:
        res = Path(__file__).parent / "RESULTS.md"
        head = (f"\n## Metrics: real MNIST test split vs train split "
                f"({time.strftime('%Y-%m-%d')}, {platform.machine()}, 2-core CPU, shared with "
                f"other jobs while measuring)\n\n")
        with res.open("a") as f:
            f.write(head + text + "\n")


if __name__ == "__main__":
    main()
