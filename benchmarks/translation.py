"""Image-to-image translation judged as issue 21 asks: pix2pix (inpainting, 2x super-resolution)
and CycleGAN (scikit-learn digits <-> MNIST), each preset at its own default budget.

For each seed every preset trains as shipped (its ``train.epochs``; ``--pix2pix-steps`` /
``--cyclegan-steps`` replace that by a step count for quick runs), then the last checkpoint is
scored on held-out data:

- **pix2pix** (``pix2pix-inpaint``, ``pix2pix-sr2x``): PSNR / SSIM / L1 (L1 on a [0, 1] pixel
  scale) of the outputs against the 1,000 MNIST test digits, beside the trivial baselines (the
  masked input; the bicubic upscale), and the accuracy of the bundled MNIST classifier (the
  ``mnist`` extractor's head, ``get_extractor("mnist").logits``) on inputs, outputs and the
  clean targets.
- **CycleGAN** (``cyclegan-digits``): label preservation in both directions, i.e. the accuracy
  of a classifier of the target domain on the translations of the source test split against
  the source labels, next to its accuracy on the untranslated source images. Judges: for MNIST
  (b) the bundled MNIST classifier; for domain a (scikit-learn digits upscaled to 28x28) two:
  a logistic regression on that domain's 1,437 training digits, and the MNIST judge's own CNN
  and recipe trained on them (``scripts/train_mnist_classifier.py``'s ``fit``), so that both
  directions have a CNN judge; the target counts as met only when every judge agrees (their
  accuracies on the 360 digits test split are the reference rows). ``--set KEY=VALUE`` with
  ``--label NAME`` trains a variant of the presets. FID in the ``mnist`` extractor's features
  (``ganforge.metrics.fid``) of the translations against the target domain's test split, with
  the untranslated source as baseline and, as the floor, real target-domain train digits
  against the same test split (sample sizes matched, so all three carry the same small-sample
  bias). Cycle L1 (a -> b -> a, b -> a -> b) on held-out images, [0, 1] scale.

Training time is the trainer's own clock (the last ``train`` line of RUN/metrics.jsonl); the
load average at the start and end of each run and the CPU model go into the JSON and the table,
because a shared machine inflates every timing. Sample strips (input | output | target; for
CycleGAN source | translation | reconstruction) are written as PNG under ``--out`` next to the
results JSON, all named with the seed. Run it alone on the machine, e.g.:

    heavy --threads 2 python benchmarks/translation.py --seeds 0 \\
        --out benchmarks/results/translation
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import last_train_record, parse_seeds

import ganforge
from ganforge.config import load_config
from ganforge.data import load_dataset
from ganforge.metrics import fid, get_extractor
from ganforge.metrics.image_quality import quality_table
from ganforge.run import read_run_config
from ganforge.tasks.translation import load_translator, strip_picture, translate_tensor

# issue 21's targets
TARGET = {
    "cyclegan-digits": {"label_kept": 0.80, "train_minutes": 15.0},
    "pix2pix-inpaint": {"acc_output": 0.85},  # and PSNR, SSIM above the masked input
    "pix2pix-sr2x": {"acc_output": "acc_input"},  # and PSNR, SSIM above bicubic's
}
TARGET_TEXT = {
    "pix2pix-inpaint": "acc ≥ 0.85, PSNR & SSIM > masked input",
    "pix2pix-sr2x": "acc ≥ bicubic's, PSNR & SSIM > bicubic",
    "cyclegan-digits": "label kept ≥ 0.80, train ≤ 900 s",
}


# ------------------------------------------------------------------------------ machine
def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# --------------------------------------------------------------------------- classifiers
class MnistClassifier:
    """The bundled MNIST classifier: the ``mnist`` extractor's head."""

    def __init__(self) -> None:
        self.ext = get_extractor("mnist")
        self.name = "bundled mnist classifier (mnist extractor logits)"
        self.sha256 = self.ext.sha256

    def predict(self, x: torch.Tensor) -> np.ndarray:
        return self.ext.logits(x).argmax(1).numpy()


