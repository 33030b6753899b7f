"""Image-to-image translation benchmark: pix2pix (inpainting, 2x super-resolution) and CycleGAN
(scikit-learn digits <-> MNIST) on a stated CPU budget.

    python benchmarks/translation.py --pix2pix-steps 600 --cyclegan-steps 600 \\
        --out benchmarks/results/translation

pix2pix: PSNR / SSIM / L1 (on a [0, 1] pixel scale) of the outputs against the held-out digits
(MNIST test split, 1,000), beside the trivial baselines (the masked input; the bicubic upscale),
and the accuracy of a digit classifier on inputs, outputs and targets.
CycleGAN: label preservation (classifier accuracy on the translations against the source
labels) in both directions, next to the accuracy on the untranslated source images, and FID of
the translations against the target domain.

Classifiers: the ``mnist`` extractor of ``ganforge.metrics.features`` (``.logits``) when it is
installed (the Evaluation branch), else a logistic regression on MNIST's 4,000 training digits;
for domain a (scikit-learn digits upscaled to 28x28) always a logistic regression on its 1,437
training digits. FID needs ``ganforge.metrics.fid`` (the Evaluation branch) and is skipped
without it. Sample strips (input | output | target) are written as PNG next to results.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import ganforge
from ganforge.data import load_dataset
from ganforge.metrics.image_quality import quality_table
from ganforge.tasks.translation import strip_picture, translate_tensor

try:  # the Evaluation branch: an MNIST classifier and FID on its features
    from ganforge.metrics import fid as _fid
    from ganforge.metrics.features import get_extractor as _get_extractor
except ImportError:  # not merged yet: fall back to a local classifier, skip FID
    _fid = None
    _get_extractor = None


class LogRegClassifier:
    """Logistic regression on raw pixels in [-1, 1] (a cheap, fixed, documented judge)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, name: str) -> None:
        from sklearn.linear_model import LogisticRegression

        self.name = name
        self.model = LogisticRegression(max_iter=300, C=0.1)
        self.model.fit(x.flatten(1).numpy(), y.numpy())

    def predict(self, x: torch.Tensor) -> np.ndarray:
        return self.model.predict(x.flatten(1).numpy())


class ExtractorClassifier:
    def __init__(self) -> None:
        self.name = "ganforge mnist extractor"
        self.ext = _get_extractor("mnist")

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> np.ndarray:
        return self.ext.logits(x).argmax(1).cpu().numpy()


def mnist_classifier() -> LogRegClassifier | ExtractorClassifier:
    if _get_extractor is not None:
        return ExtractorClassifier()
    m = load_dataset("mnist", split="train")
    return LogRegClassifier(m.x, m.y, "logistic regression on MNIST train (4,000)")


