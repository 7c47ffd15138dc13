"""Workshop relay benchmark: participants through relay → emulator vs straight to the emulator.

The emulator (``nbbanana emulator --latency 1``) and the relay (``nbbanana relay serve``)
each run in their own process; the participants are asyncio tasks in this one, each with
its own ``httpx`` connection pool, sending edit requests with input images of 1–8 MB
(incompressible PNGs, so the bytes are real) one after another. Three runs:

1. **Direct** — the participants talk to the emulator with its key.
2. **Relay** — the same participants and requests through the relay with their own tokens
   (caps set high enough not to bind: the cap check and the reservation still run).
   Reported: throughput as a fraction of the direct run's (target ≥ 0.95), the latency the
   relay adds at p50 and p99 (target p99 ≤ 50 ms) by the relay's own clock (``relay_s``
   in the ledger: from the body's last byte to the request going upstream — parsing,
   estimate, reservation — plus from the answer's last byte to the participant having
   it; receiving the body is not counted, as any server must receive it), with the
   latencies participants saw in both runs for context,
   the relay process's peak RSS, and the ledger's spend against the spend recomputed here
   from every answer's ``usageMetadata`` (target: equal to the cent).
3. **Caps** — every participant gets a cap with room for two images and fires four
   requests at once. Reported: images per participant (target: exactly 2), participants
   over their cap (target: 0), ledger against answers (target: equal).
4. **Alone** — one participant sends 16 requests (1 and 8 MB images) one at a time: the
   relay's own time when it does not compete with 60 uploads for the cores.

The emulator does real work per request (decoding the input, drawing and encoding the
edit; answers at Nano Banana 2's 512 px size keep that small), and on a small machine it
shares the cores with the relay and with this process: when it cannot keep up, requests
queue in it and the latencies participants see grow in both runs alike. The direct run
pays the same emulator cost, so the ratio isolates what the relay adds.

Usage: ``python benchmarks/relay_bench.py [--participants 60] [--requests 3] [--quick]``.

A full run (2-core VM shared with other work, load average 12–14)::

                                                        relay       direct
    throughput, requests/s                               2.69         3.18
    throughput, relay / direct (target ≥ 0.95)          0.846
    requests answered 200 / sent                    180 / 180     180 / 180
    latency seen by participants p50, s                14.198       14.701
    latency seen by participants p99, s                38.316       27.372
    added by the relay p50, ms (its clock)              223.6
    added by the relay p99, ms (its clock)             4340.0
      one request at a time: p50 / max, ms         16.8 /  60.8
    relay RSS, MB (start / peak)                   40 /   691
    relay run: spend, ledger / answers               $6.1772      $6.1772
      equal to the cent                                 True
    caps: images per participant (target 2)              2.00
    caps: participants over their cap                       0
    caps run: spend, ledger / answers                $4.1182      $4.1182
      equal to the cent                                 True

The emulator is the bottleneck there (a 1 s upstream answers in 14.7 s at the median
without the relay), so the latency and throughput figures mostly measure how the relay
fares competing for two busy cores; alone it adds 17 ms; the accounting holds exactly.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nbbanana.relay._accounting import estimate, settle_usage  # noqa: E402
from nbbanana.relay._ledger import Ledger, micros, usd  # noqa: E402

# Nano Banana 2 at its 512 px size: the smallest answers the emulator draws, so that its
# own CPU work (drawing and encoding the answer) leaves room for the relay to be measured.
MODEL = "gemini-3.1-flash-image"
UPSTREAM_KEY = "relay-bench-upstream-key"
PATH = f"/v1beta/models/{MODEL}:generateContent"


@dataclass
class Run:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    cost_micros: dict[int, int] = field(default_factory=dict)  # per participant, from answers

    @property
    def ok(self) -> int:
        return self.statuses.count(200)

    def pct(self, q: float) -> float:
        values = sorted(self.latencies)
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def _bodies(sizes_mb: list[float], seed: int = 0) -> list[bytes]:
    """One edit request body per size: a noise PNG of about that many megabytes."""
    rng = np.random.default_rng(seed)
    bodies = []
    for n, mb in enumerate(sizes_mb):
        side = int((mb * 1e6 / 3) ** 0.5)
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
        data = base64.b64encode(buffer.getvalue()).decode()
        bodies.append(
            (
                '{"contents": [{"role": "user", "parts": [{"text": "make it look like a '
                f'watercolour, take {n}"}}, {{"inlineData": {{"mimeType": "image/png", '
                f'"data": "{data}"}}}}]}}], "generationConfig": {{"imageConfig": {{"imageSize": "512"}}}}}}'
            ).encode()
        )
    return bodies


def _start(args: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "nbbanana", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


#: The emulator with a listen backlog of 128: the standard library's socketserver keeps 5,
#: and 60 participants connecting at once then meet connection resets in both runs.
_EMULATOR = """
import sys, time
from nbbanana.emulator import _server
_server._Server.request_queue_size = 128
emulator = _server.Emulator(latency=float(sys.argv[1])).start()
print(emulator.base_url, flush=True)
while True:
    time.sleep(3600)