class LogRegClassifier:
    """Logistic regression on raw pixels in [-1, 1] (a cheap, fixed, documented judge)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, name: str) -> None:
        from sklearn.linear_model import LogisticRegression

        self.name = name
        self.model = LogisticRegression(max_iter=300, C=0.1)
        self.model.fit(x.flatten(1).numpy(), y.numpy())

    def predict(self, x: torch.Tensor) -> np.ndarray:
        return self.model.predict(x.flatten(1).numpy())


class CnnClassifier:
    """The bundled MNIST judge's network and recipe (``scripts/train_mnist_classifier.py``:
    MnistNet, 20 epochs, affine augmentation, seed 0) trained on another domain's train split,
    so both directions of CycleGAN are judged by the same kind of classifier."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor,
                 y_test: torch.Tensor, name: str) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
        from train_mnist_classifier import fit

        self.name = name
        self.net = fit(x, y, x_test, y_test, epochs=20, seed=0, verbose=False)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> np.ndarray:
        return torch.cat([self.net(x[i:i + 500]).argmax(1)
                          for i in range(0, len(x), 500)]).numpy()


_CNN_A: dict[str, CnnClassifier] = {}


def accuracy(clf: Any, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((clf.predict(x) == y.numpy()).mean())


# ------------------------------------------------------------------------------ training
def run_name(preset: str, label: str) -> str:
    return f"{preset}-{label}" if label else preset


def train_run(preset: str, seed: int, steps: int | None, out: Path, threads: int | None,
              extra: list[str], label: str) -> tuple[Any, dict[str, Any]]:
    """Train ``preset`` (its default epochs, or ``steps`` steps; ``extra`` config overrides)
    into OUT/runs/PRESET[-LABEL]_seedN; the run and its budget and timing record."""
    run_dir = out / "runs" / f"{run_name(preset, label)}_seed{seed}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    overrides = ["monitor.progress=false", f"seed={seed}", *extra]
    if steps is not None:
        overrides += ["train.epochs=null", f"train.steps={steps}"]
    if threads is not None:
        overrides.append(f"train.threads={threads}")
    load_start = load_average()
    t0 = time.perf_counter()
    run = ganforge.train(preset, run_dir=run_dir, overrides=overrides)
    wall = time.perf_counter() - t0
    load_end = load_average()
    last = last_train_record(run_dir)
    cfg = read_run_config(run_dir)
    n = json.loads((run_dir / "data.json").read_text())["n"]
    per_epoch = max(1, n // cfg.train.batch_size)
    shipped = load_config(preset).train.epochs
    return run, {
        "run_dir": str(run_dir), "seed": seed, "steps": int(last["step"]),
        "epochs": round(last["step"] / per_epoch, 3), "batches_per_epoch": per_epoch,
        "budget": ("preset default" if steps is None else "step override"),
        "preset_epochs": shipped, "train_s": float(last["time"]), "train_wall_s": round(wall, 1),
        "torch_threads": torch.get_num_threads(), "loadavg_start": load_start,
        "loadavg_end": load_end, "overrides": list(extra), "label": label}


# ------------------------------------------------------------------------------ pix2pix
def pix2pix_meets(r: dict[str, Any]) -> bool:
    bm, om = r["baseline_metrics"], r["output_metrics"]
    better = om["psnr"] > bm["psnr"] and om["ssim"] > bm["ssim"]
    if r["task"] == "pix2pix-inpaint":
        return better and r["acc_output"] >= TARGET["pix2pix-inpaint"]["acc_output"]
    return better and r["acc_output"] >= r["acc_input"]


def bench_pix2pix(kind: str, seed: int, steps: int | None, out: Path, threads: int | None,
                  clf: MnistClassifier, extra: list[str], label: str) -> dict[str, Any]:
    preset = f"pix2pix-{kind}"
    run, rec = train_run(preset, seed, steps, out, threads, extra, label)
    cfg = run.config
    test = load_dataset(cfg.data.source, split="test", **dict(cfg.data.options))
    a, b = test.x[:, :1], test.x[:, 1:]
    y = translate_tensor(run.generator, a)
    pick = torch.arange(10) * (len(a) // 10)  # the test split is sorted by class: one per digit
    strip = strip_picture([a[pick], y[pick], b[pick]], out / f"{run_name(preset, label)}_seed{seed}_strip.png")
    r = {"task": preset, **rec,
         "baseline": "masked input" if kind == "inpaint" else "bicubic upscale",
         "baseline_metrics": quality_table(a, b), "output_metrics": quality_table(y, b),
         "acc_input": accuracy(clf, a, test.y), "acc_output": accuracy(clf, y, test.y),
         "acc_target": accuracy(clf, b, test.y), "classifier": clf.name,
         "classifier_sha256": clf.sha256, "n_test": len(a), "strip": str(strip)}
    r["meets_target"] = pix2pix_meets(r)
    return r


# ----------------------------------------------------------------------------- CycleGAN
def judge_meets(r: dict[str, Any], direction: str, judge: str = "") -> bool:
    """One judge's verdict (``judge``: the accuracy key's suffix, "" or "_cnn")."""
    t = TARGET["cyclegan-digits"]
    return (r[f"{direction}_acc_translated{judge}"] >= t["label_kept"]
            and r["train_s"] <= 60 * t["train_minutes"])


def cyclegan_meets(r: dict[str, Any], direction: str) -> bool:
    """Every judge of the direction's target domain agrees (domain a has two)."""
    return all(judge_meets(r, direction, j) for j in ("", "_cnn")
               if f"{direction}_acc_translated{j}" in r)


def bench_cyclegan(seed: int, steps: int | None, out: Path, threads: int | None,
                   clf_b: MnistClassifier, extra: list[str], label: str) -> dict[str, Any]:
    preset = "cyclegan-digits"
    _, rec = train_run(preset, seed, steps, out, threads, extra, label)
    name = run_name(preset, label)
    run_dir = Path(rec["run_dir"])
    g_ab, _, cfg = load_translator(run_dir, "a2b")
    g_ba, _, _ = load_translator(run_dir, "b2a")
    opts = dict(cfg.data.options)
    train = load_dataset(cfg.data.source, split="train", **opts)
    test = load_dataset(cfg.data.source, split="test", **opts)
    a_train, a_train_y = train.info["a"], train.info["a_y"]
    a_x, a_y, b_x, b_y = test.info["a"], test.info["a_y"], test.x, test.y
    clf_a = LogRegClassifier(a_train, a_train_y, f"logistic regression on {opts['a']} train "
                             f"({len(a_train):,}, upscaled to 28x28)")
    if opts["a"] not in _CNN_A:  # the same data for every seed: train it once
        _CNN_A[opts["a"]] = CnnClassifier(
            a_train, a_train_y, a_x, a_y,
            f"MnistNet recipe trained on {opts['a']} train ({len(a_train):,}, upscaled)")
    cnn_a = _CNN_A[opts["a"]]
    fake_b = translate_tensor(g_ab, a_x)
    fake_a = translate_tensor(g_ba, b_x)
    rec_a = translate_tensor(g_ba, fake_b)
    rec_b = translate_tensor(g_ab, fake_a)
    pick_b = torch.arange(10) * (len(b_x) // 10)  # MNIST test is sorted by class
    strips = [strip_picture([a_x[:10], fake_b[:10], rec_a[:10]],
                            out / f"{name}_seed{seed}_a2b_strip.png"),
              strip_picture([b_x[pick_b], fake_a[pick_b], rec_b[pick_b]],
                            out / f"{name}_seed{seed}_b2a_strip.png")]
    n_a, n_b = len(a_x), len(b_x)
    # the floor's real digits: a seeded random subset of the train split (MNIST's splits are
    # sorted by class, so its first n would be mostly zeros)
    pick = torch.Generator().manual_seed(0)
    real_b = train.x[torch.randperm(len(train.x), generator=pick)[:n_a]]
    real_a = a_train[torch.randperm(len(a_train), generator=pick)[:n_b]]
    r = {"task": preset, **rec,
         "a2b_acc_source_raw": accuracy(clf_b, a_x, a_y),
         "a2b_acc_translated": accuracy(clf_b, fake_b, a_y),
         "b2a_acc_source_raw": accuracy(clf_a, b_x, b_y),
         "b2a_acc_translated": accuracy(clf_a, fake_a, b_y),
         "b2a_acc_source_raw_cnn": accuracy(cnn_a, b_x, b_y),
         "b2a_acc_translated_cnn": accuracy(cnn_a, fake_a, b_y),
         "acc_a_on_a_test_cnn": accuracy(cnn_a, a_x, a_y), "classifier_a_cnn": cnn_a.name,
         "acc_b_on_b_test": accuracy(clf_b, b_x, b_y),
         "acc_a_on_a_test": accuracy(clf_a, a_x, a_y),
         "classifier_b": clf_b.name, "classifier_b_sha256": clf_b.sha256,
         "classifier_a": clf_a.name, "n_test_a": n_a, "n_test_b": n_b,
         "cycle_l1_a": float((rec_a - a_x).abs().mean() / 2),
         "cycle_l1_b": float((rec_b - b_x).abs().mean() / 2),
         # FID in the mnist extractor's features against the target domain's test split
         "fid_a2b_translated": fid(b_x, fake_b, extractor="mnist"),
         "fid_a2b_raw": fid(b_x, a_x, extractor="mnist"),
         "fid_a2b_real": fid(b_x, real_b, extractor="mnist"),
         "fid_b2a_translated": fid(a_x, fake_a, extractor="mnist"),
         "fid_b2a_raw": fid(a_x, b_x, extractor="mnist"),
         "fid_b2a_real": fid(a_x, real_a, extractor="mnist"),
         "strips": [str(p) for p in strips]}
    r["meets_target"] = cyclegan_meets(r, "a2b") and cyclegan_meets(r, "b2a")
    return r


# -------------------------------------------------------------------------------- tables
def yes(ok: bool) -> str:
    return "yes" if ok else "no"


def short(override: str, width: int = 60) -> str:
    """An override as a table cell: a whole network spec is cut to its key and first
    characters (the JSON keeps it whole)."""
    return override if len(override) <= width else override[:width - 1] + "…"


def budget(r: dict[str, Any]) -> str:
    flag = "--cyclegan-steps" if r["task"] == "cyclegan-digits" else "--pix2pix-steps"
    how = ("preset default" if r["budget"] == "preset default"
           else f"{flag}; preset {r['preset_epochs']:g} ep")
    sets = "".join(f"; {short(o)}" for o in r.get("overrides", []))
    return f"{r['steps']:,} steps = {r['epochs']:.3g} ep ({how}{sets})"


def load_text(r: dict[str, Any]) -> str:
    return f"{r['loadavg_start'][0]:.1f} → {r['loadavg_end'][0]:.1f}"


def mean_worst(vals: list[float], worst: Any, fmt: str) -> str:
    return f"{statistics.fmean(vals):{fmt}} / {worst(vals):{fmt}}"


def pix2pix_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [("| task | seed | budget | train s (load 1 min) | model | PSNR dB | SSIM | L1 | "
              "classifier acc | issue 21 target | meets target |"),
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for task in dict.fromkeys(r["task"] for r in rows):
        rs = [r for r in rows if r["task"] == task]
        bm = rs[0]["baseline_metrics"]
        lines.append(f"| {task} | — | — | — | {rs[0]['baseline']} (baseline) | {bm['psnr']:.2f} | "
                     f"{bm['ssim']:.3f} | {bm['l1']:.4f} | {rs[0]['acc_input']:.3f} | | |")
        for r in rs:
            om = r["output_metrics"]
            lines.append(f"| {task} | {r['seed']} | {budget(r)} | {r['train_s']:.1f} "
                         f"({load_text(r)}) | pix2pix output | {om['psnr']:.2f} | "
                         f"{om['ssim']:.3f} | {om['l1']:.4f} | {r['acc_output']:.3f} | "
                         f"{TARGET_TEXT[task]} | {yes(r['meets_target'])} |")
        if len(rs) > 1:
            om = [r["output_metrics"] for r in rs]
            lines.append(
                f"| {task} | mean / worst of {len(rs)} | | "
                f"{mean_worst([r['train_s'] for r in rs], max, '.0f')} | pix2pix output | "
                f"{mean_worst([m['psnr'] for m in om], min, '.2f')} | "
                f"{mean_worst([m['ssim'] for m in om], min, '.3f')} | "
                f"{mean_worst([m['l1'] for m in om], max, '.4f')} | "
                f"{mean_worst([r['acc_output'] for r in rs], min, '.3f')} | "
                f"{TARGET_TEXT[task]} (every seed) | "
                f"{yes(all(r['meets_target'] for r in rs))} |")
        lines.append(f"| {task} | — | — | — | clean target digits (reference) | | | | "
                     f"{rs[0]['acc_target']:.3f} | | |")
    return lines


def cyclegan_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [("| seed | budget | train s (load 1 min) | direction (judge) | acc. on raw source | "
              "acc. on translation | FID translation (raw source; real) | cycle L1 | "
              "issue 21 target | meets target |"), "|---|---|---|---|---|---|---|---|---|---|"]
    # (direction, name, accuracy key suffix, cycle key); b2a twice when the CNN judge ran
    views = [("a2b", "digits → MNIST (mnist CNN)", "", "cycle_l1_a"),
             ("b2a", "MNIST → digits (logistic regression)", "", "cycle_l1_b")]
    if all("b2a_acc_translated_cnn" in r for r in rows):
        views.append(("b2a", "MNIST → digits (CNN on digits)", "_cnn", "cycle_l1_b"))
    for r in rows:
        for d, name, sfx, cyc in views:
            lines.append(f"| {r['seed']} | {budget(r)} | {r['train_s']:.1f} ({load_text(r)}) | "
                         f"{name} | {r[f'{d}_acc_source_raw{sfx}']:.3f} | "
                         f"{r[f'{d}_acc_translated{sfx}']:.3f} | {r[f'fid_{d}_translated']:.2f} "
                         f"({r[f'fid_{d}_raw']:.2f}; {r[f'fid_{d}_real']:.2f}) | {r[cyc]:.4f} | "
                         f"{TARGET_TEXT['cyclegan-digits']} | {yes(judge_meets(r, d, sfx))} |")
    if len(rows) > 1:
        def col(key: str, worst: Any, fmt: str) -> str:
            return mean_worst([r[key] for r in rows], worst, fmt)

        for d, name, sfx, cyc in views:
            lines.append(f"| mean / worst of {len(rows)} | | {col('train_s', max, '.0f')} | "
                         f"{name} | {rows[0][f'{d}_acc_source_raw{sfx}']:.3f} | "
                         f"{col(f'{d}_acc_translated{sfx}', min, '.3f')} | "
                         f"{col(f'fid_{d}_translated', max, '.2f')} | {col(cyc, max, '.4f')} | "
                         f"{TARGET_TEXT['cyclegan-digits']} (every seed) | "
                         f"{yes(all(judge_meets(r, d, sfx) for r in rows))} |")
    every = all(cyclegan_meets(r, d) for r in rows for d in ("a2b", "b2a"))
    lines += ["", (f"Every judge, both directions, every seed ≥ {TARGET['cyclegan-digits']['label_kept']}: "
              f"{yes(every)}.")]
    r = rows[0]
    lines += ["", "Reference rows (each judge on its own domain's test split):", "",
              "| judge | test split | accuracy |", "|---|---|---|",
              (f"| {r['classifier_b']} | MNIST test ({r['n_test_b']:,}) | "
               f"{r['acc_b_on_b_test']:.3f} |"),
              (f"| {r['classifier_a']} | digits test ({r['n_test_a']:,}) | "
               f"{r['acc_a_on_a_test']:.3f} |"),
              *([(f"| {r['classifier_a_cnn']} | digits test ({r['n_test_a']:,}) | "
                 f"{r['acc_a_on_a_test_cnn']:.3f} |")] if "classifier_a_cnn" in r else []), "",
              ("FID: mnist extractor features vs the target domain's test split; raw source = "
               "the untranslated source images; real = target-domain train images, same count "
               "as the translations. Cycle L1 on a [0, 1] scale (a → b → a for digits → MNIST, "
               "b → a → b for MNIST → digits).")]
    return lines


def tables(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [(f"CPU: {meta['cpu']}, {meta['cores']} cores, torch {meta['torch']}; load average "
              f"(1/5/15 min) at start {meta['loadavg_start']}, at end {meta['loadavg_end']}"), ""]
    p2p = [r for r in results if r["task"].startswith("pix2pix")]
    cyc = [r for r in results if r["task"] == "cyclegan-digits"]
    if p2p:
        lines += pix2pix_table(p2p)
    if cyc:
        lines += ["", *cyclegan_table(cyc)] if p2p else cyclegan_table(cyc)
    lines += ["", ("train s: the trainer's own clock (last train line of metrics.jsonl); load: "
                   "1-minute load average at the start → end of that run.")]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pix2pix-steps", type=int, default=None,
                    help="train each pix2pix preset this many steps (default: its train.epochs)")
    ap.add_argument("--cyclegan-steps", type=int, default=None,
                    help="train cyclegan-digits this many steps (default: its train.epochs)")
    ap.add_argument("--seeds", default="0", help="e.g. 0, 0-2 or 0,3")
    ap.add_argument("--only", choices=("inpaint", "sr2x", "cyclegan"), action="append")
    ap.add_argument("--threads", type=int, default=None,
                    help="train.threads for every run and torch threads for scoring "
                    "(default: the presets' own, auto)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for every run, e.g. translation.cycle_noise=0.1 "
                    "(repeatable; use with --label)")
    ap.add_argument("--label", default="", help="tag for run dirs, strips and the results file "
                    "of runs with --set")
    ap.add_argument("--out", default="benchmarks/results/translation")
    args = ap.parse_args(argv)
    if args.overrides and not args.label:
        ap.error("--set changes the presets: name the variant with --label")
    seeds = parse_seeds(args.seeds)
    if not seeds:
        ap.error("--seeds names no seed")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    which = args.only or ["inpaint", "sr2x", "cyclegan"]
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu_model(),
        "cores": os.cpu_count(), "machine": platform.machine(),
        "python": sys.version.split()[0], "torch": torch.__version__,
        "ganforge": ganforge.__version__, "argv": sys.argv[1:],
        "seeds": seeds, "loadavg_start": load_average()}
    print(f"CPU {meta['cpu']}, load average {meta['loadavg_start']}", flush=True)
    clf = MnistClassifier()
    results = []
    for w in which:
        for seed in seeds:
            if w == "cyclegan":
                r = bench_cyclegan(seed, args.cyclegan_steps, out, args.threads, clf,
                                   args.overrides, args.label)
            else:
                r = bench_pix2pix(w, seed, args.pix2pix_steps, out, args.threads, clf,
                                  args.overrides, args.label)
            results.append(r)
            print(json.dumps(r), flush=True)
    meta["loadavg_end"] = load_average()
    text = tables(results, meta)
    tag = "" if args.only is None else "-".join(which) + "_"
    tag += f"{args.label}_" if args.label else ""
    path = out / f"results_{tag}seed{args.seeds.replace(',', '+')}.json"
    path.write_text(json.dumps({"meta": meta, "target": TARGET, "target_text": TARGET_TEXT,
                                "results": results, "table": text}, indent=1))
    print(text)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
