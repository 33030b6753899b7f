"""The ``ganforge`` command line: parse, call the API, print.

Each verb lives in a module under ``ganforge.commands`` that exposes ``register(subparsers)``;
add a module to ``COMMAND_MODULES`` to add verbs. Errors a user can cause are printed as one
paragraph without a traceback; the exit status is the error class's ``exit_code``
(``ganforge.errors``, listed in ``EXIT_STATUS`` below and in ``ganforge --help``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ganforge.errors import EXIT_CHECKPOINT, EXIT_DATA, EXIT_FAILED, EXIT_USAGE, GanforgeError
from ganforge.version import __version__

COMMAND_MODULES = [
    "ganforge.commands.core",
    "ganforge.commands.use",
    "ganforge.commands.evaluate",
    "ganforge.commands.sequences",
    "ganforge.commands.music",
    "ganforge.commands.report",
    "ganforge.commands.translate",
    "ganforge.commands.conditional",
    "ganforge.commands.tune",
]


EXIT_STATUS = f"""exit status:
  0    success
  {EXIT_FAILED}    the run failed (it diverged; a process of a distributed run was lost)
  {EXIT_USAGE}    usage: a bad option, config key or value, spec, or output path
  {EXIT_DATA}    data: a dataset is missing, unreadable or does not fit the model
  {EXIT_CHECKPOINT}    checkpoint: a run directory or checkpoint is missing, corrupt or does not
       match the model
  130  interrupted (143: SIGTERM) after writing a checkpoint; --resume continues"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"ganforge: error: {message}. Run '{self.prog} --help' for the options.\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ganforge", description="Design, train, watch and judge GANs.",
                     epilog=EXIT_STATUS, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ganforge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except GanforgeError as exc:
        sys.stderr.write(f"ganforge: error: {exc}\n")
        return int(exc.exit_code)
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a file system problem the user can fix (permissions, full disk)
        where = f" ({exc.filename})" if exc.filename else ""
        sys.stderr.write(f"ganforge: error: {exc.strerror or exc}{where}. Check the path, its "
                         f"permissions and the free disk space.\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("ganforge: interrupted.\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
