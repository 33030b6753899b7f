"""The text option of ``sample``: ``ganforge sample RUN --text "a thick slanted seven" -n 16``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ganforge.errors import GanforgeError


def sample_text(run: Any, args: argparse.Namespace, extra: dict[str, Any]) -> int:
    """Write ``-n`` images of ``--text`` from a text-to-image (stackgan) run."""
    if not hasattr(run, "sample_texts"):
        raise GanforgeError(f"--text applies to text-to-image runs (task stackgan); "
                            f"'{args.run_dir}' has task '{run.config.task}'.")
    extra = dict(extra)
    ca_scale = extra.pop("truncation", None)
    if extra.pop("truncation_method", "scale") != "scale":
        raise GanforgeError("text-to-image runs truncate by scaling the text code's noise: "
                            "use --truncation-method scale.")
    if extra:
        raise GanforgeError("--text cannot be combined with --where or --rejection.")
    if args.label is not None or args.grid_by_class:
        raise GanforgeError("--text cannot be combined with --label or --grid-by-class; the "
                            "text names the digit.")
    if args.text is not None and args.text.strip():
        unknown = run.unknown_words(args.text)
        if unknown:
            sys.stderr.write(f"note: the text encoder does not know {', '.join(unknown)}; "
                             f"read as <unk>.\n")
    samples = run.sample_texts([args.text] * args.n, seed=args.seed, ca_scale=ca_scale)
    if getattr(args, "as_folder", False):
        from ganforge.commands.core import save_sample_files

        return save_sample_files(samples, Path(args.out), run.data_kind)
    out = run.save_samples(samples, Path(args.out))
    print(f"wrote {args.n} samples of \"{args.text.strip()}\" to {out}")
    return 0
