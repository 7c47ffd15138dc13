"""``nbbanana models``: the image models an endpoint serves, and where each fact comes from.

Asks the service (``models.list``, cached for a day; ``--refresh`` asks again) through
:func:`nbbanana.connect`, so it lists Google's models when an API key is set, the models
of ``--base-url`` when given, and the offline emulator's otherwise. ``--json`` prints the
whole table, including each fact's source, for scripts.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the image models the endpoint serves (status, sizes, limits, prices)",
        description="List the image models the endpoint serves, merged with nbbanana's "
        "table: available, new to nbbanana, retired (with successor), unavailable. Offline "
        "emulator unless an API key is set or --base-url is given.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON, with each fact's source")
    parser.add_argument("--base-url", help="a Gemini-compatible endpoint: an emulator or a proxy")
    parser.add_argument(
        "--offline", action="store_true", help="use the offline emulator even with a key"
    )
    parser.add_argument(
        "--refresh", action="store_true", help="ask the service again (ignore the day's cache)"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from ._connect import connect  # loaded when the command runs: `--help` stays fast

    with connect(base_url=args.base_url, offline=True if args.offline else None) as session:
        catalogue = session.models(refresh=args.refresh)
    if args.json:
        print(json.dumps(catalogue.to_json(), indent=2, ensure_ascii=False))
    else:
        print(catalogue)
    return 0
