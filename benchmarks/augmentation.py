"""Does conditional-GAN data augmentation help a small MNIST classifier? Measured, not assumed.

For each subset size (real images per class, drawn from the bundled MNIST train split) and
seed: train a class-conditional GAN on that subset only, then ask whether its samples help the
small classifier of ``ganforge augment --validate`` (``ganforge.apps.augment_check``: two
stride-2 convolutions, Adam 1e-3, ``--clf-steps`` minibatches of 64) on the 1,000 held-out
MNIST test digits, exactly as that command does on a user's data:

- the classifier on the real subset alone (the baseline);
- on real + synthetic for every synthetic:real **ratio**, confidence **filter** (keep the
  samples the real-subset classifier gives their label at least this probability) and
  **schedule** (``mixed``: pooled; ``synthetic-first``: half the steps on synthetic alone, then
  the real subset), same seed and total steps as the baseline;
- on synthetic only, and the GAN's own CAS (the bundled mnist classifier on its samples).

GANs: ``--nets preset`` trains the preset's own networks, optimiser schedule and sample filter
(``projection-mnist`` by default, the conditional recipe of benchmarks/RESULTS.md) for
``--gan-steps``; ``--nets small`` the small networks of the first version of this benchmark
(Adam 1e-3, no schedule, no sample filter). Variants: *plain* (no DiffAugment, no EMA) and
*tricks* (DiffAugment translation + cutout, and an EMA of G: the preset's own, else 0.99), the
few-shot recipe of the literature. Means and std (ddof 1) are over the seeds; the classifier
seed is the subset seed. The best setting is picked on the test digits, so it is optimistic;
the table prints every setting so that a fixed one can be read off. ``--set KEY=VALUE``
(repeatable) overrides a config key of every GAN, e.g. ``objective.mode_seeking=0.2``.

    python benchmarks/augmentation.py --sizes 20,50 --seeds 0,1,2 --gan-steps 2000 \\
        --variants tricks --out benchmarks/results/augmentation/projection.json

Prints a table and writes the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import ganforge
from ganforge.apps.augment_check import SCHEDULES, accuracy, compare_augmentation, train_classifier
from ganforge.config import raw_config
from ganforge.data import load_dataset
from ganforge.data.base import TensorData
from ganforge.data.registry import register_dataset
from ganforge.metrics.conditional import classification_accuracy

SMALL_G = [{"dense": {"units": 1568, "bias": False}}, "batch_norm", "relu",
           {"reshape": {"shape": [32, 7, 7]}},
           {"conv_transpose2d": {"filters": 16, "kernel": 4, "stride": 2, "padding": 1,
                                 "bias": False}}, "batch_norm", "relu",
           {"conv_transpose2d": {"filters": 1, "kernel": 4, "stride": 2, "padding": 1}}, "tanh"]
SMALL_D = [{"conv2d": {"filters": 16, "kernel": 4, "stride": 2, "padding": 1}},
           {"leaky_relu": {"slope": 0.2}},
           {"conv2d": {"filters": 32, "kernel": 4, "stride": 2, "padding": 1}},
           {"leaky_relu": {"slope": 0.2}}, "flatten", {"dense": {"units": 1}}]


def subset(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    full = load_dataset("mnist", split="train")
    g = torch.Generator().manual_seed(10_000 + seed)
    idx = torch.cat([torch.nonzero(full.y == c).flatten()[
        torch.randperm(int((full.y == c).sum()), generator=g)[:per_class]] for c in range(10)])
    return full.x[idx], full.y[idx].long()


@register_dataset("mnist-subset")
def _mnist_subset(split: str = "train", per_class: int = 20, seed: int = 0) -> TensorData:
    x, y = subset(per_class, seed)
    return TensorData(name="mnist-subset", x=x, y=y, kind="image", split=split, num_classes=10)


def train_gan(per_class: int, seed: int, steps: int, tricks: bool, preset: str, nets: str,
              root: Path, overrides: list[str] | None = None) -> object:
    raw = raw_config(preset)
    objective = dict(raw.get("objective", {}))
    raw["data"] = {"source": "mnist-subset",
                   "options": {"per_class": per_class, "seed": seed}}
    raw["seed"] = seed
    raw["monitor"].update(progress=False, sample_every=100_000, log_every=100)
    # both variants start from the preset's loss (and its other switches with --nets preset)
    raw["objective"] = ({"loss": objective["loss"]} if nets == "small" else
                        {k: v for k, v in objective.items()
                         if k not in ("ema", "ema_start", "ema_stats", "diffaugment")})
    if nets == "small":
        raw["generator"]["layers"] = SMALL_G
        raw["discriminator"]["layers"] = SMALL_D
        raw["train"] = {"steps": steps, "batch_size": 32, "checkpoint_every": 100_000}
        raw["optim"] = {"g": {"lr": 1e-3, "betas": [0.5, 0.999]},
                        "d": {"lr": 1e-3, "betas": [0.5, 0.999]}}
        raw.pop("sampling", None)
    else:  # the preset as shipped (networks, schedule, sample filter), for ``steps``
        raw["train"].pop("epochs", None)
        raw["train"].update(steps=steps, checkpoint_every=100_000)
    if tricks:
        raw["objective"]["diffaugment"] = ["translation", "cutout"]
        raw["objective"]["ema"] = objective.get("ema") or 0.99
        if nets == "preset" and "ema_stats" in objective:
            raw["objective"]["ema_stats"] = objective["ema_stats"]
    name = f"{preset}-{per_class}-{seed}-{'tricks' if tricks else 'plain'}"
    return ganforge.train(raw, run_dir=root / name, overrides=overrides or None)


def numbers(text: str, kind: type = float) -> list:
    return [kind(v) for v in text.split(",") if v.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="20,50")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--preset", default="projection-mnist")
    ap.add_argument("--nets", choices=["preset", "small"], default="preset")
    ap.add_argument("--gan-steps", type=int, default=2000)
    ap.add_argument("--variants", default="tricks", help="plain and/or tricks")
    ap.add_argument("--ratios", default="1,2,4", help="synthetic samples per real one")
    ap.add_argument("--filters", default="0,0.9")
    ap.add_argument("--schedules", default=",".join(SCHEDULES))
    ap.add_argument("--clf-steps", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override for every GAN (a lever to measure)")
    ap.add_argument("--keep", help="keep the GAN runs under this folder")
    ap.add_argument("--out", default="benchmarks/results/augmentation/augmentation.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sizes, seeds = numbers(a.sizes, int), numbers(a.seeds, int)
    ratios, filters = numbers(a.ratios), numbers(a.filters)
    schedules, variants = a.schedules.split(","), a.variants.split(",")
    test = load_dataset("mnist", split="test")
    tx, ty = test.x.float(), test.y.long()
    rows: list[dict] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(a.keep or tmp)
        for n in sizes:
            for seed in seeds:
                xr, yr = subset(n, seed)
                for v in variants:
                    t = time.perf_counter()
                    run = train_gan(n, seed, a.gan_steps, v == "tricks", a.preset, a.nets, root,
                                    a.set)
                    gan_s = time.perf_counter() - t
                    res = compare_augmentation(run, xr, yr, tx, ty, ratios, filters, [seed],
                                               a.clf_steps, schedules, "the 1,000 test digits")
                    ys = torch.arange(10).repeat_interleave(round(n * max(ratios)))
                    xs = run.sample(len(ys), seed=seed, labels=ys).float()
                    cas, _ = classification_accuracy(xs, ys)
                    syn = accuracy(train_classifier(xs, ys, 10, seed, a.clf_steps), tx, ty)
                    common = {"size": n, "seed": seed, "variant": v, "cas": cas,
                              "gan_s": gan_s, "real": res["baseline"][0], "synthetic": syn}
                    for r in res["settings"]:
                        rows.append({**common, "ratio": r["ratio"], "filter": r["threshold"],
                                     "schedule": r["schedule"], "acc": r["accuracy"][0],
                                     "gain": r["gain"][0], "kept": r["synthetic"][0]})
                    best = res["best"]
                    print(f"  size {n} seed {seed} {v}: real {res['baseline'][0]:.3f}, best "
                          f"{best['accuracy'][0]:.3f} (ratio {best['ratio']:g} filter "
                          f"{best['threshold']:g} {best['schedule']}), synthetic only "
                          f"{syn:.3f}, CAS {cas:.3f} (GAN {gan_s:.0f} s)", flush=True)
    total = time.perf_counter() - t0

    def agg(values: list[float], sign: str = "") -> str:
        v = np.array(values)
        return f"{v.mean():{sign}.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"

    lines = [("| real/class | GAN | train on | ratio | filter | schedule | test accuracy | "
             "gain over real | GAN CAS |"), "|---|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        for v in variants:
            sel = [r for r in rows if r["size"] == n and r["variant"] == v]
            one = list({r["seed"]: r for r in sel}.values())  # one row per seed
            if v == variants[0]:
                lines.append(f"| {n} | - | real | | | | {agg([r['real'] for r in one])} | | |")
            lines.append(f"| {n} | {v} | synthetic | | | | "
                         f"{agg([r['synthetic'] for r in one])} | | "
                         f"{agg([r['cas'] for r in one])} |")
            for sch in schedules:
                for ratio in ratios:
                    for f in filters:
                        cell = [r for r in sel
                                if (r["ratio"], r["filter"], r["schedule"]) == (ratio, f, sch)]
                        lines.append(f"| {n} | {v} | real+synthetic | {ratio:g} | {f:g} | "
                                     f"{sch} | {agg([r['acc'] for r in cell])} | "
                                     f"{agg([r['gain'] for r in cell], '+')} | |")
    table = "\n".join(lines)
    print(table)
    print(f"total {total:.0f} s; {a.preset} ({a.nets} networks), GAN {a.gan_steps} steps, "
          f"classifier {a.clf_steps} steps of 64, seeds {seeds}"
          + (f", overrides {a.set}" if a.set else ""))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": f"{platform.machine()} {torch.get_num_threads()} thread(s)",
        "args": vars(a), "rows": rows, "table": table, "total_s": total}, indent=1))


if __name__ == "__main__":
    main()
