"""An uplink of limited bandwidth in front of the emulator: requests arrive at its speed.

``Emulator(bandwidth_bps=10e6)`` (``nbbanana emulator --bandwidth 10mbit``) reads every
connection's incoming bytes through one shared :class:`Uplink`, a token bucket, so an
edit's wall time includes sending its bytes — as on a home uplink or a workshop's shared
Wi-Fi, where every participant's upload takes its share of one link. The client's
bytes still leave at loopback speed into the socket buffers; the server takes them out
only as fast as the link would deliver them, so the answer comes that much later.

Only the direction that matters for fitting is limited: answers are not throttled.
"""

from __future__ import annotations

import io
import re
import threading
import time
from typing import Any

__all__ = ["Uplink", "parse_bandwidth"]

_PREFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}
_BANDWIDTH = re.compile(
    r"^\s*(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<prefix>[kKmMgG]?)"
    r"(?P<unit>bit/s|bit|bps|B/s|)\s*$"
)


def parse_bandwidth(text: str) -> float:
    """Bits per second of ``10mbit``, ``2.5mbit``, ``500kbit``, ``1gbit`` (also with
    ``/s`` or ``bps``), ``1.25MB/s`` (bytes: a capital ``B``) or a plain number of bits
    per second. Prefixes are decimal (``m`` = 10⁶), as network speeds are quoted."""
    match = _BANDWIDTH.match(text)
    if match is None:
        raise ValueError(
            f"bandwidth {text!r} is not understood; write it like 10mbit, 2.5mbit, 500kbit "
            "or 1.25MB/s"
        )
    value = float(match["number"]) * _PREFIX[match["prefix"].lower()]
    if match["unit"] == "B/s":
        value *= 8
    if value <= 0:
        raise ValueError(f"bandwidth must be more than 0 (got {text!r})")
    return value


class Uplink:
    """A token bucket of ``bandwidth_bps`` bits per second shared by all connections.

    Reading borrows: a read of *n* bytes is returned at once and the reader then sleeps
    until the link has carried them, so the bucket may go into debt and the next reader
    (on any connection) waits for it. ``burst`` bytes may pass without waiting after the
    link has been idle.
    """

    def __init__(self, bandwidth_bps: float, *, burst: int = 16 * 1024) -> None:
        if not bandwidth_bps > 0:
            raise ValueError(f"bandwidth_bps must be more than 0 (got {bandwidth_bps!r})")
        self.bandwidth_bps = float(bandwidth_bps)
        self.bytes_per_second = self.bandwidth_bps / 8
        self.burst = burst
        #: Largest read between two waits: about 20 ms of the link (1 KB to 64 KB).
        self.chunk = max(1024, min(65536, int(self.bytes_per_second / 50)))
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def carry(self, n: int) -> None:
        """Wait until the link has carried ``n`` more bytes."""
        if n <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(
                float(self.burst), self._tokens + (now - self._stamp) * self.bytes_per_second
            )
            self._stamp = now
            self._tokens -= n
            wait = -self._tokens / self.bytes_per_second if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)

    def reader(self, raw: io.BufferedIOBase) -> _ThrottledReader:
        """``raw`` (a connection's ``rfile``) read through this link."""
        return _ThrottledReader(raw, self)


class _ThrottledReader:
    """The reading half of a connection, slowed to its :class:`Uplink`."""

    def __init__(self, raw: io.BufferedIOBase, link: Uplink) -> None:
        self._raw = raw
        self._link = link

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while chunk := self.read(self._link.chunk):
                parts.append(chunk)
            return b"".join(parts)
        data = bytearray()
        while len(data) < size:
            chunk = self._raw.read(min(self._link.chunk, size - len(data)))
            if not chunk:
                break
            self._link.carry(len(chunk))
            data += chunk
        return bytes(data)

    def readline(self, size: int | None = -1) -> bytes:
        line = self._raw.readline(-1 if size is None else size)
        self._link.carry(len(line))
        return line

    def __getattr__(self, name: str) -> Any:  # close, fileno, closed, ...
        return getattr(self._raw, name)
