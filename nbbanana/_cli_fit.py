"""``nbbanana fit`` and ``nbbanana check``: fit images into a request budget, or check
whether they would fit inline as they are.

Both take any number of inputs and handle each on its own: a refused input is reported
(one line, never a traceback) and the others carry on; the exit status is 0 when every
input succeeded and 2 when any was refused. ``--json`` prints one JSON object per input
per line, for scripts. :func:`print_fit_table` is the same engine for ``nbbanana demo``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from ._cli_common import one_line, prepare_outdir
from ._files import write_atomic
from ._format import format_count, format_usd
from .errors import NbbananaError
from .models import PROFILES, get_model, get_profile

__all__ = ["fit_paths", "parse_bytes", "print_fit_table", "register"]

#: ``nbbanana check``'s exit status when an input was read but does not fit as it is.
CHECK_DOES_NOT_FIT = 3

_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}
_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9,
    "kib": 2**10, "mib": 2**20, "gib": 2**30,
}  # fmt: skip
_BYTES_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_bytes(text: str) -> int:
    """``"15MB"`` → 15_000_000; also KB/GB (powers of 10), KiB/MiB/GiB, plain bytes."""
    match = _BYTES_RE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size; use bytes (15000000) or a unit: 15MB, 500KB, 7MiB."
        )
    value = int(float(match.group(1)) * _UNITS[unit])
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the budget must be more than 0 bytes.")
    return value


def _parse_max_side(text: str) -> int | Literal["model", "keep"]:
    if text in ("model", "keep"):
        return text  # type: ignore[return-value]
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 16:
        raise argparse.ArgumentTypeError(
            f"{text!r}: use a long side in pixels (at least 16), 'model' or 'keep'."
        )
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fit = subparsers.add_parser(
        "fit",
        help="fit images into a request budget (model resolution, best quality that fits)",
        description="Fit each INPUT so that a request carrying it stays within the budget "
        "(default: the endpoint's limit), at the resolution the model uses and the highest "
        "quality that fits. Outputs go to OUTDIR; inputs with the same name from different "
        "folders get distinct outputs.",
    )
    fit.add_argument("inputs", nargs="+", metavar="INPUT", help="image files")
    fit.add_argument("-o", "--outdir", default="fitted", type=Path,
                     help="folder for the fitted images (default: ./fitted)")  # fmt: skip
    fit.add_argument("--model", default=None, help="model id (default: gemini-2.5-flash-image)")
    fit.add_argument("--endpoint", default=None, choices=sorted(PROFILES),
                     help="endpoint whose limits apply (default: gemini; proxy-20mb with --api openai)")  # fmt: skip
    fit.add_argument("--api", default="gemini", choices=("gemini", "openai"),
                     help="the service's API: Gemini-native or an OpenAI-compatible gateway")  # fmt: skip
    fit.add_argument("--budget", type=parse_bytes, default=None, metavar="BYTES",
                     help="request budget: bytes or e.g. 15MB (default: the endpoint's limit)")  # fmt: skip
    fit.add_argument("--max-side", type=_parse_max_side, default="model", metavar="PX|keep",
                     help="long side in pixels, 'model' (default) or 'keep' (full resolution)")  # fmt: skip
    fit.add_argument("--json", action="store_true", help="one JSON object per input per line")
    fit.set_defaults(handler=_run_fit)

    check = subparsers.add_parser(
        "check",
        help="would these images fit inline as they are? request size, pixels, tokens, cost",
        description="For each INPUT: would it fit inline as it is, its request size, "
        "pixels, estimated input tokens and their cost. Nothing is written. When some do "
        "not fit, the `nbbanana fit` command that makes them fit is printed.",
        epilog=f"Exit status: 0 when every input fits as it is, {CHECK_DOES_NOT_FIT} when "
        "some input does not fit (run the printed fit command), 2 when an input could not "
        "be read.",
    )
    check.add_argument("inputs", nargs="+", metavar="INPUT", help="image files")
    check.add_argument("--model", default=None, help="model id (default: gemini-2.5-flash-image)")
    check.add_argument("--endpoint", default=None, choices=sorted(PROFILES),
                       help="endpoint whose limits apply (default: gemini; proxy-20mb with --api openai)")  # fmt: skip
    check.add_argument("--api", default="gemini", choices=("gemini", "openai"),
                       help="the service's API: Gemini-native or an OpenAI-compatible gateway")  # fmt: skip
    check.add_argument("--json", action="store_true", help="one JSON object per input per line")
    check.set_defaults(handler=_run_check)


# --------------------------------------------------------------------------- fit


@dataclass
class FitRow:
    """One input's outcome, as printed (JSON keys are these field names)."""

    input: str
    ok: bool
    output: str | None = None
    input_bytes: int | None = None
    output_bytes: int | None = None
    request_bytes: int | None = None
    input_width: int | None = None
    input_height: int | None = None
    width: int | None = None
    height: int | None = None
    mime: str | None = None
    quality: int | None = None
    tokens: int | None = None
    encodes: int | None = None
    passthrough: bool | None = None
    seconds: float | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


