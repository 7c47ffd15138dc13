"""The batch journal and atomic output files: what makes a batch survive ``kill -9``.

The journal is an append-only JSON Lines file in the output folder. One record per event:

* ``{"event": "run", ...}`` — a run (or resumed run) started;
* ``{"event": "done", "id": ..., "files": [...], "cost_usd": ...}`` — an item's outputs
  are complete on disk;
* ``{"event": "failed", "id": ..., "error": {...}}`` — an item failed after the client's
  retries; it can be retried alone.

Each record is flushed and ``fsync``'d before the next item is reported done, and an item's
files are moved into place (``os.replace``, atomic) *before* its "done" record is written.
So after any crash, a "done" record always means complete outputs, and an item without one
is simply run again; its files are replaced atomically, so each output exists exactly once.
A record torn by a crash mid-write is ignored (and fenced off with a newline) on reading.
"""

from __future__ import annotations

import contextlib
import json
import os
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
    torn_lines: int = 0
    records: int = 0

    def is_done(self, item_id: str, outdir: Path) -> bool:
        """True when the item has a "done" record and every file it lists exists."""
        record = self.done.get(item_id)
        return record is not None and all((outdir / f).is_file() for f in record.get("files", []))


def read_journal(path: Path) -> JournalState:
    """Fold a journal into per-item state. A missing file is an empty journal."""
    state = JournalState()
    if not path.exists():
        return state
    with path.open("r", encoding="utf-8") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                state.torn_lines += 1
                continue
            if not isinstance(record, dict):
                state.torn_lines += 1
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
