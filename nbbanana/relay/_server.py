"""Running the relay: uvicorn on a socket we bind ourselves, in a thread or in the
foreground, with a graceful shutdown.

Why bind the socket here: the port is known before the server starts (port 0 gets a
free one), and the address rule lives in one place — loopback unless a host is given.
Stopping finishes the requests in flight (up to ``grace`` seconds) and ends the
gallery's event streams first, which would otherwise keep the server waiting.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import socket
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

import uvicorn

from ._app import RelayApp
from ._ledger import Ledger, Participant, micros
from ._upstream import GEMINI_URL, Upstream

__all__ = ["Relay"]

log = logging.getLogger("nbbanana.relay")
LOOPBACK = "127.0.0.1"
_EXPOSED_WARNING = (
    "the relay listens on {host}, beyond this machine, over plain HTTP: participant and "
    "admin tokens cross the network readable by anyone on it. Put TLS in front (a reverse "
    "proxy such as Caddy or nginx with a certificate) and give participants the https:// URL."
)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, relay: RelayApp) -> None:
        super().__init__(config)
        self._relay = relay

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal after its graceful shutdown; for the relay a
        # signal *is* the way to stop it, so it ends with status 0 instead.
        self._captured_signals.clear()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._relay.broadcaster.close()  # gallery streams end; model calls finish
        await super().shutdown(sockets)


class Relay:
    """A workshop relay: participants → this server → ``upstream`` with the facilitator's key.

    ``directory`` holds the ledger and the images (created if new; reused on restart).
    ``upstream``: an :class:`Upstream`, ``"emulator"`` for a rehearsal against the offline
    emulator, or ``"gemini"`` (the key from ``GEMINI_API_KEY``).

    >>> with Relay("workshop", "emulator") as relay:          # doctest: +SKIP
    ...     token, = relay.add_participants(1, cap_usd=2.00)
    ...     session = nbbanana.connect(base_url=relay.base_url, api_key=token)
    """

    def __init__(
        self,
        directory: str | Path,
        upstream: Upstream | str = "emulator",
        *,
        host: str = LOOPBACK,
        port: int = 0,
        max_request_bytes: int = 20_000_000,
        cors_origins: Sequence[str] = (),
        grace: float = 30.0,
        latency: float = 0.0,
    ) -> None:
        self.ledger = Ledger(directory)
        if isinstance(upstream, str):
            upstream = _upstream_from_name(upstream, latency=latency)
        self.upstream = upstream
        self.host = host
        self.port = port
        self.grace = grace
        self.relay_app = RelayApp(
            self.ledger,
            upstream,
            max_request_bytes=max_request_bytes,
            cors_origins=tuple(cors_origins),
        )
        #: The admin token if this relay created it (a new directory); else None —
        #: ``nbbanana relay admin-token --rotate`` makes a new one.
        self.admin_token = self.ledger.ensure_admin_token()
        self._socket: socket.socket | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock_file: IO[bytes] | None = None
        self.recovered = 0
        #: Set when the relay listens beyond loopback: put TLS in front.
        self.exposure_warning: str | None = None

    # -------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        if self._socket is None:
            raise RuntimeError("The relay is not running; call start() first.")
        host, port = self._socket.getsockname()[:2]
        shown = LOOPBACK if host in ("0.0.0.0", "") else host
        return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"

    @property
    def running(self) -> bool:
        return self._server is not None and self._socket is not None

    def _prepare(self) -> _Server:
        self._take_lock()
        self.recovered = self.ledger.recover()
        if self.recovered:
            log.warning("%d request(s) were in flight when the relay last stopped; "
                        "their estimates are kept as their cost", self.recovered)  # fmt: skip
        if self.host not in (LOOPBACK, "localhost", "::1"):
            self.exposure_warning = _EXPOSED_WARNING.format(host=self.host)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(1024)
        sock.setblocking(False)
        self._socket = sock
        config = uvicorn.Config(
            self.relay_app.app,
            log_level="warning",
            access_log=False,  # an access log would write request paths; ours writes none
            timeout_graceful_shutdown=max(1, round(self.grace)),
            lifespan="on",
            h11_max_incomplete_event_size=64 * 1024,
        )
        self._server = _Server(config, self.relay_app)
        return self._server

    def start(self) -> Relay:
        """Serve in a background thread (notebooks, tests); returns when it is listening."""
        if self.running:
            return self
        server = self._prepare()
        if self.exposure_warning:
            warnings.warn(self.exposure_warning, UserWarning, stacklevel=2)
        assert self._socket is not None
        sockets = [self._socket]
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": sockets}, name="nbbanana-relay", daemon=True
        )
        self._thread.start()
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError("The relay did not start; see the log above.")
            self._thread.join(0.02)
        return self

    def serve_forever(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve in this thread until SIGINT/SIGTERM (the first one stops gracefully).
        ``on_ready`` runs once the socket is bound (the CLI prints the URL there)."""
        try:
            server = self._prepare()
            if on_ready is not None:
                on_ready()
            assert self._socket is not None
            server.run(sockets=[self._socket])
        finally:
            self._cleanup()

    def stop(self) -> None:
        """Stop accepting, finish requests in flight (up to ``grace`` s), then stop."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(self.grace + 10)
            self._thread = None
        self._cleanup()

    def _cleanup(self) -> None:
        self._server = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self.upstream.stop_emulator()
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None

    def _take_lock(self) -> None:
        lock = open(self.ledger.directory / "relay.lock", "wb")  # noqa: SIM115 - held while serving
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise RuntimeError(
                f"Another relay is already serving {self.ledger.directory}; stop it first "
                "(one relay per workshop directory keeps the caps exact)."
            ) from None
        self._lock_file = lock

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        return f"<nbbanana Relay {where} → {self.upstream.label}>"

    # ---------------------------------------------------------- facilitator

    def add_participants(
        self,
        count: int = 1,
        *,
        cap_usd: float | None = None,
        rate_per_min: int | None = None,
        names: Sequence[str] = (),
    ) -> list[str]:
        """New participant tokens (shown only now), each with a cap and a rate."""
        made = self.ledger.add_participants(
            count, cap_micros=None if cap_usd is None else micros(cap_usd),
            rate_per_min=rate_per_min, names=names,
        )  # fmt: skip
        return [token for _, token in made]

    def join_code(
        self,
        *,
        cap_usd: float | None = None,
        rate_per_min: int | None = None,
        uses: int | None = None,
    ) -> str:
        """A workshop code participants trade for a token on the join page or with
        :func:`nbbanana.relay.join`."""
        return self.ledger.add_join_code(
            cap_micros=None if cap_usd is None else micros(cap_usd),
            rate_per_min=rate_per_min,
            uses=uses,
        )

    def set_workshop_cap(self, cap_usd: float | None) -> None:
        self.ledger.set_workshop_cap(None if cap_usd is None else micros(cap_usd))

    def set_cap(self, participant_id: int, cap_usd: float | None) -> Participant:
        return self.ledger.set_cap(participant_id, None if cap_usd is None else micros(cap_usd))

    def revoke(self, participant_id: int) -> Participant:
        return self.ledger.revoke(participant_id)

    def pause(self) -> None:
        self.ledger.set_paused(True)

    def resume(self) -> None:
        self.ledger.set_paused(False)

    def participants(self) -> list[Participant]:
        return self.ledger.participants()

    def totals(self) -> dict[str, Any]:
        return self.ledger.totals()

    def export(self, out: str | Path) -> dict[str, Any]:
        """Write the workshop's prompts, images and costs to ``out`` (see ``_export``)."""
        from ._export import export

        return export(self.ledger, out)

    def hide(self, request_id: int, hidden: bool = True) -> None:
        """Hide a result from the gallery (every open gallery removes it at once)."""
        if not self.ledger.set_hidden(request_id, hidden):
            raise KeyError(f"There is no request {request_id}.")
        loop = self.relay_app.loop
        if self.running and loop is not None:
            future = asyncio.run_coroutine_threadsafe(
                self.relay_app.publish_hidden(request_id, hidden), loop
            )
            future.result(10)


def _upstream_from_name(name: str, *, latency: float = 0.0) -> Upstream:
    import os

    if name == "emulator":
        return Upstream.rehearsal(latency=latency)
    key = os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
    url = GEMINI_URL if name == "gemini" else name
    if not key:
        raise ValueError(
            "The relay needs the facilitator's key in GEMINI_API_KEY (never on the command "
            "line, where other users of the machine can read it); or use the upstream "
            "'emulator' for a rehearsal."
        )
    if not url.startswith(("http://", "https://")):
        raise ValueError(
            f"Unknown upstream {name!r}: use 'gemini', 'emulator' or an http(s):// URL."
        )
    return Upstream(url, key, label=url)
