"""``nbbanana emulator``: run the offline Gemini API emulator until stopped.

The first line printed is the base URL (flushed at once), so scripts and tests can read
it and point ``--base-url`` or ``HttpOptions(base_url=...)`` at the server. SIGINT and
SIGTERM stop it cleanly with exit status 0. ``--log`` prints one line per request to
stderr, so a teacher can watch a class's traffic; it never shows a key (the query, where
``?key=`` goes, and the headers are left out).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .models import PROFILES


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "emulator",
        help="run the offline Gemini API emulator (prints its base URL first)",
        description="Serve an offline emulator of the Gemini image API on loopback until "
        "stopped (Ctrl-C). Images are synthetic and marked 'offline emulator'.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=0, help="port (default: 0 = any free port)")
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS",
                        help="delay added to every model call")  # fmt: skip
    parser.add_argument("--fault-rate", type=float, default=0.0, metavar="R",
                        help="fraction of model calls that fail with a transient fault (0-1)")  # fmt: skip
    parser.add_argument("--faults", default=None, metavar="NAMES",
                        help="comma-separated faults --fault-rate draws from "
                        "(default: 429,500,503,504,timeout,reset)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed for images, ids and faults")
    parser.add_argument("--request-limit", type=int, default=None, metavar="BYTES",
                        help="refuse request bodies larger than this (default: the profile's)")  # fmt: skip
    parser.add_argument("--profile", default="gemini", choices=sorted(PROFILES),
                        help="endpoint whose limits and error wording to imitate")  # fmt: skip
    parser.add_argument("--batch-delay", type=float, default=0.05, metavar="SECONDS",
                        help="time a batch job stays pending before it runs")  # fmt: skip
    parser.add_argument("--batch-item-seconds", type=float, default=0.0, metavar="SECONDS",
                        help="time a running batch job spends on each request")  # fmt: skip
    parser.add_argument("--log", action="store_true",
                        help="print one line per request to stderr: time, method, path, "
                        "status, bytes in and out, milliseconds (never a key)")  # fmt: skip
    parser.add_argument("--bandwidth", default=None, metavar="RATE",
                        help="uplink speed requests are read at, e.g. 10mbit, 2.5mbit, 500kbit "
                        "or 1.25MB/s (default: unlimited)")  # fmt: skip
    parser.add_argument("--openai-shape", default="images",
                        choices=("images", "markdown", "hosted", "b64_json", "url"),
                        help="how /v1/chat/completions and /v1/images/* answer")  # fmt: skip
    parser.add_argument("--models", default=None, metavar="IDS",
                        help="comma-separated model ids to serve (default: every current id); "
                        "others answer 404 NOT_FOUND")  # fmt: skip
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Loaded when the command runs, so that `nbbanana --help` stays fast.
    from .emulator import Emulator
    from .emulator._throttle import parse_bandwidth

    kinds = [k.strip() for k in args.faults.split(",") if k.strip()] if args.faults else None
    served = args.models.split(",") if args.models else None
    try:
        bandwidth = parse_bandwidth(args.bandwidth) if args.bandwidth is not None else None
        emulator = Emulator(
            host=args.host,
            port=args.port,
            latency=args.latency,
            fault_rate=args.fault_rate,
            fault_kinds=kinds,
            seed=args.seed,
            request_limit=args.request_limit,
            profile=args.profile,
            batch_delay=args.batch_delay,
            batch_item_seconds=args.batch_item_seconds,
            log=sys.stderr if args.log else None,
            bandwidth_bps=bandwidth,
            openai_shape=args.openai_shape,
            models=served,
        )
    except ValueError as exc:
        print(f"nbbanana emulator: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with emulator:
            print(emulator.base_url, flush=True)
            print(
                f"nbbanana emulator: profile {emulator.profile.name!r}, "
                f"request limit {emulator.request_limit or 'none'} bytes; Ctrl-C stops it.",
                file=sys.stderr,
                flush=True,
            )
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