def _output_stems(inputs: Sequence[str]) -> list[str]:
    """A distinct output stem per input: the input's stem, plus a short hash of its full
    path when another input has the same stem (``a/x.jpg`` and ``b/x.png`` both → x)."""
    paths = [_absolute(p) for p in inputs]
    stems = [Path(p).stem or "image" for p in inputs]
    owners: dict[str, set[str]] = {}
    for stem, path in zip(stems, paths, strict=True):
        owners.setdefault(stem.casefold(), set()).add(path)
    result: list[str] = []
    taken: dict[str, str] = {}  # casefolded stem → the path that owns it
    for stem, path in zip(stems, paths, strict=True):
        if len(owners[stem.casefold()]) > 1:
            stem = f"{stem}-{hashlib.sha256(path.encode()).hexdigest()[:8]}"
        candidate, n = stem, 2
        while taken.setdefault(candidate.casefold(), path) != path:
            candidate, n = f"{stem}-{n}", n + 1
        result.append(candidate)
    return result


def _absolute(given: str) -> str:
    """The input's real path; a symlink loop or an unreadable link gives the path as
    written (that input is refused later, on its own, without stopping the others)."""
    try:
        return str(Path(given).expanduser().resolve())
    except (OSError, RuntimeError):
        return os.path.abspath(os.path.expanduser(given))


def fit_paths(
    inputs: Sequence[str],
    *,
    outdir: Path | None,
    model: str | None = None,
    endpoint: str = "gemini",
    budget: int | None = None,
    max_side: int | Literal["model", "keep"] = "model",
    on_row: Any = None,
) -> list[FitRow]:
    """Fit every input (writing ``outdir/<stem>.<ext>`` when ``outdir`` is given) and
    return one row per input; ``on_row(row)`` is called as each finishes."""
    # Loaded when the command runs, so that `nbbanana --help` stays fast.
    from .fit import fit_image

    profile = get_profile(endpoint)
    if outdir is not None:
        outdir.mkdir(parents=True, exist_ok=True)
    rows: list[FitRow] = []
    for given, stem in zip(inputs, _output_stems(inputs), strict=True):
        try:
            fitted = fit_image(
                given, model=model, budget=budget, max_side=max_side, endpoint=profile
            )
            output = None
            if outdir is not None:
                target = outdir / f"{stem}{_EXTENSIONS[fitted.mime]}"
                write_atomic(target, fitted.data)
                output = str(target)
            report = fitted.report
            row = FitRow(
                input=given,
                ok=True,
                output=output,
                input_bytes=report.input_bytes,
                output_bytes=len(fitted.data),
                request_bytes=fitted.request_bytes,
                input_width=report.input_size[0],
                input_height=report.input_size[1],
                width=fitted.width,
                height=fitted.height,
                mime=fitted.mime,
                quality=fitted.quality,
                tokens=fitted.tokens,
                encodes=report.encodes,
                passthrough=report.passthrough,
                seconds=round(report.seconds, 4),
                warnings=list(report.warnings),
            )
        except (NbbananaError, OSError, RuntimeError) as error:
            # RuntimeError: pathlib's "Symlink loop from ..." on older Pythons.
            row = FitRow(input=given, ok=False, error=one_line(error))
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("MB", 10**6), ("KB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], file: IO[str]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    right = {i for i, h in enumerate(header) if h in _RIGHT_ALIGNED}
    for line in (header, *rows):
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip(), file=file)


_RIGHT_ALIGNED = {"in", "out", "request", "q", "tokens", "ms", "cost", "pixels"}


def _print_fit_rows(
    rows: Sequence[FitRow], file: IO[str], labels: Sequence[str] | None = None
) -> None:
    header = ["input", "in", "in px", "→", "out", "px", "request", "q", "tokens", "ms", "notes"]
    lines = []
    for i, r in enumerate(rows):
        label = labels[i] if labels is not None else r.input
        if not r.ok:
            lines.append([label, "-", "-", "refused", "-", "-", "-", "-", "-", "-", r.error or ""])
            continue
        fmt = (r.mime or "").removeprefix("image/")
        action = "as is" if r.passthrough else fmt
        notes = "; ".join(r.warnings)
        lines.append(
            [
                label,
                _size(r.input_bytes),
                f"{r.input_width}×{r.input_height}",
                action,
                _size(r.output_bytes),
                f"{r.width}×{r.height}",
                _size(r.request_bytes),
                "-" if r.quality is None else str(r.quality),
                format_count(r.tokens),
                f"{(r.seconds or 0) * 1000:.0f}",
                notes,
            ]
        )
    _table(header, lines, file)
    refused = sum(not r.ok for r in rows)
    print(f"{len(rows) - refused} fitted, {refused} refused", file=file)


def _side_label(max_side: int | str, model: str | None) -> str:
    if max_side == "model":
        return f"{get_model(model).fit_max_side} px, the model's"
    return "full resolution" if max_side == "keep" else f"{max_side} px"


