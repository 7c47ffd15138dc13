"""An offline emulator of the Gemini image API, faithful enough for the official SDK.

Start one in-process (``with Emulator() as emulator: ...``) or from a shell
(``nbbanana emulator``), point ``genai.Client(http_options=HttpOptions(base_url=...))``
at it, and the SDK talks real HTTP to a local server that validates requests like the
service does, answers with deterministic synthetic images (each marked "offline
emulator"), speaks the Files and Batch APIs, and injects faults on demand.

Modules: :mod:`._server` (HTTP plumbing, :class:`Emulator`), :mod:`._routes` (the REST
surface), :mod:`._generate` (validation, answers, tokens), :mod:`._synth` (images),
:mod:`._files` (Files API), :mod:`._batches` (Batch API), :mod:`._faults`, :mod:`._status`.
"""

from __future__ import annotations

import atexit
import threading

from ._faults import CONTENT_FAULTS, FAULTS, TRANSIENT_FAULTS
from ._server import OFFLINE_API_KEY, Emulator, RequestRecord

__all__ = [
    "CONTENT_FAULTS",
    "FAULTS",
    "OFFLINE_API_KEY",
    "TRANSIENT_FAULTS",
    "Emulator",
    "RequestRecord",
    "shared_emulator",
]

_shared: Emulator | None = None
_shared_lock = threading.Lock()


def shared_emulator() -> Emulator:
    """The process-wide emulator (offline sessions, notebooks): started on first use on a
    free loopback port, stopped when the interpreter exits."""
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.running:
            _shared = Emulator().start()
            atexit.register(_shared.stop)
        return _shared
