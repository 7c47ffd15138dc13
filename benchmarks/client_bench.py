"""What does nbbanana's Session add on top of a raw google-genai call?

Runs, in one process and interleaved (so both see the same machine state):

* ``raw SDK``        — ``client.models.generate_content`` with a pre-fitted image sent as
  ``types.Part.from_bytes`` (what a careful user would write by hand);
* ``edit(fitted)``   — ``Session.edit`` given that same :class:`FittedImage`;
* ``edit(path)``     — ``Session.edit`` given the original file (loading and fitting
  included: the everyday call).

All three talk real HTTP to the same in-process emulator, with the same prompt, model
and config, so the emulator's own time is common to all and the difference is the
session's work: validation, the request plan, the cost estimate and accounting, error
mapping and building the Result (provenance, input thumbnail).

Usage: ``python benchmarks/client_bench.py [--repeat N] [--image PATH] [--latency S]``.
The target is a median ratio ≤ 1.10 for ``edit(fitted)`` and ``edit(path)`` over ``raw SDK``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from google import genai
from google.genai import types

from nbbanana import connect, fit_image
from nbbanana.emulator import OFFLINE_API_KEY, Emulator
from nbbanana.samples import sample_path

PROMPT = "Turn the cup blue."
MODEL = "gemini-2.5-flash-image"


def _time(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21, help="timed calls per variant")
    parser.add_argument("--image", type=Path, default=sample_path("coffee.jpg"))
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds the emulator adds to each call"
    )
    args = parser.parse_args()

    with Emulator(latency=args.latency) as emulator:
        session = connect(OFFLINE_API_KEY, base_url=emulator.base_url, endpoint="gemini")
        fitted = fit_image(args.image, model=MODEL)
        raw = genai.Client(
            api_key=OFFLINE_API_KEY,
            http_options=types.HttpOptions(base_url=emulator.base_url),
        )
        config = types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"])

        def raw_call() -> object:
            response = raw.models.generate_content(
                model=MODEL,
                contents=types.Content(
                    role="user",
                    parts=[
                        types.Part.from_text(text=PROMPT),
                        types.Part.from_bytes(data=fitted.data, mime_type=fitted.mime),
                    ],
                ),
                config=config,
            )
            assert response.candidates
            return response

        variants: dict[str, Callable[[], object]] = {
            "raw SDK": raw_call,
            "edit(fitted)": lambda: session.edit(fitted, PROMPT, model=MODEL),
            "edit(path)": lambda: session.edit(args.image, PROMPT, model=MODEL),
        }
        for call in variants.values():  # warm up connections, imports and caches
            call()
            call()
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeat):
            for name, call in variants.items():
                times[name].append(_time(call))

    base = statistics.median(times["raw SDK"])
    print(
        f"Session.edit vs raw SDK against the emulator: {args.image.name} "
        f"({fitted.width}×{fitted.height} {fitted.mime}, {len(fitted.data):,} bytes), "
        f"{args.repeat} calls each, emulator latency {args.latency:g} s"
    )
    print(f"{'variant':<14} {'median ms':>10} {'p10 ms':>8} {'p90 ms':>8} {'ratio':>6}")
    for name, values in times.items():
        deciles = statistics.quantiles(values, n=10)
        median = statistics.median(values)
        print(
            f"{name:<14} {median * 1000:>10.1f} {deciles[0] * 1000:>8.1f} "
            f"{deciles[-1] * 1000:>8.1f} {median / base:>6.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