def print_fit_table(
    paths: Sequence[str | os.PathLike[str]],
    *,
    outdir: Path | None = None,
    model: str | None = None,
    endpoint: str = "gemini",
    budget: int | None = None,
    max_side: int | Literal["model", "keep"] = "model",
    file: IO[str] | None = None,
) -> int:
    """Fit ``paths`` and print the report table (``nbbanana demo`` uses this for the
    bundled samples). Returns the exit status: 0 all fitted, 2 any refused."""
    given = [os.fspath(p) for p in paths]
    rows = fit_paths(
        given,
        outdir=outdir,
        model=model,
        endpoint=endpoint,
        budget=budget,
        max_side=max_side,
    )
    out = file or sys.stdout
    profile = get_profile(endpoint)
    limit = budget if budget is not None else profile.request_limit
    folders = {Path(p).parent for p in given}
    labels = [Path(p).name for p in given] if len(folders) == 1 else given
    where = f" in {folders.pop()}" if len(folders) == 1 else ""
    print(
        f"Fitting {len(given)} image(s){where} for {model or 'gemini-2.5-flash-image'} on "
        f"endpoint '{profile.name}' (request budget {_size(limit) if limit else 'unlimited'}, "
        f"max side {_side_label(max_side, model)}):",
        file=out,
    )
    _print_fit_rows(rows, out, labels)
    return 0 if all(r.ok for r in rows) else 2


def _endpoint(args: argparse.Namespace) -> str:
    """The profile: as given, else the usual 20 MB relay for gateways, else Gemini's."""
    return str(args.endpoint or ("proxy-20mb" if args.api == "openai" else "gemini"))


def _run_fit(args: argparse.Namespace) -> int:
    prepare_outdir(args.outdir)

    def emit(row: FitRow) -> None:
        print(json.dumps(row.__dict__, ensure_ascii=False), flush=True)

    rows = fit_paths(
        args.inputs,
        outdir=args.outdir,
        model=args.model,
        endpoint=_endpoint(args),
        budget=args.budget,
        max_side=args.max_side,
        on_row=emit if args.json else None,
    )
    if not args.json:
        _print_fit_rows(rows, sys.stdout)
        print(f"outputs in {args.outdir}", file=sys.stdout)
    return 0 if all(r.ok for r in rows) else 2


# --------------------------------------------------------------------------- check


def _check_row(given: str, model: str | None, endpoint: str) -> dict[str, Any]:
    # Loaded when the command runs, so that `nbbanana --help` stays fast.
    from .fit import check_image

    try:
        c = check_image(given, model=model, endpoint=endpoint)
    except (NbbananaError, OSError, RuntimeError) as error:
        return {"input": given, "ok": False, "error": one_line(error)}
    return {
        "input": given,
        "ok": True,
        "fits": c.fits_inline,
        "reason": c.reason or None,
        "input_bytes": c.input_bytes,
        "request_bytes": c.request_bytes,
        "limit": c.limit,
        "width": c.width,
        "height": c.height,
        "pixels": c.pixels,
        "mime": c.mime,
        "tokens": c.tokens,
        "cost_usd": c.cost_usd,
        "error": None,
    }


def _run_check(args: argparse.Namespace) -> int:
    rows = []
    for given in args.inputs:
        row = _check_row(given, args.model, _endpoint(args))
        rows.append(row)
        if args.json:
            print(json.dumps(row, ensure_ascii=False), flush=True)
    if not args.json:
        header = [
            "input",
            "fits inline",
            "in",
            "request",
            "px",
            "pixels",
            "tokens",
            "cost",
            "notes",
        ]
        lines = [
            [r["input"], "yes" if r["fits"] else "no", _size(r["input_bytes"]),
             _size(r["request_bytes"]), f"{r['width']}×{r['height']}", f"{r['pixels']:,}",
             format_count(r["tokens"]),
             "unknown" if r["cost_usd"] is None else format_usd(r["cost_usd"]),
             r["reason"] or ""]
            if r["ok"]
            else [r["input"], "refused", "-", "-", "-", "-", "-", "-", r["error"]]
            for r in rows
        ]  # fmt: skip
        _table(header, lines, sys.stdout)
    too_big = [r["input"] for r in rows if r["ok"] and not r["fits"]]
    if too_big:
        print(
            f"{len(too_big)} of {len(rows)} do not fit as they are; this fits them:\n"
            f"  {_fit_command(too_big, args.model, _endpoint(args), args.api)}",
            file=sys.stderr if args.json else sys.stdout,
        )
    if not all(r["ok"] for r in rows):
        return 2
    return CHECK_DOES_NOT_FIT if too_big else 0


def _fit_command(inputs: Sequence[str], model: str | None, endpoint: str, api: str) -> str:
    words = ["nbbanana", "fit", *inputs]
    if model:
        words += ["--model", model]
    if api != "gemini":
        words += ["--api", api]
    if endpoint != ("proxy-20mb" if api == "openai" else "gemini"):
        words += ["--endpoint", endpoint]
    words += ["-o", "fitted"]
    return shlex.join(words)
