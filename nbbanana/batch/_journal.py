"""The batch journal and atomic output files: what makes a batch survive ``kill -9``.

The journal is an append-only JSON Lines file in the output folder. One record per event:

* ``{"event": "run", ...}`` — a run (or resumed run) started;
* ``{"event": "done", "id": ..., "files": [...], "cost_usd": ...}`` — an item's outputs
  are complete on disk;
* ``{"event": "retry", "id": ..., "attempt": n, "error": {...}}`` — an attempt failed in
  a way worth trying again (a dropped connection, a 5xx, a text-only answer); the engine
  tries again after a pause;
* ``{"event": "failed", "id": ..., "error": {...}}`` — an item failed for good (or after
  the retries); it can be retried alone.

Each record is flushed and ``fsync``'d before the next item is reported done, and an item's
files are moved into place (``os.replace``, atomic) *before* its "done" record is written.
So after any crash, a "done" record always means complete outputs, and an item without one
is simply run again; its files are replaced atomically, so each output exists exactly once.
A record torn by a crash mid-write (or any line that is not a record) is skipped and fenced
off with a newline; :attr:`JournalState.damaged` says which line and, where the text still
shows it, which item, so the run can say so instead of silently running the item again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .._files import fsync_dir, fsync_file

__all__ = [
    "JOURNAL_NAME",
    "STAGING_DIR",
    "Journal",
    "JournalState",
    "commit_files",
    "describe_damage",
    "final_names",
    "read_journal",
    "staging_dir",
]

JOURNAL_NAME = "journal.jsonl"
#: Where an item's files are written before they are moved into place.
STAGING_DIR = ".staging"


@dataclass
class JournalState:
    """What a journal says, folded per item (the last word wins)."""

    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: int = 0
    records: int = 0
    #: ``(line number, item id or None)`` of every line that is not a whole record.
    damaged: list[tuple[int, str | None]] = field(default_factory=list)

    @property
    def torn_lines(self) -> int:
        return len(self.damaged)

    def is_done(self, item_id: str, outdir: Path) -> bool:
        """True when the item has a "done" record and every file it lists exists."""
        record = self.done.get(item_id)
        return record is not None and all((outdir / f).is_file() for f in record.get("files", []))


def read_journal(path: Path) -> JournalState:
    """Fold a journal into per-item state. A missing file is an empty journal."""
    state = JournalState()
    if not path.exists():
        return state
    # Bytes, not text: a line of garbage (or a record cut mid-character) must not stop
    # the reading of the good lines after it.
    with path.open("rb") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            record = _parse_record(line)
            if record is None:
                state.damaged.append((line_no, _guess_id(line)))
                continue
            state.records += 1
            event = record.get("event")
            item_id = record.get("id")
            if event == "run":
                state.runs += 1
            elif event == "done" and isinstance(item_id, str):
                state.done[item_id] = record
                state.failed.pop(item_id, None)
            elif event == "failed" and isinstance(item_id, str) and item_id not in state.done:
                state.failed[item_id] = record
    return state


def _parse_record(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("event"), str):
        return None
    return record


_ID_IN_TEXT = re.compile(rb'"id"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _guess_id(line: bytes) -> str | None:
    """The item id a damaged line was about, when its ``"id": "..."`` survived."""
    match = _ID_IN_TEXT.search(line)
    if match is None:
        return None
    try:
        value = json.loads(b'"' + match.group(1) + b'"')
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, str) else None


def describe_damage(state: JournalState, path: Path, outdir: Path) -> str | None:
    """One line naming the journal's damaged lines and what becomes of their items."""
    if not state.damaged:
        return None
    parts = []
    for line_no, item_id in state.damaged[:5]:
        if item_id is None:
            parts.append(f"line {line_no} (no item id readable)")
        elif state.is_done(item_id, outdir):
            parts.append(f"line {line_no} (item {item_id!r}, done according to another line)")
        else:
            parts.append(f"line {line_no} (item {item_id!r}, which will run again)")
    more = f" and {len(state.damaged) - 5} more" if len(state.damaged) > 5 else ""
    n = len(state.damaged)
    return (
        f"{path}: {n} damaged line{'s' if n != 1 else ''} skipped (cut short by a crash, "
        f"or edited): {'; '.join(parts)}{more}."
    )


class Journal:
    """An open journal: :meth:`append` writes one durable record."""

    def __init__(self, outdir: Path) -> None:
        self.path = outdir / JOURNAL_NAME
        outdir.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = self.path.open("a+", encoding="utf-8")
        self._fence_torn_tail()

    def _fence_torn_tail(self) -> None:
        # A crash mid-write can leave a last line without its newline; start on a fresh
        # line so the next record is not glued to the torn one.
        self._fh.seek(0, os.SEEK_END)
        if self._fh.tell() == 0:
            return
        with self.path.open("rb") as raw:
            raw.seek(-1, os.SEEK_END)
            if raw.read(1) != b"\n":
                self._fh.write("\n")
                self._sync()

    def append(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": round(time.time(), 3), **fields}
        self._fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._sync()

    def _sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def staging_dir(outdir: Path, stem: str) -> Path:
    """A fresh, empty staging folder for one item (leftovers of a crash are removed)."""
    path = outdir / STAGING_DIR / stem
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def commit_files(outdir: Path, stem: str, staged: Sequence[Path]) -> list[str]:
    """Move an item's staged files to ``<stem><suffix>`` names in ``outdir``, atomically each.

    The first file of each suffix is ``<stem>.png`` / ``<stem>.json``; further ones are
    ``<stem>+2.png`` etc. (``+`` never occurs in a safe stem, so names cannot collide).
    Files of an earlier, interrupted attempt of the same item that this attempt does not
    produce are removed, so the folder holds exactly this attempt's outputs.
    Returns the final names, relative to ``outdir``.
    """
    names = final_names(stem, staged)
    for stale in _item_files(outdir, stem):
        if stale.name not in names:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
    for src, name in zip(staged, names, strict=True):
        fsync_file(src)
        os.replace(src, outdir / name)
    fsync_dir(outdir)
    shutil.rmtree(outdir / STAGING_DIR / stem, ignore_errors=True)
    return names


#: Suffixes of the files an item produces (the journal's ``.jsonl`` is never among them).
OUTPUT_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".json", ".txt"})


def final_names(stem: str, staged: Sequence[Path]) -> list[str]:
    """The names :func:`commit_files` gives ``staged`` files (see there)."""
    counts: dict[str, int] = {}
    names: list[str] = []
    for src in staged:
        suffix = src.suffix.lower()
        counts[suffix] = counts.get(suffix, 0) + 1
        n = counts[suffix]
        names.append(f"{stem}{suffix}" if n == 1 else f"{stem}+{n}{suffix}")
    return names


def _item_files(outdir: Path, stem: str) -> Iterator[Path]:
    # Safe stems contain no glob metacharacters.
    for path in (*outdir.glob(f"{stem}.*"), *outdir.glob(f"{stem}+*")):
        if path.suffix.lower() not in OUTPUT_SUFFIXES:
            continue
        base = path.name[: -len(path.suffix)]
        if base == stem or (base.startswith(f"{stem}+") and base[len(stem) + 1 :].isdigit()):
            yield path
