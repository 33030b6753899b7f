"""Does conditional-GAN data augmentation help a small MNIST classifier? Measured, not assumed.

For each subset size (real images per class, drawn from the bundled MNIST train split) and
seed: train a class-conditional GAN (the ``acgan-mnist`` or ``cgan-mnist`` preset with small
networks) on that subset only, with and without the small-data tricks (DiffAugment
translation+cutout, EMA of G); then train the same small CNN on (a) the real subset, (b) real +
synthetic, (c) synthetic only, and report its accuracy on the 1,000 held-out MNIST test digits,
mean ± std over seeds. The GAN's own CAS (mnist classifier on its samples) is reported too.

    python benchmarks/augmentation.py --sizes 20,50,100 --seeds 0,1,2 --gan-steps 600

Prints a table and writes benchmarks/augmentation.json.
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
from torch import nn

import ganforge
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


def train_gan(per_class: int, seed: int, steps: int, tricks: bool, preset: str,
              root: Path) -> object:
    raw = raw_config(preset)
    raw["data"] = {"source": "mnist-subset",
                   "options": {"per_class": per_class, "seed": seed}}
    raw["generator"]["layers"] = SMALL_G
    raw["discriminator"]["layers"] = SMALL_D
    raw["train"] = {"steps": steps, "batch_size": 32, "checkpoint_every": 100_000}
    raw["optim"] = {"g": {"lr": 1e-3, "betas": [0.5, 0.999]},
                    "d": {"lr": 1e-3, "betas": [0.5, 0.999]}}
    raw["monitor"].update(progress=False, sample_every=100_000, log_every=100)
    raw["seed"] = seed
    # the preset's conditioning only: its EMA and sample filter belong to the tricks compared
    raw["objective"] = {"loss": raw["objective"]["loss"]}
    raw.pop("sampling", None)
    if tricks:
        raw["objective"]["diffaugment"] = ["translation", "cutout"]
        raw["objective"]["ema"] = 0.99
    name = f"{preset}-{per_class}-{seed}-{'tricks' if tricks else 'plain'}"
    return ganforge.train(raw, run_dir=root / name)


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 7 * 7, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def classifier_accuracy(x: torch.Tensor, y: torch.Tensor, test: TensorData, seed: int,
                        steps: int) -> float:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = SmallCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(y), (64,), generator=g)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(test.x[i:i + 500]).argmax(1) for i in range(0, len(test.x), 500)])
    return float((pred == test.y).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="20,50,100")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--gan-steps", type=int, default=600)
    ap.add_argument("--clf-steps", type=int, default=300)
    ap.add_argument("--synth-per-class", type=int, default=200)
    ap.add_argument("--preset", default="acgan-mnist")
    ap.add_argument("--variants", default="plain,tricks")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).with_name("augmentation.json")))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sizes = [int(s) for s in a.sizes.split(",")]
    seeds = [int(s) for s in a.seeds.split(",")]
    variants = a.variants.split(",")
    test = load_dataset("mnist", split="test")
    test.y = test.y.long()
    rows: list[dict] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            for seed in seeds:
                xr, yr = subset(n, seed)
                real_acc = classifier_accuracy(xr, yr, test, seed, a.clf_steps)
                rows.append({"size": n, "seed": seed, "variant": "-", "train": "real",
                             "acc": real_acc})
                for v in variants:
                    t = time.perf_counter()
                    run = train_gan(n, seed, a.gan_steps, v == "tricks", a.preset, Path(tmp))
                    gan_s = time.perf_counter() - t
                    ys = torch.arange(10).repeat_interleave(a.synth_per_class)
                    xs = run.sample(len(ys), seed=seed + 100, labels=ys).clamp(-1, 1)
                    cas, _ = classification_accuracy(xs, ys)
                    mix = classifier_accuracy(torch.cat([xr, xs]), torch.cat([yr, ys]), test,
                                              seed, a.clf_steps)
                    syn = classifier_accuracy(xs, ys, test, seed, a.clf_steps)
                    common = {"size": n, "seed": seed, "variant": v, "cas": cas, "gan_s": gan_s}
                    rows.append({**common, "train": "real+synthetic", "acc": mix})
                    rows.append({**common, "train": "synthetic", "acc": syn})
                    print(f"  size {n} seed {seed} {v}: real {real_acc:.3f} mix {mix:.3f} "
                          f"synth {syn:.3f} CAS {cas:.3f} (GAN {gan_s:.0f}s)", flush=True)
    total = time.perf_counter() - t0

    def agg(key: str, sel: list[dict]) -> str:
        v = np.array([r[key] for r in sel])
        return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"

    lines = ["| real/class | GAN variant | train on | test accuracy | GAN CAS |",
             "|---|---|---|---|---|"]
    for n in sizes:
        sel = [r for r in rows if r["size"] == n and r["train"] == "real"]
        lines.append(f"| {n} | - | real | {agg('acc', sel)} | - |")
        for v in variants:
            for what in ("real+synthetic", "synthetic"):
                sel = [r for r in rows if r["size"] == n and r["variant"] == v
                       and r["train"] == what]
                lines.append(f"| {n} | {v} | {what} | {agg('acc', sel)} | {agg('cas', sel)} |")
    table = "\n".join(lines)
    print(table)
    print(f"total {total:.0f}s; {a.preset}, GAN {a.gan_steps} steps batch 32, classifier "
          f"{a.clf_steps} steps batch 64, {a.synth_per_class} synthetic/class, seeds {seeds}")
    Path(a.out).write_text(json.dumps({
        "machine": f"{platform.machine()} {torch.get_num_threads()} thread(s)",
        "args": vars(a), "rows": rows, "table": table, "total_s": total}, indent=1))


if __name__ == "__main__":
    main()
