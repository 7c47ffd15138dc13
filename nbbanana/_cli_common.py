"""What every subcommand shares: messages in the command line's own words, the output
folder checked before anything is paid for, and warnings shown as one line each."""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from ._files import prepare_folder
from ._format import format_usd
from .errors import CostLimitExceeded, NbbananaError

__all__ = [
    "CLIError",
    "check_base_url",
    "cli_message",
    "one_line",
    "prepare_outdir",
    "render_error",
    "warnings_as_lines",
]


class CLIError(NbbananaError):
    """A command-line argument or location that cannot be used (exit status 2)."""


# The library's messages name Python parameters; people at a shell have flags (or no way
# at all, and then the advice is dropped rather than pointing at something they cannot do).
# Each entry: a pattern, and its replacement in the CLI's words (None: drop the clause).
_PYTHON_TO_CLI: tuple[tuple[re.Pattern[str], str | None], ...] = (
    (re.compile(r"[;,]?\s*if you trust it, pass max_pixels=\d+ \(or more\) to load it"), None),
    (re.compile(r"\bmax_pixels=\S*"), None),
    (re.compile(r"\(or pass api_key=\.\.\.\)\s*"), ""),
    (re.compile(r"call nbbanana\.connect\(offline=True\)"), "add --offline"),
    (re.compile(r"pass a larger timeout= to nbbanana\.connect\(\)"), "pass a larger --timeout"),
    (re.compile(r"Connect with a higher max_cost_usd"), "Run again with a higher --max-cost"),
    (re.compile(r"\bmax_cost_usd\b"), "--max-cost"),
    (re.compile(r"\bmin_confidence\b"), "--min-confidence"),
    (re.compile(r"\ba larger margin\b"), "a larger --margin"),
)
_CLAUSE_END = re.compile(r"(?<=[.;])\s+")


def cli_message(text: str) -> str:
    """``text`` on one line, with Python parameter names replaced by the matching flags
    (advice that has no command-line equivalent is left out)."""
    text = " ".join(text.split())
    for pattern, replacement in _PYTHON_TO_CLI:
        if replacement is not None:
            text = pattern.sub(replacement, text)
        elif pattern.search(text):
            kept = [c for c in _CLAUSE_END.split(pattern.sub("", text)) if not pattern.search(c)]
            text = " ".join(kept)
    text = re.sub(r"\s+([.;,])", r"\1", text)
    return re.sub(r";\s*\.", ".", text).strip()


def one_line(error: BaseException) -> str:
    """An exception as one line in the CLI's words (never a traceback)."""
    if isinstance(error, CostLimitExceeded):
        cap = f"the {format_usd(error.cap_usd)} cap (--max-cost)"
        if error.spent_usd > 0:
            cap = f"what is left of {cap} after {format_usd(error.spent_usd)} spent"
        return (
            f"This call would cost about {format_usd(error.estimate_usd)}, more than {cap}, "
            "so nothing was sent. Run again with a higher --max-cost."
        )
    if isinstance(error, OSError) and not str(error).strip():
        return type(error).__name__
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename is not None else ""
        return f"{error.strerror}{where}"
    return cli_message(str(error)) or type(error).__name__


def render_error(error: BaseException) -> str:
    """:func:`one_line`, except that a message listing several problems (a manifest's)
    keeps one line per problem."""
    lines = str(error).splitlines()
    if len(lines) > 1 and not isinstance(error, (CostLimitExceeded, OSError)):
        return "\n".join(cli_message(line) if i == 0 else line for i, line in enumerate(lines))
    return one_line(error)


def check_base_url(url: str) -> str:
    """Refuse a ``--base-url`` that is not an http(s) URL with a host, in one line."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a bad port
        host = parts.hostname
    except ValueError as exc:
        raise CLIError(f"--base-url {url!r} is not a valid URL ({exc}).") from None
    if parts.scheme not in ("http", "https") or not host:
        raise CLIError(
            f"--base-url {url!r} is not a valid URL; use e.g. http://127.0.0.1:8000 "
            "or https://proxy.example.com."
        )
    return url


def prepare_outdir(path: str | os.PathLike[str], flag: str = "-o") -> Path:
    """Create the output folder if needed and make sure a file can be written in it,
    *before* anything is sent, so that no paid result is lost for want of a place."""
    folder = Path(path)
    problem = prepare_folder(folder)
    if problem is None:
        return folder
    if problem.kind == "not-a-folder":
        raise CLIError(
            f"{flag} {folder}: a file of that name exists; give a folder ({flag} names "
            "the folder the outputs go into)."
        )
    if problem.kind == "cannot-create":
        raise CLIError(f"{flag} {folder}: cannot create the folder ({problem.detail}).")
    raise CLIError(
        f"{flag} {folder}: cannot write there ({problem.detail}); choose another folder."
    )


@contextmanager
def warnings_as_lines(file: IO[str] | None = None) -> Iterator[None]:
    """Show Python warnings as ``nbbanana: warning: …``, one line each, each text once
    (instead of ``/path/to/module.py:353: UserWarning`` and the source line)."""
    shown: set[str] = set()

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file_: IO[str] | None = None,
        line: str | None = None,
    ) -> None:
        text = cli_message(str(message)) or category.__name__
        if text in shown:
            return
        shown.add(text)
        print(f"nbbanana: warning: {text}", file=file or sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show  # type: ignore[assignment]
        yield
