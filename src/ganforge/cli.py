"""The ``ganforge`` command line: parse, call the API, print.

Each verb lives in a module under ``ganforge.commands`` that exposes ``register(subparsers)``;
add a module to ``COMMAND_MODULES`` to add verbs. Errors a user can cause are printed as one
paragraph without a traceback, with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ganforge.errors import GanforgeError
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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"ganforge: error: {message}. Run '{self.prog} --help' for the options.\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ganforge", description="Design, train, watch and judge GANs.")
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
        return int(getattr(exc, "exit_code", 2))
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a file system problem the user can fix (permissions, full disk)
        where = f" ({exc.filename})" if exc.filename else ""
        sys.stderr.write(f"ganforge: error: {exc.strerror or exc}{where}. Check the path, its "
                         f"permissions and the free disk space.\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("ganforge: interrupted.\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
