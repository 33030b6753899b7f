"""Where does a TimeGAN run's discriminative score come from? (issue 25, diagnostic)

TimeGAN's samples are R(S(G(z))): whatever the recovery R cannot reproduce, no generator can.
For each trained ``timegan`` run this script scores, with TimeGAN's post-hoc GRU classifier
(``metrics.sequences.discriminative_score``, 2,000 iterations, ``--repeats`` classifier seeds),
against the run's own training sines:

- ``R(E(x))``: an independent draw of real sines passed through the run's embedder and
  recovery (the autoencoder alone; no G, no S);
- ``samples``: the run's samples (``run.sample(scaled=True)``, as ``ganforge seqscore``);

and, once, two controls: an independent draw of real sines (the classifier's floor), and that
draw plus i.i.d. Gaussian noise of std ``--noise`` (a step-to-step jitter the size of the
samples' own, to see whether the classifier reads jitter). ``d2`` is the std of each set's
second differences along time (real sines: about 0.0013).

    heavy --threads 2 python benchmarks/timegan_autoencoder.py RUN [RUN ...] \\
        --out benchmarks/results/sequences/timegan-sines-autoencoder.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ganforge import api
from ganforge.checkpoint import latest_checkpoint, load_checkpoint, load_module_weights
from ganforge.config import load_config
from ganforge.data.sequences import sines
from ganforge.metrics.sequences import discriminative_score
from ganforge.tasks.timegan import build_modules


def second_difference_std(x: torch.Tensor) -> float:
    return float(np.diff(np.asarray(x), 2, axis=1).std())


def score(name: str, real: torch.Tensor, fake: torch.Tensor, repeats: int) -> dict:
    start = time.time()
    vals = [discriminative_score(real, fake, seed=i) for i in range(repeats)]
    row = {"name": name, "disc": float(np.mean(vals)), "sd": float(np.std(vals)), "each": vals,
           "d2": second_difference_std(fake), "s": time.time() - start}
    print(f"{name:40s} discriminative {row['disc']:.3f} +- {row['sd']:.3f}   "
          f"second-diff std {row['d2']:.4f}", flush=True)
    return row


def reconstruct(run_dir: Path, x: torch.Tensor) -> torch.Tensor:
    """R(E(x)) with the run's latest checkpoint, in the run's scaled units."""
    _, weights, _ = load_checkpoint(latest_checkpoint(run_dir))
    cfg = load_config(run_dir / "config.yaml")
    mods = build_modules(cfg, tuple(x.shape[1:]))
    for name, module in mods.items():
        load_module_weights(module, weights, name, run_dir)
        module.eval()
    sampler, embedder = mods["generator"], mods["embedder"]
    with torch.no_grad():
        return sampler.denormalize(sampler.recovery(embedder(sampler.normalize(x))))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="trained timegan run directories (sines)")
    ap.add_argument("--repeats", type=int, default=5, help="classifier seeds per row")
    ap.add_argument("--noise", type=float, default=0.0057,
                    help="std of the i.i.d. noise control (0.0057: second differences ~0.014)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    real = sines(seed=0).x.float()   # the runs' training data, what seqscore compares with
    other = sines(seed=5).x.float()  # an independent draw
    noise = torch.randn(other.shape, generator=torch.Generator().manual_seed(1))
    rows = [score("real vs independent real", real, other, args.repeats),
            score(f"real + iid noise sd {args.noise}", real, other + args.noise * noise,
                  args.repeats)]
    for run_dir in args.runs:
        rows.append(score(f"{run_dir.name}: R(E(x))", real, reconstruct(run_dir, other),
                          args.repeats))
        fake = api.load(run_dir).sample(len(real), seed=1, scaled=True)
        rows.append(score(f"{run_dir.name}: samples", real, torch.as_tensor(fake).float(),
                          args.repeats))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
