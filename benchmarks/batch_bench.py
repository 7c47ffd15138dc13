"""Batch engine benchmark: nbbanana's batch engine vs a naive ``asyncio.gather`` + semaphore.

Both run against the emulator (started as a separate process so its CPU and memory are not
counted) with 1 s latency per model call and 20 % injected faults (429, 500, timeouts),
each engine in its own child process so peak memory (max RSS) is its own. Three runs:

1. **Throughput** — N small edits with the client limited to ``--rpm`` (120). Throughput is
   completed items per minute as a fraction of the limit, end to end and in steady state
   (between the 5th and 95th percentile completion, i.e. without start-up and the tail).
   Items lost = items with neither an output nor a recorded failure.
2. **Memory** — M edits of 20 MB JPEG inputs (4000×3000 noise at high quality: the worst
   case for decoders; three distinct files hard-linked M times, so the disk holds 60 MB).
   The rate limit is lifted here (memory, not pacing, is measured); peak RSS of the engine's
   process is reported, with the RSS after start-up for reference.
3. **Kill -9 and resume** — K items; the process is killed once half are done, then run
   again (nbbanana with ``--resume``; the baseline has no resume, so it starts over).
   Reported: outputs per item (target: exactly 1) and items sent twice.

The baseline is the code people write: every item gathered at once behind an
``asyncio.Semaphore``, each result saved with ``Result.save`` as it arrives, the SDK's
retries (same ``HttpRetryOptions`` as nbbanana), no journal. Its semaphore is sized to the
rate limit (``ceil(rpm / 60 × latency)`` lanes: what keeps a 1 s call at the limit); in the
memory run both engines get the same concurrency.

Usage: ``python benchmarks/batch_bench.py [--quick]``; ``--help`` lists the knobs.

Figures of full runs (2-core VM shared with other work; 240 / 500 / 100 items)::

                                   nbbanana                naive gather+semaphore
    throughput (end / steady)   0.94 / 1.00                          0.46 / 0.46
    done, failed, lost          240/240, 0, 0                    240/240, 0, 0
    peak RSS, 500 × 21.7 MB     563 MB (157 at start)          3238 MB (157 at start)
      (fixed mmap threshold)    690 MB                         4026 MB
    memory runs done            500/500                         499/500 (1 lost)
    kill -9 at half + rerun     100/100 exactly once,      50/100 once, 50 twice,
                                50 sent in the rerun       100 sent in the rerun

Peak RSS of the nbbanana engine depends on ``--concurrency`` (16 lanes here), not on the
number of items; the baseline's grows with the items (every result is kept until
``gather`` returns) and with its concurrent fits. Run to run, glibc's allocator moves
the RSS figures by a few hundred MB.

End to end, the last items' retries (a 5 s timeout, back-off) are a tail no pacing can
hide: 240 items take ~127 s instead of 120.5 s; in steady state the limit is saturated.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
FAULTS = "429,500,timeout"


# --------------------------------------------------------------------------- children


def _rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _child(args: argparse.Namespace) -> None:
    """Run one engine over a manifest and print one JSON line of figures."""
    from nbbanana._connect import connect
    from nbbanana.batch import load_manifest, run_batch_async
    from nbbanana.batch._journal import JOURNAL_NAME, read_journal

    session = connect(base_url=args.base_url, timeout=args.timeout)
    items = load_manifest(args.manifest)
    out = Path(args.outdir)
    start_rss = _rss_mb()
    started = time.time()
    figures: dict[str, Any] = {}
    if args.child == "nbbanana":
        report = asyncio.run(
            run_batch_async(
                items, out, session=session, concurrency=args.concurrency,
                rpm=args.rpm or None, resume=args.resume, progress=False,
            )
        )  # fmt: skip
        state = read_journal(out / JOURNAL_NAME)
        times = sorted(r["time"] for r in state.done.values() if r["time"] >= started)
        figures.update(
            done=report.done, failed=report.failed, retries=report.retries,
            lost=len(items) - len(state.done) - len(state.failed),
        )  # fmt: skip
    else:
        times, done, failed = asyncio.run(_naive(items, out, session, args.concurrency))
        figures.update(done=done, failed=failed, retries=None, lost=len(items) - done)
    figures.update(
        elapsed=time.time() - started, times=[t - started for t in times],
        start_rss_mb=start_rss, peak_rss_mb=_rss_mb(),
    )  # fmt: skip
    print(json.dumps(figures))


async def _naive(
    items: list[Any], out: Path, session: Any, concurrency: int
) -> tuple[list[float], int, int]:
    """The usual script: gather everything behind a semaphore, save each result."""
    semaphore = asyncio.Semaphore(concurrency)
    times: list[float] = []

    async def one(item: Any) -> Any:
        async with semaphore:
            if item.images:
                result = await session.edit_async(list(item.images), item.prompt)
            else:
                result = await session.generate_async(item.prompt)
            await asyncio.to_thread(result.save, out)
            times.append(time.time())
            return result

    results = await asyncio.gather(*(one(item) for item in items), return_exceptions=True)
    failed = sum(1 for r in results if isinstance(r, BaseException))
    return times, len(results) - failed, failed


# --------------------------------------------------------------------------- parent


def _start_emulator(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "nbbanana", "emulator", "--latency", str(args.latency),
            "--fault-rate", str(args.fault_rate), "--faults", FAULTS, "--seed", "7",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit(f"the emulator did not start: {url!r}")
    return proc, url


def _write_manifest(path: Path, images: list[Path | None]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i, image in enumerate(images):
            record: dict[str, Any] = {
                "id": f"item{i:04d}",
                "prompt": f"variation {i}: make it violet",
            }
            if image is not None:
                record["images"] = [str(image)]
            fh.write(json.dumps(record) + "\n")
    return path


def _small_input(folder: Path) -> Path:
    from PIL import Image

    path = folder / "small.jpg"
    Image.new("RGB", (320, 240), "olive").save(path, quality=90)
    return path


def _big_inputs(folder: Path, count: int) -> list[Path]:
    """``count`` paths to ~20 MB JPEGs: three distinct files, hard-linked (copied if the
    file system has no hard links)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    distinct = []
    for k in range(3):
        pixels = rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=99)
        path = folder / f"big{k}.jpg"
        path.write_bytes(buffer.getvalue())
        distinct.append(path)
    paths = []
    for i in range(count):
        link = folder / f"in{i:04d}.jpg"
        try:
            os.link(distinct[i % 3], link)
        except OSError:
            shutil.copyfile(distinct[i % 3], link)
        paths.append(link)
    return paths


