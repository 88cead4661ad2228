"""`msdetr` command line: one sub-command per module in `msdetr.commands`.

Each command module defines `register(subparsers)` which adds its parser and
sets `func(args) -> int` as the handler.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from msdetr import __version__
from msdetr.errors import MsdetrError

# Order is the order in `msdetr --help`.
COMMAND_MODULES = [
    "msdetr.commands.train",
    "msdetr.commands.eval",
    "msdetr.commands.compare",
    "msdetr.commands.convert",
    "msdetr.commands.predict",
    "msdetr.commands.candidates",
    "msdetr.commands.export",
    "msdetr.commands.average",
    "msdetr.commands.data",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msdetr",
        description="Train and run DETR-family detectors with MS-DETR mixed supervision.",
    )
    parser.add_argument("--version", action="version", version=f"msdetr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except MsdetrError as err:
        print(f"msdetr {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"msdetr {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