def accuracy(clf, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((clf.predict(x) == y.numpy()).mean())


def train_run(preset: str, steps: int, out: Path, extra: list[str]) -> tuple[object, float]:
    run_dir = out / "runs" / preset
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    run = ganforge.train(preset, run_dir=run_dir, overrides=[
        "monitor.progress=false", "train.epochs=null", f"train.steps={steps}",
        "monitor.sample_every=100000", "train.checkpoint_every=100000", *extra])
    return run, time.perf_counter() - t0


def bench_pix2pix(kind: str, steps: int, out: Path, clf) -> dict:
    preset = f"pix2pix-{kind}"
    run, secs = train_run(preset, steps, out, [])
    test = load_dataset(f"mnist-{kind}", split="test")
    a, b = test.x[:, :1], test.x[:, 1:]
    y = translate_tensor(run.generator, a)
    pick = torch.arange(10) * (len(a) // 10)  # the test split is sorted by class: one per digit
    strip_picture([a[pick], y[pick], b[pick]], out / f"{preset}_strip.png")
    base = "masked input" if kind == "inpaint" else "bicubic upscale"
    return {"task": preset, "steps": steps, "train_wall_s": round(secs, 1),
            "baseline": base, "baseline_metrics": quality_table(a, b),
            "output_metrics": quality_table(y, b),
            "acc_input": accuracy(clf, a, test.y), "acc_output": accuracy(clf, y, test.y),
            "acc_target": accuracy(clf, b, test.y), "classifier": clf.name}


def bench_cyclegan(steps: int, out: Path, clf_b) -> dict:
    from ganforge.tasks.translation import load_translator

    preset = "cyclegan-digits"
    _, secs = train_run(preset, steps, out, [])
    run_dir = out / "runs" / preset
    g_ab, _, _ = load_translator(run_dir, "a2b")
    g_ba, _, _ = load_translator(run_dir, "b2a")
    da_tr = load_dataset("digits", split="train", image_size=(1, 28, 28))
    da = load_dataset("digits", split="test", image_size=(1, 28, 28))
    db = load_dataset("mnist", split="test")
    clf_a = LogRegClassifier(da_tr.x, da_tr.y, "logistic regression on upscaled digits train")
    fake_b = translate_tensor(g_ab, da.x)
    fake_a = translate_tensor(g_ba, db.x)
    strip_picture([da.x[:10], fake_b[:10], translate_tensor(g_ba, fake_b[:10])],
                  out / f"{preset}_a2b_strip.png")
    strip_picture([db.x[:10], fake_a[:10], translate_tensor(g_ab, fake_a[:10])],
                  out / f"{preset}_b2a_strip.png")
    res = {"task": preset, "steps": steps, "train_wall_s": round(secs, 1),
           "a2b_acc_source_raw": accuracy(clf_b, da.x, da.y),
           "a2b_acc_translated": accuracy(clf_b, fake_b, da.y),
           "b2a_acc_source_raw": accuracy(clf_a, db.x, db.y),
           "b2a_acc_translated": accuracy(clf_a, fake_a, db.y),
           "acc_b_on_b_test": accuracy(clf_b, db.x, db.y),
           "acc_a_on_a_test": accuracy(clf_a, da.x, da.y),
           "classifier_b": clf_b.name, "classifier_a": clf_a.name,
           "cycle_l1_a": float((translate_tensor(g_ba, fake_b) - da.x).abs().mean() / 2),
           "cycle_l1_b": float((translate_tensor(g_ab, fake_a) - db.x).abs().mean() / 2)}
    if _fid is not None:
        res["fid_a2b_translated"] = float(_fid(db.x, fake_b, extractor="mnist"))
        res["fid_a2b_raw"] = float(_fid(db.x, da.x, extractor="mnist"))
    else:
        res["fid"] = "skipped: ganforge.metrics.fid not installed (Evaluation branch)"
    return res


def print_tables(results: list[dict]) -> str:
    lines = []
    p2p = [r for r in results if r["task"].startswith("pix2pix")]
    if p2p:
        lines += ["| task | steps | train wall s | model | PSNR dB | SSIM | L1 | classifier acc |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in p2p:
            bm, om = r["baseline_metrics"], r["output_metrics"]
            lines.append(f"| {r['task']} | {r['steps']} | {r['train_wall_s']} | {r['baseline']} | "
                         f"{bm['psnr']:.2f} | {bm['ssim']:.3f} | {bm['l1']:.4f} | "
                         f"{r['acc_input']:.3f} |")
            lines.append(f"| | | | pix2pix output | {om['psnr']:.2f} | {om['ssim']:.3f} | "
                         f"{om['l1']:.4f} | {r['acc_output']:.3f} |")
            lines.append(f"| | | | (target) | | | | {r['acc_target']:.3f} |")
    for r in results:
        if r["task"] != "cyclegan-digits":
            continue
        lines += ["", f"CycleGAN {r['steps']} steps, {r['train_wall_s']} s wall",
                  ("| direction | classifier | acc. on raw source | acc. on translation | "
                   "acc. on real target-domain test |"), "|---|---|---|---|---|",
                  (f"| digits -> MNIST | {r['classifier_b']} | {r['a2b_acc_source_raw']:.3f} | "
                   f"{r['a2b_acc_translated']:.3f} | {r['acc_b_on_b_test']:.3f} |"),
                  (f"| MNIST -> digits | {r['classifier_a']} | {r['b2a_acc_source_raw']:.3f} | "
                   f"{r['b2a_acc_translated']:.3f} | {r['acc_a_on_a_test']:.3f} |"),
                  f"cycle L1 ([0,1] scale): a {r['cycle_l1_a']:.4f}, b {r['cycle_l1_b']:.4f}"]
        if "fid_a2b_translated" in r:
            lines.append(f"FID (mnist features) vs MNIST test: translations "
                         f"{r['fid_a2b_translated']:.2f}, raw digits {r['fid_a2b_raw']:.2f}")
        else:
            lines.append(f"FID: {r['fid']}")
    text = "\n".join(lines)
    print(text)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pix2pix-steps", type=int, default=600)
    ap.add_argument("--cyclegan-steps", type=int, default=600)
    ap.add_argument("--only", choices=("inpaint", "sr2x", "cyclegan"), action="append")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/translation")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    which = args.only or ["inpaint", "sr2x", "cyclegan"]
    clf = mnist_classifier()
    results = []
    for w in which:
        if w == "cyclegan":
            results.append(bench_cyclegan(args.cyclegan_steps, out, clf))
        else:
            results.append(bench_pix2pix(w, args.pix2pix_steps, out, clf))
        print(json.dumps(results[-1]), flush=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.machine()} CPU, torch threads {args.threads}",
            "python": sys.version.split()[0], "torch": torch.__version__}
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print_tables(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
