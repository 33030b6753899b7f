"""Monitoring verbs: report, compare."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write a run's self-contained report.html")
    p.add_argument("run_dir")
    p.add_argument("--out", help="output file (default RUN_DIR/report.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="final metrics side by side and overlaid curves of runs")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", required=True, help="output file: .png or .html")
    p.set_defaults(func=cmd_compare)


def cmd_report(args: argparse.Namespace) -> int:
    from ganforge.monitor.report import write_report

    if args.out is not None and not str(args.out).lower().endswith((".html", ".htm")):
        from ganforge.errors import GanforgeError

        raise GanforgeError(f"--out '{args.out}' must be an .html file.")
    print(f"wrote {write_report(args.run_dir, args.out)}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from ganforge.monitor.compare import compare_runs

    print(f"wrote {compare_runs(args.run_dirs, args.out)}")
    return 0
