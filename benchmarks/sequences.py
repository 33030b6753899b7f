"""Sequence GANs: TimeGAN's discriminative and predictive scores of rgan and timegan.

For each dataset (TimeGAN's sines, statsmodels macrodata) it trains the ``rgan-sines`` spec
(adapted to the feature count) and the ``timegan`` task with the given budget, then scores
them, and real data itself, against the real sequences, next to TimeGAN's published sines row.

    python benchmarks/sequences.py                 # reduced CPU budget (see RESULTS.md)
    python benchmarks/sequences.py --rgan-steps 5000 --ae 10000 --sup 10000 --joint 10000 \\
        --repeats 10 --disc-iterations 2000 --pred-iterations 5000   # TimeGAN's full protocol

Prints a Markdown table and, with --out, appends it to a file.
"""

from __future__ import annotations

import argparse
import copy
import platform
import tempfile
import time
from pathlib import Path

import torch

import ganforge
from ganforge.config import raw_config
from ganforge.data import load_dataset
from ganforge.metrics.sequences import embedding_picture, repeated_score

PUBLISHED = {"sines": ("TimeGAN, published (Yoon et al. 2019)", "0.011 ± 0.008",
                       "0.093 ± 0.019")}


def rgan_config(dataset: str, steps: int | None, batch: int, seed: int,
                device: str = "cpu") -> dict:
    """The rgan-sines preset on ``dataset``; its widths (steps, features) follow the data."""
    raw = raw_config("rgan-sines")
    raw["name"] = f"rgan-{dataset}"
    raw["data"] = {"source": dataset, "options": {"seq_len": 24}}
    steps = steps or raw["train"]["steps"]
    raw["train"].update(steps=steps, batch_size=batch, checkpoint_every=steps)
    raw["monitor"].update(progress=False, log_every=max(1, steps // 4), sample_every=steps)
    raw["device"] = device
    raw["seed"] = seed
    return raw


def timegan_config(dataset: str, ae: int, sup: int, joint: int, batch: int, seed: int,
                   device: str = "cpu") -> dict:
    raw = copy.deepcopy(raw_config("timegan-macrodata" if dataset == "macrodata"
                                   else "timegan-sines"))
    raw["task_options"].update(autoencoder_steps=ae, supervised_steps=sup)
    total = ae + sup + joint
    raw["train"].update(steps=total, batch_size=batch, checkpoint_every=total)
    raw["monitor"].update(progress=False, log_every=max(1, total // 6), sample_every=total)
    raw["device"] = device
    raw["seed"] = seed
    return raw


def score_row(name: str, real: torch.Tensor, fake: torch.Tensor, args: argparse.Namespace,
              seconds: float | None) -> list[str]:
    d = repeated_score("discriminative", real, fake, args.repeats, args.disc_iterations)
    p = (repeated_score("predictive", real, fake, args.repeats, args.pred_iterations)
         if real.shape[2] >= 2 else None)
    return [name, f"{d.mean:.3f} ± {d.std:.3f}",
            f"{p.mean:.3f} ± {p.std:.3f}" if p else "n/a",
            "" if seconds is None else f"{seconds:.0f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["sines", "macrodata"])
    ap.add_argument("--models", nargs="+", default=["rgan", "timegan"],
                    choices=["rgan", "timegan"])
    ap.add_argument("--train-seeds", nargs="+", type=int, default=[0],
                    help="train each model once per seed (a row each)")
    ap.add_argument("--rgan-steps", type=int, default=300,
                    help="rgan generator steps (0: the preset's own, 2,000)")
    ap.add_argument("--ae", type=int, default=200, help="timegan autoencoder steps")
    ap.add_argument("--sup", type=int, default=200, help="timegan supervised steps")
    ap.add_argument("--joint", type=int, default=100, help="timegan joint steps")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--n-eval", type=int, default=2000,
                    help="real (and synthetic) sequences scored (TimeGAN: all)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--disc-iterations", type=int, default=500)
    ap.add_argument("--pred-iterations", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="where the GANs train (the scores always run on the CPU)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="train the runs under this folder (kept, e.g. to rescore them with "
                         "`ganforge seqscore RUN`) instead of a temporary one")
    ap.add_argument("--out", type=Path, default=None, help="append the table to this file")
    ap.add_argument("--pictures", type=Path, default=None, help="write PCA/t-SNE PNGs here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = args.keep or Path(tempfile.mkdtemp(prefix="seqbench-"))

    rgan_steps = args.rgan_steps or raw_config("rgan-sines")["train"]["steps"]
    parts = {"rgan": f"rgan {rgan_steps} steps",
             "timegan": f"timegan {args.ae} autoencoder + {args.sup} supervised + "
                        f"{args.joint} joint steps"}
    budget = (f"budget: {'; '.join(parts[m] for m in args.models)}; training seeds "
              f"{', '.join(map(str, args.train_seeds))}; batch {args.batch} (macrodata: 64); "
              f"scores: {args.repeats} seeds, {args.disc_iterations} / "
              f"{args.pred_iterations} iterations (TimeGAN: 10 seeds, 2,000 / 5,000), on up to "
              f"{args.n_eval} real and as many synthetic sequences; torch threads {args.threads}; "
              f"trained on {args.device}")
    lines = [budget, "",
             "| dataset | model | discriminative ↓ | predictive ↓ | train s |",
             "|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for ds in args.datasets:
        data = load_dataset(ds)
        gen = torch.Generator().manual_seed(0)
        perm = torch.randperm(len(data), generator=gen)
        k = min(args.n_eval, len(data) // 2) if ds != "sines" else args.n_eval
        real = data.x[perm[:k]]
        # Real data itself: fresh sines (another seed), or the other half of the windows.
        other = (load_dataset("sines", n=k, seed=1).x if ds == "sines"
                 else data.x[perm[k:2 * k]])
        rows = [[ds, *score_row("real data (independent draw / other half)", real, other, args,
                                None)]]
        print("| " + " | ".join(rows[-1]) + " |", flush=True)
        batch = 64 if ds == "macrodata" else args.batch
        for model in args.models:
            for seed in args.train_seeds:
                cfg = (rgan_config(ds, args.rgan_steps, batch, seed, args.device)
                       if model == "rgan" else
                       timegan_config(ds, args.ae, args.sup, args.joint, batch, seed,
                                      args.device))
                t0 = time.perf_counter()
                run = ganforge.train(cfg, run_dir=work / f"{ds}-{model}-{seed}")
                secs = time.perf_counter() - t0
                fake = ganforge.load(run.run_dir).sample(len(real), seed=1, scaled=True)
                name = model if len(args.train_seeds) == 1 else f"{model} (seed {seed})"
                rows.append([ds, *score_row(name, real, fake, args, secs)])
                print("| " + " | ".join(rows[-1]) + " |", flush=True)
                if args.pictures:
                    embedding_picture(real, fake, args.pictures / f"{ds}-{model}-{seed}.png")
        if ds in PUBLISHED:
            name, dsc, prd = PUBLISHED[ds]
            rows.append([ds, name, dsc, prd, ""])
            print("| " + " | ".join(rows[-1]) + " |", flush=True)
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    if args.out:
        header = (f"\n## Sequences (TimeGAN scores) — {time.strftime('%Y-%m-%d')}, "
                  f"{platform.machine()} CPU, {torch.get_num_threads()} thread(s)\n\n")
        with args.out.open("a") as f:
            f.write(header + "\n".join(lines) + "\n")
    print(f"runs in {work}; mean ± std over seeds", flush=True)


if __name__ == "__main__":
    main()
