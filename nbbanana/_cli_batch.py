"""``nbbanana batch MANIFEST -o OUTDIR``: run a JSONL/CSV manifest as a resumable batch."""

from __future__ import annotations

import argparse
from typing import Any

from ._cli_client import _add_api, _connect_openai, add_timeout
from ._cli_common import check_base_url, cli_message, prepare_outdir

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "batch",
        help="run a manifest of prompts/edits as a resumable batch",
        description=(
            "Run every item of a JSONL or CSV manifest (keys: id, prompt, images, model, "
            "aspect_ratio, image_size, thinking_level, include_thoughts, grounding, region, "
            "mask) and write OUTDIR/<id>.png, <id>.json and a journal. "
            "Uses the offline emulator unless GEMINI_API_KEY is set or --base-url is given. "
            "Dropped connections, 5xx and text-only answers are retried (with back-off); "
            "only one run at a time may use OUTDIR. "
            "Exit status 0 when every item is done, 2 when any failed."
        ),
    )
    parser.add_argument("manifest", help="a .jsonl or .csv file; image paths are relative to it")
    parser.add_argument("-o", "--outdir", required=True, help="output folder (holds the journal)")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="requests in flight at once (default 8)"
    )
    parser.add_argument("--rpm", type=float, default=None, help="at most R requests per minute")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in OUTDIR: skip the items done"
    )
    parser.add_argument(
        "--retry-failed", action="store_true", help="run only the items that failed before"
    )
    parser.add_argument(
        "--only", action="append", metavar="ID", help="run only this item (repeatable)"
    )
    parser.add_argument("--base-url", help="API base URL (e.g. an emulator or a proxy)")
    parser.add_argument("--model", help="model for items that name none")
    _add_api(parser)
    parser.add_argument("--offline", action="store_true", help="use the offline emulator")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_timeout(parser)
    api = parser.add_argument_group(
        "Gemini Batch API (half price; results can take hours; outputs in the same layout)"
    )
    api.add_argument(
        "--batch-api", action="store_true", help="submit the items as one Batch API job and wait"
    )
    api.add_argument(
        "--attach", metavar="NAME", help="wait for an earlier job (batches/...) of this manifest"
    )
    api.add_argument(
        "--poll", type=float, default=30.0, metavar="SECONDS", help="status poll interval"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    # Loaded when the command runs, so that `nbbanana --help` stays fast.
    from ._connect import connect
    from .batch import DEFAULT_CONCURRENCY, run_batch

    options: dict[str, Any] = {}
    if args.model:
        options["model"] = args.model
    if args.base_url:
        options["base_url"] = check_base_url(args.base_url)
    if args.timeout is not None:
        options["timeout"] = args.timeout
    if args.offline:
        options["offline"] = True
    session = _connect_openai(args) if args.api == "openai" else connect(**options)
    if args.batch_api or args.attach:
        return _run_batch_api(args, session)
    report = run_batch(
        args.manifest,
        args.outdir,
        session=session,
        concurrency=args.concurrency or DEFAULT_CONCURRENCY,
        rpm=args.rpm,
        resume=args.resume,
        retry_failed=args.retry_failed,
        only=args.only,
        progress=not args.no_progress,
        model=args.model,
    )
    print(_summary(report))
    return 0 if report.ok else 2


def _summary(report: Any) -> str:
    lines = report.summary(flags=True).splitlines()
    # Keep each line's indentation (the failures are listed indented).
    return "\n".join(line[: len(line) - len(line.lstrip())] + cli_message(line) for line in lines)


def _run_batch_api(args: argparse.Namespace, session: Any) -> int:
    # Loaded when the command runs, so that `nbbanana --help` stays fast.
    from .batch import BatchJob, submit_batch

    prepare_outdir(args.outdir)  # before paying for a job whose results have nowhere to go
    if args.attach:
        job = BatchJob.attach(args.attach, args.manifest, session=session, model=args.model)
    else:
        job = submit_batch(args.manifest, session=session, model=args.model)
        print(f"submitted {job.name} ({len(job.items)} items, {job.transport}); "
              f"if interrupted, continue with --attach {job.name}")  # fmt: skip
    state = job.wait(poll_interval=args.poll, progress=not args.no_progress)
    if state != "JOB_STATE_SUCCEEDED":
        print(f"batch job {job.name} ended {state}: no results.")
        return 2
    report = job.results(args.outdir)
    print(_summary(report))
    return 0 if report.ok else 2
