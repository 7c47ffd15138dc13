"""Saving files safely: :func:`write_atomic`, the one way nbbanana writes a file.

A file is written to a temporary name in its own folder, ``fsync``'d, and renamed over
the final name (``os.replace``, atomic on POSIX and Windows): a reader — or a crash —
sees the old file or the new one, never half of one. The temporary file is created
with mode ``0o666`` less the process's umask, like any file a program creates, so
saved results can be shared (``tempfile.mkstemp`` would make them ``0600`` whatever the
umask). Results, the CLI, the batch outputs and the studio all save through here.

:func:`prepare_folder` is the one check that an output folder can be used, made before
anything is paid for (the CLI and the batches word its answer in their own terms).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

__all__ = ["FolderProblem", "fsync_dir", "fsync_file", "prepare_folder", "write_atomic"]

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def write_atomic(path: str | os.PathLike[str], data: bytes | Callable[[BinaryIO], object]) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring); returns the path.

    ``data`` may also be a function that writes into the open file (an image encoder
    saving straight to disk, so a large encoded image never sits in memory whole)."""
    path = Path(path)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            # 0o666: the umask decides the final mode, as for any new file.
            fd = os.open(tmp, _OPEN_FLAGS, 0o666)
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
        break
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, bytes):
                handle.write(data)
            else:
                data(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def fsync_file(path: Path) -> None:
    """Make a file's content durable."""
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Make renames in ``path`` durable; not possible (nor needed) on Windows."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class FolderProblem:
    """Why a folder cannot take outputs: ``kind`` says what failed, ``detail`` the
    system's words (e.g. "Permission denied")."""

    kind: Literal["not-a-folder", "cannot-create", "cannot-write"]
    detail: str = ""


def prepare_folder(path: str | os.PathLike[str]) -> FolderProblem | None:
    """Create the folder ``path`` (and its parents) if needed and make sure a file can be
    written in it; ``None`` when it can, else what is wrong.

    Called before a request is sent, so that no paid result is lost for want of a place.
    """
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file (or a dangling link) of that name
        return FolderProblem("not-a-folder")
    except OSError as exc:
        return FolderProblem("cannot-create", str(exc.strerror or exc))
    if not folder.is_dir():
        return FolderProblem("not-a-folder")
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".nbbanana-probe-"):
            pass
    except OSError as exc:
        return FolderProblem("cannot-write", str(exc.strerror or exc))
    return None
