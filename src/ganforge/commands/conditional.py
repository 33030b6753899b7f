"""Conditional verbs: ``augment`` (labelled synthetic data), and the class options of ``sample``
(``--label K``, ``--grid-by-class``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ganforge.errors import GanforgeError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("augment", help="write labelled synthetic samples of a conditional run",
                       description="Generate --per-class samples of every class from a "
                       "conditional run and write them with their labels: FILE.npz (arrays x "
                       "uint8 (N, C, H, W) and y int64) or DIR (DIR/<class>/<index>.png and "
                       "DIR/labels.csv).")
    p.add_argument("run_dir")
    p.add_argument("--per-class", type=int, required=True, metavar="N",
                   help="samples per class")
    p.add_argument("--out", required=True, help="FILE.npz or a directory")
    p.add_argument("--seed", type=int, default=0, help="latent seed")
    p.add_argument("--classes", default=None,
                   help="comma-separated classes to generate (default: all)")
    p.set_defaults(func=cmd_augment)


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
            raise GanforgeError("--grid-by-class does not take --truncation.")
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