"""


def _start_emulator(latency: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _EMULATOR, str(latency)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


async def _participants(
    base_url: str, keys: list[str], bodies: list[bytes], per: int, *, together: bool = False
) -> Run:
    run = Run()
    limits = httpx.Limits(max_connections=per if together else 1)

    async def participant(pid: int, key: str) -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=300, limits=limits) as client:

            async def one(n: int) -> None:
                body = bodies[(pid + n) % len(bodies)]
                started = time.perf_counter()
                try:
                    answer = await client.post(
                        PATH, content=body,
                        headers={"x-goog-api-key": key, "content-type": "application/json"},
                    )  # fmt: skip
                except httpx.TransportError:
                    run.statuses.append(0)  # no answer at all (counted as failed)
                    return
                run.latencies.append(time.perf_counter() - started)
                run.statuses.append(answer.status_code)
                if answer.status_code == 200:
                    settled = settle_usage(
                        MODEL, answer.json().get("usageMetadata"), has_images=True
                    )
                    assert settled is not None
                    run.cost_micros[pid] = run.cost_micros.get(pid, 0) + settled.micros

            if together:
                await asyncio.gather(*(one(n) for n in range(per)))
            else:
                for n in range(per):
                    await one(n)

    started = time.perf_counter()
    await asyncio.gather(*(participant(pid, key) for pid, key in enumerate(keys)))
    run.seconds = time.perf_counter() - started
    return run


class _PeakRss:
    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self.start = self.peak
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _accounting(name: str, ledger: int, answers: int, interrupted: list[dict[str, object]]) -> None:
    """The ledger against the answers. A request the upstream dropped after receiving it
    (the participant got a 502) is kept at its estimate — the upstream may have billed it —
    so it is added to the answers' side, and counted."""
    kept = sum(int(str(r["est_micros"])) for r in interrupted)
    print(f"{name + ': spend, ledger / answers':44} {usd(ledger):>16} {usd(answers + kept):>12}")
    if interrupted:
        print(
            f"{'  (incl. dropped upstream, at estimate)':44} {len(interrupted):16d} {usd(kept):>12}"
        )
    print(f"{'  equal to the cent':44} {abs(ledger - answers - kept) < 5_000!s:>16}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=60)
    parser.add_argument("--requests", type=int, default=3, help="requests per participant")
    parser.add_argument("--latency", type=float, default=1.0, help="emulator latency per call (s)")
    parser.add_argument("--quick", action="store_true", help="10 participants, 2 requests each")
    args = parser.parse_args()
    if args.quick:
        args.participants, args.requests = 10, 2
    sizes = [1.0 + 7.0 * i / 7 for i in range(8)]  # 1, 2, ... 8 MB
    print(
        f"building request bodies with images of {sizes[0]:.0f}–{sizes[-1]:.0f} MB ...", flush=True
    )
    bodies = _bodies(sizes)
    workdir = Path(tempfile.mkdtemp(prefix="nbbanana-relay-bench-"))
    ledger = Ledger(workdir)
    tokens = [
        t
        for _, t in ledger.add_participants(
            args.participants, cap_micros=micros(100.0), rate_per_min=None
        )
    ]
    emulator, emulator_url = _start_emulator(args.latency)
    relay, relay_url = _start(
        ["relay", "serve", "--dir", str(workdir), "--upstream", emulator_url, "--port", "0",
         "--max-request-mb", "20"],
        env={"GEMINI_API_KEY": UPSTREAM_KEY},
    )  # fmt: skip
    try:
        n = args.participants * args.requests
        print(
            f"{args.participants} participants × {args.requests} requests, {args.latency:g} s upstream latency",
            flush=True,
        )
        direct = asyncio.run(
            _participants(emulator_url, [UPSTREAM_KEY] * len(tokens), bodies, args.requests)
        )
        print(f"direct: {direct.ok}/{n} in {direct.seconds:.1f} s", flush=True)
        watcher = _PeakRss(relay.pid)
        via = asyncio.run(_participants(relay_url, tokens, bodies, args.requests))
        peak = watcher.stop()
        print(f"relay:  {via.ok}/{n} in {via.seconds:.1f} s", flush=True)
        time.sleep(1.0)  # settlement runs just after each answer
        ledger_spend = sum(p.spent_micros for p in ledger.participants())
        own = sorted(r["relay_s"] for r in ledger.requests() if r["status"] == "ok")
        interrupted = [r for r in ledger.requests() if r["status"] == "interrupted"]
        answers_spend = sum(via.cost_micros.values())

        # Room for two edits, not three: each request books the relay's own estimate,
        # so 2.5 estimates admit exactly two of four fired at once, whatever the price.
        small = [bodies[0]]
        booked = estimate(MODEL, "generateContent", json.loads(small[0])).micros
        cap = booked * 5 // 2
        capped = [
            t
            for _, t in ledger.add_participants(
                args.participants, cap_micros=cap, rate_per_min=None
            )
        ]
        first_capped = len(tokens) + 1
        caps = asyncio.run(_participants(relay_url, capped, small, 4, together=True))
        time.sleep(1.0)
        people = [p for p in ledger.participants() if p.id >= first_capped]
        over = sum(1 for p in people if p.spent_micros + p.reserved_micros > cap)
        caps_ledger = sum(p.spent_micros for p in people)
        caps_interrupted = [
            r
            for r in ledger.requests()
            if r["status"] == "interrupted" and r["participant_id"] >= first_capped
        ]
        interrupted = [r for r in interrupted if r["participant_id"] < first_capped]

        # One participant alone, one request at a time: the relay's own time uncontended.
        ((solo, solo_token),) = ledger.add_participants(1, cap_micros=None, rate_per_min=None)
        asyncio.run(_participants(relay_url, [solo_token], [bodies[0], bodies[-1]], 16))
        time.sleep(1.0)
        alone = sorted(r["relay_s"] for r in ledger.requests(solo.id) if r["status"] == "ok")
        caps_answers = sum(caps.cost_micros.values())
    finally:
        for process in (relay, emulator):
            process.terminate()
            process.wait(30)

    ratio = (via.ok / via.seconds) / (direct.ok / direct.seconds)
    print()
    print(f"{'':44} {'relay':>16} {'direct':>12}")
    print(
        f"{'throughput, requests/s':44} {via.ok / via.seconds:16.2f} {direct.ok / direct.seconds:12.2f}"
    )
    print(f"{'throughput, relay / direct (target ≥ 0.95)':44} {ratio:16.3f}")
    print(f"{'requests answered 200 / sent':44} {via.ok:10d} / {n:<4d} {direct.ok:6d} / {n}")
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        print(
            f"{'latency seen by participants ' + name + ', s':44} {via.pct(q):16.3f} {direct.pct(q):12.3f}"
        )
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        added = own[min(len(own) - 1, int(q * len(own)))] * 1000
        print(f"{'added by the relay ' + name + ', ms (its clock)':44} {added:16.1f}")
    print(
        f"{'  one request at a time: p50 / max, ms':44} {statistics.median(alone) * 1000:8.1f} / {alone[-1] * 1000:5.1f}"
    )
    print(f"{'relay RSS, MB (start / peak)':44} {watcher.start / 1e6:7.0f} / {peak / 1e6:6.0f}")
    _accounting("relay run", ledger_spend, answers_spend, interrupted)
    print(f"{'caps: images per participant (target 2)':44} {caps.ok / len(capped):16.2f}")
    print(f"{'caps: participants over their cap':44} {over:16d}")
    _accounting("caps run", caps_ledger, caps_answers, caps_interrupted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
