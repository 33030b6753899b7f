"""Sequence verb: ``ganforge seqscore RUN_DIR`` (TimeGAN's discriminative/predictive scores)."""

from __future__ import annotations

import argparse
from typing import Any

from ganforge.errors import GanforgeError

FULL = (10, 2000, 5000)  # TimeGAN's protocol: seeds, classifier and predictor iterations
QUICK = (3, 500, 1000)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("seqscore", help="TimeGAN's discriminative and predictive scores of a "
                                        "sequence run, plus a PCA/t-SNE picture")
    p.add_argument("run_dir")
    p.add_argument("--repeats", type=int, default=None, help="seeds to repeat each score over "
                                                             "(TimeGAN: 10)")
    p.add_argument("--disc-iterations", type=int, default=None,
                   help="classifier training iterations (TimeGAN: 2000)")
    p.add_argument("--pred-iterations", type=int, default=None,
                   help="predictor training iterations (TimeGAN: 5000)")
    p.add_argument("--quick", action="store_true",
                   help=f"a quick look ({QUICK[0]} seeds, {QUICK[1]}/{QUICK[2]} iterations), "
                        f"not comparable with published scores (it says so)")
    p.add_argument("--no-reference", action="store_true",
                   help="skip the real-vs-real row (half of the real set against the other)")
    p.add_argument("-n", type=int, default=None,
                   help="synthetic sequences (default: as many as the real data)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-picture", action="store_true", help="skip the PCA/t-SNE picture")
    p.set_defaults(func=cmd_seqscore)


def one_class_note(label: str, score: Any) -> str:
    """The warning for classifier seeds that called every test sequence one class, or ""."""
    stuck = score.protocol.get("one_class_repeats") or []
    if not stuck:
        return ""
    rest = [v for i, v in enumerate(score.values) if i not in stuck]
    mean = f"{sum(rest) / len(rest):.4f}" if rest else "none: no seed trained"
    return (f"  note: {label}{len(stuck)} of {len(score.values)} classifier seeds called every "
            f"test sequence one class (score exactly 0: the classifier did not train, not that "
            f"the sets are alike); the mean over the other seeds is {mean}. More seeds "
            f"(--repeats) or iterations (--disc-iterations) give a firmer number.")


def cmd_seqscore(args: argparse.Namespace) -> int:
    from ganforge.evaluate import evaluate_sequences

    for flag, full, quick in zip(("repeats", "disc_iterations", "pred_iterations"), FULL, QUICK,
                                 strict=True):
        if getattr(args, flag) is None:
            setattr(args, flag, quick if args.quick else full)
        if getattr(args, flag) < 1:
            raise GanforgeError(f"--{flag.replace('_', '-')} must be >= 1, got "
                                f"{getattr(args, flag)}.")
    protocol = (args.repeats, args.disc_iterations, args.pred_iterations)
    if protocol != FULL:
        print(f"{'quick' if args.quick else 'custom'} protocol ({protocol[0]} seeds, "
              f"{protocol[1]}/{protocol[2]} iterations): not TimeGAN's ({FULL[0]} seeds, "
              f"{FULL[1]}/{FULL[2]}), so not comparable with published scores")
    rec = evaluate_sequences(args.run_dir, args.repeats, args.disc_iterations, args.pred_iterations,
                             args.n, args.seed, picture=not args.no_picture,
                             reference=not args.no_reference)
    ref = rec.get("reference_scores", {})
    for name, s in rec["scores"].items():
        beside = (f"   real vs real {ref[name].mean:.4f} +- {ref[name].std:.4f}"
                  if name in ref else "")
        print(f"{name:15s} {s.mean:.4f} +- {s.std:.4f}  ({s.protocol['repeats']} seeds, "
              f"{s.protocol['iterations']} iterations){beside}")
        for label, score in (("", s), ("real vs real: ", ref.get(name))):
            if score is not None and (note := one_class_note(label, score)):
                print(note)
    if "length_ks" in rec:  # variable-length runs
        rvr = rec.get("real_vs_real", {}).get("length_ks")
        beside = f"   real vs real {rvr:.4f}" if rvr is not None else ""
        print(f"{'length_ks':15s} {rec['length_ks']:.4f}  (KS statistic of the sequence "
              f"lengths){beside}")
    if "picture" in rec:
        print(f"picture: {args.run_dir}/{rec['picture']}")
    return 0
