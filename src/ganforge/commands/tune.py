"""The ``tune`` verb: a hyperparameter search over a config with Optuna (docs/tune.md)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune", help="search hyperparameters (Optuna): trials, pruning, best.yaml, report",
        description="Train one run per trial with config keys sampled from --space, score each "
        "by a metric logged during training (monitor.eval_every), prune poor trials early and "
        "write STUDY_DIR/best.yaml and STUDY_DIR/tune_report.html. Run the same command again "
        "to continue a stopped study.")
    p.add_argument("config", help="preset name or YAML file (the base of every trial)")
    p.add_argument("--space", required=True, metavar="SPACE.yaml",
                   help="config keys -> distributions, e.g. 'optim.g.lr: {loguniform: "
                        "[1.0e-5, 1.0e-2]}' (docs/tune.md)")
    p.add_argument("--trials", type=int, required=True, metavar="N",
                   help="trials in the study in total (finished, pruned or diverged)")
    p.add_argument("--metric", required=True, metavar="NAME",
                   help="score from the eval records: fid, kid, is, precision, recall, "
                        "density, coverage, modes, high_quality, reverse_kl, ...")
    p.add_argument("--direction", choices=("minimize", "maximize"), default=None,
                   help="default: the metric's own (fid: minimize, modes: maximize)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="fix a config value for every trial, e.g. --set train.steps=500")
    p.add_argument("--study-dir", default=None, metavar="DIR",
                   help="trials, journal, best.yaml and report (default studies/NAME)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="a database shared by several machines, e.g. "
                        "postgresql://user:pass@host:5432/db (default: DIR/study.journal)")
    p.add_argument("--workers", type=int, default=1, metavar="K",
                   help="trial processes on this machine sharing the study (default 1)")
    p.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median",
                   help="stop poor trials at an evaluation (default median)")
    p.add_argument("--sampler", choices=("tpe", "random"), default="tpe",
                   help="how trials pick parameters: tpe (default; random for the first "
                        "few trials) or random search")
    p.set_defaults(func=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> int:
    from ganforge.tune import tune

    result = tune(args.config, args.space, trials=args.trials, metric=args.metric,
                  direction=args.direction, overrides=args.overrides,
                  study_dir=args.study_dir, storage=args.storage, workers=args.workers,
                  pruner=args.pruner, sampler=args.sampler)
    return 0 if result.best_yaml is not None else 1
