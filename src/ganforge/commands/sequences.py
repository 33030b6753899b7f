"""Sequence verb: ``ganforge seqscore RUN_DIR`` (TimeGAN's discriminative/predictive scores)."""

from __future__ import annotations

import argparse

from ganforge.errors import GanforgeError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("seqscore", help="TimeGAN's discriminative and predictive scores of a "
                                        "sequence run, plus a PCA/t-SNE picture")
    p.add_argument("run_dir")
    p.add_argument("--repeats", type=int, default=10, help="seeds to repeat each score over "
                                                           "(TimeGAN: 10)")
    p.add_argument("--disc-iterations", type=int, default=2000,
                   help="classifier training iterations (TimeGAN: 2000)")
    p.add_argument("--pred-iterations", type=int, default=5000,
                   help="predictor training iterations (TimeGAN: 5000)")
    p.add_argument("-n", type=int, default=None,
                   help="synthetic sequences (default: as many as the real data)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-picture", action="store_true", help="skip the PCA/t-SNE picture")
    p.set_defaults(func=cmd_seqscore)


def cmd_seqscore(args: argparse.Namespace) -> int:
    from ganforge.evaluate import evaluate_sequences

    for flag in ("repeats", "disc_iterations", "pred_iterations"):
        if getattr(args, flag) < 1:
            raise GanforgeError(f"--{flag.replace('_', '-')} must be >= 1, got "
                                f"{getattr(args, flag)}.")
    rec = evaluate_sequences(args.run_dir, args.repeats, args.disc_iterations, args.pred_iterations,
                       args.n, args.seed, picture=not args.no_picture)
    for name, s in rec["scores"].items():
        print(f"{name:15s} {s.mean:.4f} +- {s.std:.4f}  ({s.protocol['repeats']} seeds, "
              f"{s.protocol['iterations']} iterations)")
    if "picture" in rec:
        print(f"picture: {args.run_dir}/{rec['picture']}")
    return 0
