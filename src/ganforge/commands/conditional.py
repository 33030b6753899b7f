"""Conditional verbs: ``augment`` (labelled synthetic data), and the class options of ``sample``
(``--label K``, ``--grid-by-class``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ganforge.errors import GanforgeError
from ganforge.fileio import atomic_write_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("augment", help="write labelled synthetic samples of a conditional run",
                       description="Generate --per-class samples of every class from a "
                       "conditional run and write them with their labels: FILE.npz (arrays x "
                       "uint8 (N, C, H, W) and y int64) or DIR (DIR/<class>/<index>.png and "
                       "DIR/labels.csv).")
    p.add_argument("run_dir")
    p.add_argument("--per-class", type=int, default=None, metavar="N",
                   help="samples per class (required unless --validate)")
    p.add_argument("--out", default=None,
                   help="FILE.npz or a directory; with --validate, a .json for the results")
    p.add_argument("--seed", type=int, default=0, help="latent seed")
    p.add_argument("--classes", default=None,
                   help="comma-separated classes to generate (default: all)")
    p.add_argument("--validate", action="store_true",
                   help="measure whether the synthetic data helps a classifier: real alone vs "
                        "real + synthetic per ratio, confidence filter and schedule, on "
                        "held-out data")
    p.add_argument("--ratios", default="0.5,1,2,4",
                   help="--validate: synthetic samples per real one (comma-separated)")
    p.add_argument("--filters", default="0,0.9",
                   help="--validate: keep synthetic samples the real-data classifier gives "
                        "their label at least this probability (0: all)")
    p.add_argument("--schedules", default="mixed,synthetic-first",
                   help="--validate: how the classifier meets the synthetic samples: mixed "
                        "(pooled with the real ones) and/or synthetic-first (half the steps on "
                        "synthetic alone, then the real data)")
    p.add_argument("--seeds", default="0,1,2", help="--validate: classifier seeds")
    p.add_argument("--clf-steps", type=int, default=300,
                   help="--validate: classifier training steps (batch 64)")
    p.set_defaults(func=cmd_augment)


def _numbers(text: str, flag: str, kind: type = float) -> list[Any]:
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise GanforgeError(f"{flag} takes comma-separated numbers, got '{text}'.") from None


def cmd_validate(args: argparse.Namespace) -> int:
    import json

    from ganforge.apps.augment_check import check_settings, report_lines, validate_augmentation

    if args.out is not None and not args.out.lower().endswith(".json"):
        raise GanforgeError(f"--out '{args.out}': with --validate, give a .json file for the "
                            f"results.")
    if args.clf_steps < 1:
        raise GanforgeError(f"--clf-steps must be >= 1, got {args.clf_steps}.")
    ratios = _numbers(args.ratios, "--ratios")
    filters = _numbers(args.filters, "--filters")
    seeds = _numbers(args.seeds, "--seeds", int)
    schedules = [s.strip() for s in args.schedules.split(",") if s.strip()]
    check_settings(ratios, filters, seeds, schedules)
    run = _conditional_run(args.run_dir)
    result = validate_augmentation(run, ratios, filters, seeds, steps=args.clf_steps,
                                   schedules=schedules)
    print("\n".join(report_lines(result)))
    if args.out is not None:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(result, indent=1))
        print(f"wrote {out}")
    return 0


def _conditional_run(run_dir: str) -> Any:
    from ganforge import api

    run = api.load(run_dir)
    if not hasattr(run, "num_classes"):
        raise GanforgeError(f"'{run_dir}' is not a conditional run (its task is "
                            f"'{run.config.task}'); train one with task: conditional, e.g. "
                            f"the cgan-mnist preset.")
    return run


def cmd_augment(args: argparse.Namespace) -> int:
    from ganforge.apps.augment import augment

    if args.validate:
        return cmd_validate(args)
    if args.per_class is None or args.out is None:
        raise GanforgeError("augment needs --per-class N and --out FILE.npz|DIR (or --validate "
                            "to measure whether the synthetic data helps).")
    if args.per_class < 1:
        raise GanforgeError(f"--per-class must be >= 1, got {args.per_class}.")
    classes = None
    if args.classes:
        try:
            classes = [int(c) for c in args.classes.split(",") if c.strip()]
        except ValueError:
            raise GanforgeError(f"--classes takes comma-separated integers, got "
                                f"'{args.classes}'.") from None
    run = _conditional_run(args.run_dir)
    out, n = augment(run, args.per_class, args.out, seed=args.seed, classes=classes)
    print(f"wrote {n} labelled samples to {out}")
    return 0


def sample_conditional(run: Any, args: argparse.Namespace, extra: dict[str, Any]) -> int:
    """``ganforge sample RUN --label K`` / ``--grid-by-class``."""
    if not hasattr(run, "num_classes"):
        raise GanforgeError("--label and --grid-by-class apply to conditional runs (task "
                            "conditional), e.g. one trained from the cgan-mnist preset.")
    if args.label is not None and args.grid_by_class:
        raise GanforgeError("give --label or --grid-by-class, not both.")
    out = Path(args.out)
    as_folder = getattr(args, "as_folder", False)
    if args.grid_by_class:
        if extra:
            raise GanforgeError("--grid-by-class does not take --truncation or --rejection.")
        x = run.grid_by_class(args.n, seed=args.seed)
        if as_folder:  # class_K_NNNNN.png: sample NNNNN of class K (the same latent per NNNNN)
            from ganforge.commands.core import save_sample_files

            names = [f"class_{k}_{i:05d}" for k in range(run.num_classes)
                     for i in range(args.n)]
            return save_sample_files(x, out, run.data_kind, names)
        if out.suffix.lower() == ".png" and run.data_kind == "image":
            from ganforge.monitor.images import image_grid

            out.parent.mkdir(parents=True, exist_ok=True)
            image_grid(x, nrow=args.n).save(out)
        else:
            out = run.save_samples(x, out)
        print(f"wrote {args.n} samples of each of {run.num_classes} classes (one class per "
              f"row) to {out}")
        return 0
    x = run.sample(args.n, seed=args.seed, labels=args.label, **extra)
    if as_folder:
        from ganforge.commands.core import save_sample_files

        return save_sample_files(x, out, run.data_kind)
    out = run.save_samples(x, out)
    print(f"wrote {args.n} samples of class {args.label} to {out}")
    return 0
