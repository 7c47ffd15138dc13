"""``nbbanana relay``: serve a workshop relay and manage its participants and caps.

Every subcommand works on a workshop directory (``--dir``, default ``./workshop``)
holding the ledger and the images. Management commands write to the ledger directly —
access to the directory is the facilitator's credential — and a running relay sees
their effect on the next request (SQLite in WAL mode lets both work at once). Over the
network, the same actions need the admin token (``/relay/admin/...``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._ledger import Ledger

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "relay",
        help="run a workshop relay: one key for a room of participants, with caps and a gallery",
        description="A relay the facilitator runs with the real key; participants connect "
        "with their own tokens, within caps they cannot lift. See docs/architecture.md.",
    )
    commands = parser.add_subparsers(dest="relay_command", metavar="ACTION", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--dir", default="workshop", type=Path,
                         help="workshop directory: ledger and images (default: ./workshop)")  # fmt: skip
        return sub

    serve = command("serve", "serve the relay until Ctrl-C (prints its URL first)")
    serve.add_argument("--upstream", default="gemini",
                       help="'gemini' (key from GEMINI_API_KEY), 'emulator' (an offline "
                       "rehearsal) or a Gemini-native base URL (key from GEMINI_API_KEY)")  # fmt: skip
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default: loopback only; any other needs TLS in front)")  # fmt: skip
    serve.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0 = any free)")
    serve.add_argument("--max-request-mb", type=float, default=20.0,
                       help="largest request body accepted, in MB (default: 20)")  # fmt: skip
    serve.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                       help="allow browser pages from this origin (default: none)")  # fmt: skip
    serve.add_argument("--workshop-cap", type=_dollars, default=None, metavar="USD",
                       help="cap for the whole workshop (default: keep the ledger's)")  # fmt: skip
    serve.add_argument("--latency", type=float, default=0.0,
                       help="with --upstream emulator: seconds added to every model call")  # fmt: skip
    serve.add_argument("--grace", type=float, default=30.0,
                       help="seconds requests in flight get to finish on shutdown")  # fmt: skip
    serve.set_defaults(handler=_serve)

    tokens = commands.add_parser("tokens", help="add, list or revoke participant tokens")
    token_commands = tokens.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    for name, helptext in (("add", "create participant tokens (printed once)"),
                           ("list", "participants with their spend"),
                           ("revoke", "revoke a participant's token at once")):  # fmt: skip
        sub = token_commands.add_parser(name, help=helptext, description=helptext)
        sub.add_argument("--dir", default="workshop", type=Path, help="workshop directory")
        if name == "add":
            sub.add_argument("--count", type=int, default=1)
            sub.add_argument("--cap", type=_dollars, default=None, metavar="USD",
                             help="spending cap per participant")  # fmt: skip
            sub.add_argument("--rate", type=int, default=None, metavar="N",
                             help="requests per minute per participant")  # fmt: skip
            sub.add_argument("--names", default="", help="comma-separated display names")
        if name == "revoke":
            sub.add_argument("participant", type=int, help="participant id (see tokens list)")
        sub.set_defaults(handler=_tokens)

    code = command("join-code", "create a workshop code for the join page (printed once)")
    code.add_argument("--cap", type=_dollars, default=None, metavar="USD")
    code.add_argument("--rate", type=int, default=None, metavar="N")
    code.add_argument("--uses", type=int, default=None, help="how many people may join with it")
    code.set_defaults(handler=_join_code)

    cap = command("cap", "change a cap while the workshop runs ('none' lifts it)")
    who = cap.add_mutually_exclusive_group(required=True)
    who.add_argument("--participant", type=int, metavar="ID")
    who.add_argument("--all", action="store_true", help="every participant")
    who.add_argument("--workshop", action="store_true", help="the whole workshop")
    cap.add_argument("usd", type=_dollars_or_none, metavar="USD")
    cap.set_defaults(handler=_cap)

    for name in ("pause", "resume"):
        command(name, f"{name} every participant's requests").set_defaults(handler=_pause)

    export = command("export", "write prompts, images and costs to a folder")
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(handler=_export)

    admin = command("admin-token", "make a new admin token (the old one stops working)")
    admin.set_defaults(handler=_admin_token)


def _dollars(text: str) -> float:
    try:
        value = float(text.lstrip("$"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected dollars like 2.00, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a cap cannot be negative")
    return value


def _dollars_or_none(text: str) -> float | None:
    return None if text.lower() in ("none", "off") else _dollars(text)


def _ledger(args: argparse.Namespace) -> Ledger:
    from ._ledger import Ledger

    return Ledger(args.dir)


def _serve(args: argparse.Namespace) -> int:
    from ._ledger import micros
    from ._server import Relay

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        relay = Relay(
            args.dir,
            args.upstream,
            host=args.host,
            port=args.port,
            max_request_bytes=int(args.max_request_mb * 1_000_000),
            cors_origins=args.cors_origin,
            grace=args.grace,
            latency=args.latency,
        )
    except ValueError as exc:
        print(f"nbbanana relay: {exc}", file=sys.stderr)
        return 2
    if args.workshop_cap is not None:
        relay.ledger.set_workshop_cap(micros(args.workshop_cap))

    def say(text: str) -> None:
        print(f"nbbanana relay: {text}", file=sys.stderr, flush=True)

    def announce() -> None:
        print(relay.base_url, flush=True)  # first line: the URL, for scripts
        say(f"forwarding to {relay.upstream.label}; ledger and images in {args.dir}")
        say(f"participants: base_url={relay.base_url}  join page: {relay.base_url}/join  "
            f"gallery: {relay.base_url}/gallery")  # fmt: skip
        if relay.recovered:
            say(f"{relay.recovered} request(s) were in flight at the last stop; their "
                "estimates are kept as their cost")  # fmt: skip
        if relay.exposure_warning:
            say("WARNING: " + relay.exposure_warning)
        if relay.admin_token:
            say(f"admin token (shown only now; `nbbanana relay admin-token` makes a new one): "
                f"{relay.admin_token}")  # fmt: skip
        say("Ctrl-C stops it (requests in flight finish first).")

    try:
        relay.serve_forever(on_ready=announce)
    except (RuntimeError, OSError) as exc:
        print(f"nbbanana relay: {exc}", file=sys.stderr)
        return 2
    return 0


def _tokens(args: argparse.Namespace) -> int:
    from ._ledger import micros, usd

    ledger = _ledger(args)
    if args.tokens_command == "add":
        names = [n.strip() for n in args.names.split(",") if n.strip()]
        made = ledger.add_participants(
            max(args.count, len(names)),
            cap_micros=None if args.cap is None else micros(args.cap),
            rate_per_min=args.rate,
            names=names,
        )
        print("id\tname\ttoken")
        for participant, token in made:
            print(f"{participant.id}\t{participant.name}\t{token}")
        print(f"nbbanana relay: {len(made)} token(s); they are shown only now.", file=sys.stderr)
    elif args.tokens_command == "list":
        print("id\tname\tcap\tspent\trequests\tstate")
        for p in ledger.participants():
            cap = "none" if p.cap_micros is None else usd(p.cap_micros)
            state = "revoked" if p.revoked else "active"
            print(f"{p.id}\t{p.name}\t{cap}\t{usd(p.spent_micros)}\t{p.requests}\t{state}")
    else:
        try:
            p = ledger.revoke(args.participant)
        except KeyError as exc:
            print(f"nbbanana relay: {exc.args[0]}", file=sys.stderr)
            return 2
        print(f"revoked participant {p.id} ({p.name})")
    return 0


def _join_code(args: argparse.Namespace) -> int:
    from ._ledger import micros

    code = _ledger(args).add_join_code(
        cap_micros=None if args.cap is None else micros(args.cap),
        rate_per_min=args.rate,
        uses=args.uses,
    )
    print(code)
    return 0


def _cap(args: argparse.Namespace) -> int:
    from ._ledger import micros, usd

    ledger = _ledger(args)
    value = None if args.usd is None else micros(args.usd)
    shown = "no cap" if value is None else usd(value)
    if args.workshop:
        ledger.set_workshop_cap(value)
        print(f"workshop cap: {shown}")
    elif args.all:
        print(f"{ledger.set_all_caps(value)} participant(s): {shown} each")
    else:
        try:
            p = ledger.set_cap(args.participant, value)
        except KeyError as exc:
            print(f"nbbanana relay: {exc.args[0]}", file=sys.stderr)
            return 2
        print(f"participant {p.id} ({p.name}): {shown}")
    return 0


def _pause(args: argparse.Namespace) -> int:
    _ledger(args).set_paused(args.relay_command == "pause")
    print(f"workshop {'paused' if args.relay_command == 'pause' else 'resumed'}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from ._export import export

    summary = export(_ledger(args), args.out)
    print(
        f"exported {summary['requests']} request(s), ${summary['spent_usd']:.4f} spent, to {args.out}"
    )
    return 0


def _admin_token(args: argparse.Namespace) -> int:
    print(_ledger(args).rotate_admin_token())
    print("nbbanana relay: the new admin token is shown only now.", file=sys.stderr)
    return 0
