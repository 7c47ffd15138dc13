"""One batch run per output folder at a time.

Two runs writing one folder would send the same items twice (paying twice) and log each
other's items as failures. The lock is an exclusive operating-system lock (``flock`` on
POSIX, ``msvcrt.locking`` on Windows) on ``OUTDIR/.nbbanana-batch.lock``; the kernel drops
it when its process dies, however it dies (``kill -9`` included), so a crashed run never
blocks the next one. The file also says who holds it (pid, host, start time), for the
message of the run that is refused, and so that a lock left by a process that is gone is
named when it is taken over. Where the file system has no locks (some network mounts)
the pid alone decides: a lock whose process is not running on this host is stale.

The lock file is never deleted (deleting a locked file lets a third run lock a new file
of the same name while the second still holds the old one); it is emptied on release.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import NbbananaError

__all__ = ["LOCK_NAME", "FolderBusy", "FolderLock"]

LOCK_NAME = ".nbbanana-batch.lock"

# errno values that mean "someone else holds it" (anything else: no locks here).
_HELD = {errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK}


class FolderBusy(NbbananaError):
    """Another batch run holds the output folder."""


class FolderLock:
    """``with FolderLock(outdir):`` — hold the folder for one run, or raise :class:`FolderBusy`.

    ``took_over`` describes the stale holder that was replaced, when there was one.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self.took_over: str | None = None
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            previous = _read_holder(fd)
            try:
                _lock(fd)
            except OSError as exc:
                if exc.errno not in _HELD:
                    # No locks on this file system: trust the pid if it is still running.
                    if previous and _alive(previous):
                        raise FolderBusy(_busy_message(self.folder, previous)) from None
                else:
                    raise FolderBusy(_busy_message(self.folder, _read_holder(fd))) from None
            if previous and previous.get("pid") != os.getpid():
                self.took_over = _describe(previous)
            _write_holder(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            _unlock(fd)
        os.close(fd)

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _busy_message(folder: Path, holder: dict[str, Any] | None) -> str:
    who = f" ({_describe(holder)})" if holder else ""
    return (
        f"{folder} is in use by another batch run{who}; wait for it to finish, or choose "
        "another output folder."
    )


def _describe(holder: dict[str, Any]) -> str:
    started = holder.get("started")
    when = (
        time.strftime(" since %Y-%m-%d %H:%M:%S UTC", time.gmtime(started))
        if isinstance(started, (int, float))
        else ""
    )
    return f"process {holder.get('pid', '?')} on {holder.get('host', '?')}{when}"


def _read_holder(fd: int) -> dict[str, Any] | None:
    try:
        data = os.pread(fd, 4096, 0) if hasattr(os, "pread") else _read_all(fd)
        holder = json.loads(data.decode("utf-8")) if data.strip() else None
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _read_all(fd: int) -> bytes:  # Windows has no pread
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 4096)


def _write_holder(fd: int) -> None:
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": round(time.time())}
    data = json.dumps(record).encode("utf-8")
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)


def _alive(holder: dict[str, Any]) -> bool:
    """Whether the holder's process still runs (a holder on another host counts as alive)."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname():
        return True
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            raise OSError(errno.EACCES, str(exc)) from None

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