def _run_child(
    engine: str, manifest: Path, outdir: Path, url: str, args: argparse.Namespace, *,
    rpm: float, concurrency: int, resume: bool = False, env: dict[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    proc = subprocess.run(
        _child_command(engine, manifest, outdir, url, args, rpm=rpm, concurrency=concurrency, resume=resume),
        capture_output=True, text=True, env=_env(env),
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{engine} run failed:\n{proc.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


def _child_command(
    engine: str, manifest: Path, outdir: Path, url: str, args: argparse.Namespace, *,
    rpm: float, concurrency: int, resume: bool,
) -> list[str]:  # fmt: skip
    command = [
        sys.executable, str(HERE), "--child", engine, "--manifest", str(manifest),
        "--outdir", str(outdir), "--base-url", url, "--rpm", str(rpm),
        "--concurrency", str(concurrency), "--timeout", str(args.timeout),
    ]  # fmt: skip
    return [*command, "--resume"] if resume else command


#: glibc raises its mmap threshold each time a large mmapped block is freed, after which
#: freed 20 MB buffers stay in the heap: RSS then tracks allocation history more than what
#: the program holds. A fixed threshold shows the latter; both are reported.
FIXED_MMAP = {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    return {**env, **(extra or {})}


def _throughput(figures: dict[str, Any], rpm: float, n: int) -> tuple[float, float]:
    times = sorted(figures["times"])
    end_to_end = len(times) / (figures["elapsed"] / 60) / rpm if times else 0.0
    lo, hi = int(0.05 * len(times)), max(int(0.95 * len(times)) - 1, 0)
    span = times[hi] - times[lo] if hi > lo else 0.0
    steady = (hi - lo) / (span / 60) / rpm if span > 0 else 0.0
    return end_to_end, steady


def _outputs_per_item(outdir: Path, n: int) -> tuple[int, int]:
    """(items with exactly one output, the most outputs any item has), counting PNGs by
    the prompt in their sidecar (the baseline names files by result id, not item id)."""
    counts: dict[str, int] = {}
    for sidecar in outdir.glob("*.json"):
        prompt = json.loads(sidecar.read_text(encoding="utf-8"))["prompt"]
        counts[prompt] = counts.get(prompt, 0) + 1
    return sum(1 for c in counts.values() if c == 1), max(counts.values(), default=0)


def _kill_and_resume(
    engine: str, manifest: Path, outdir: Path, url: str, args: argparse.Namespace, n: int,
    concurrency: int,
) -> dict[str, Any]:  # fmt: skip
    command = _child_command(
        engine, manifest, outdir, url, args, rpm=args.rpm, concurrency=concurrency, resume=False
    )
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env()
    )
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        if len(list(outdir.glob("*.png"))) >= n // 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = len(list(outdir.glob("*.png")))
    second = _run_child(
        engine,
        manifest,
        outdir,
        url,
        args,
        rpm=args.rpm,
        concurrency=concurrency,
        resume=engine == "nbbanana",
    )
    exactly_once, most = _outputs_per_item(outdir, n)
    return {
        "done_before_kill": before,
        "sent_again": second["done"] if engine == "nbbanana" else n,
        "exactly_once": exactly_once,
        "most": most,
        "lost": n - len({p for p in _prompts(outdir)}),
    }


def _prompts(outdir: Path) -> list[str]:
    return [json.loads(p.read_text(encoding="utf-8"))["prompt"] for p in outdir.glob("*.json")]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small smoke run (about two minutes)")
    parser.add_argument(
        "--items", type=int, help="items in the throughput run (default 240; quick 24)"
    )
    parser.add_argument(
        "--mem-items", type=int, help="20 MB inputs in the memory run (default 500; quick 24)"
    )
    parser.add_argument(
        "--kill-items", type=int, help="items in the kill -9 run (default 100; quick 16)"
    )
    parser.add_argument("--rpm", type=float, default=120.0)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16, help="nbbanana lanes")
    parser.add_argument("--timeout", type=float, default=5.0, help="client timeout per attempt, s")
    parser.add_argument(
        "--runs", default="throughput,memory,kill", help="which runs (comma-separated)"
    )
    parser.add_argument(
        "--malloc", choices=["default", "fixed", "both"], default="both",
        help="memory run with glibc's default allocator, a fixed mmap threshold, or both",
    )  # fmt: skip
    parser.add_argument("--child", choices=["nbbanana", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--manifest", help=argparse.SUPPRESS)
    parser.add_argument("--outdir", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return

    n = args.items or (24 if args.quick else 240)
    m = args.mem_items or (24 if args.quick else 500)
    k = args.kill_items or (16 if args.quick else 100)
    runs = set(args.runs.split(","))
    size_mb = 0.0
    naive_lanes = max(1, math.ceil(args.rpm / 60 * args.latency))
    print(
        f"emulator: {args.latency:g} s latency, {args.fault_rate:.0%} faults ({FAULTS}); "
        f"limit {args.rpm:g} rpm; client timeout {args.timeout:g} s; nbbanana {args.concurrency} "
        f"lanes, baseline semaphore {naive_lanes} (sized to the limit)",
        flush=True,
    )
    emulator, url = _start_emulator(args)
    rows: dict[str, dict[str, str]] = {"nbbanana": {}, "naive": {}}
    with tempfile.TemporaryDirectory(prefix="nbbanana-batch-bench-") as tmp:
        root = Path(tmp)
        try:
            small = _small_input(root)
            manifest = _write_manifest(root / "throughput.jsonl", [small] * n)
            for engine, lanes in (("nbbanana", args.concurrency), ("naive", naive_lanes)):
                if "throughput" not in runs:
                    break
                print(f"throughput run: {engine}, {n} items …", flush=True)
                figures = _run_child(
                    engine,
                    manifest,
                    root / f"t-{engine}",
                    url,
                    args,
                    rpm=args.rpm,
                    concurrency=lanes,
                )
                end_to_end, steady = _throughput(figures, args.rpm, n)
                rows[engine].update(
                    throughput=f"{end_to_end:.2f} / {steady:.2f}",
                    done=f"{figures['done']}/{n}",
                    failed=str(figures["failed"]),
                    lost=str(figures["lost"]),
                )

            if "memory" in runs:
                print(f"memory run: {m} items of ~20 MB …", flush=True)
                big = _big_inputs(root, m)
                size_mb = big[0].stat().st_size / 1e6
                mem_manifest = _write_manifest(root / "memory.jsonl", list(big))
                modes = {"default": None, "fixed": FIXED_MMAP}
                for mode in ("default", "fixed") if args.malloc == "both" else (args.malloc,):
                    for engine in ("nbbanana", "naive"):
                        print(f"memory run: {engine}, glibc {mode} …", flush=True)
                        figures = _run_child(
                            engine, mem_manifest, root / f"m-{engine}", url, args, rpm=0,
                            concurrency=args.concurrency, env=modes[mode],
                        )  # fmt: skip
                        rows[engine][f"memory ({mode} malloc)"] = (
                            f"{figures['peak_rss_mb']:.0f} MB (start {figures['start_rss_mb']:.0f})"
                            f", {figures['done']}/{m} done"
                        )
                        shutil.rmtree(root / f"m-{engine}", ignore_errors=True)

            kill_manifest = _write_manifest(root / "kill.jsonl", [small] * k)
            for engine, lanes in (("nbbanana", args.concurrency), ("naive", naive_lanes)):
                if "kill" not in runs:
                    break
                print(f"kill -9 run: {engine}, {k} items …", flush=True)
                result = _kill_and_resume(
                    engine, kill_manifest, root / f"k-{engine}", url, args, k, lanes
                )
                rows[engine]["kill -9 + rerun"] = (
                    f"{result['exactly_once']}/{k} once, max {result['most']}, "
                    f"{result['sent_again']} sent in rerun, {result['lost']} lost"
                )
        finally:
            emulator.terminate()
            emulator.wait()

    columns = [
        "throughput", "done", "failed", "lost", "memory (default malloc)",
        "memory (fixed malloc)", "kill -9 + rerun",
    ]  # fmt: skip
    print()
    print(
        f"inputs: throughput/kill runs 320×240 JPEG edits; memory run {m} × {size_mb:.1f} MB JPEG (4000×3000)"
    )
    print("throughput = completed items per minute / rate limit (end to end / steady state)")
    width = max(len(c) for c in columns) + 2
    print(f"{'':{width}}{'nbbanana':>38}{'naive gather+semaphore':>40}")
    for column in columns:
        ours, naive = rows["nbbanana"].get(column, "-"), rows["naive"].get(column, "-")
        print(f"{column:{width}}{ours:>38}{naive:>40}")


if __name__ == "__main__":
    main()
