"""The ``nbbanana`` command line.

Each subcommand lives next to the code it drives, in a private ``_cli_*`` module that
defines ``register(subparsers)``; this file only assembles them. Exit status: 0 when
everything succeeded, 2 when an input, a location or a request was refused (one line,
never a traceback), 3 from ``check`` when an input does not fit as it is, 1 for anything
unexpected. Python warnings are shown as one ``nbbanana: warning: …`` line each.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ._cli_common import render_error, warnings_as_lines
from ._version import __version__
from .errors import NbbananaError

# Modules that contribute subcommands, in the order `nbbanana --help` lists them.
_COMMAND_MODULES: tuple[str, ...] = (
    "nbbanana._cli_fit",
    "nbbanana._cli_emulator",
    "nbbanana._cli_batch",
    "nbbanana._cli_client",
    "nbbanana.relay._cli",
    "nbbanana._cli_models",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbbanana",
        description="Fit, generate and edit images with Google's Gemini image models "
        "(offline emulator when no API key is set).",
    )
    parser.add_argument("--version", action="version", version=f"nbbanana {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings_as_lines():
            status: int = args.handler(args)
    except (NbbananaError, OSError) as exc:
        # OSError: a location the system refused (a file where a folder should be, a
        # symlink loop, no permission); the user can fix it, so it is not a crash.
        print(f"nbbanana: {render_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nbbanana: interrupted", file=sys.stderr)
        return 130
    return status
