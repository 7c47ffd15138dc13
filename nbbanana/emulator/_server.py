"""HTTP plumbing of the emulator: a loopback server in a background thread.

Why the standard library (``http.server.ThreadingHTTPServer``): no dependency to install
or keep in step; it runs in a plain thread, so it works inside a Jupyter kernel whose
asyncio loop is already running (an asyncio server would need that loop); one thread
per connection is plenty for tests, notebooks and benchmarks; and it gives direct access
to the socket, which the ``reset`` fault needs (``SO_LINGER`` 0, then close → TCP RST).

Each request goes through the same steps, in the order the real front end applies them:
the body (:meth:`_Handler._read_body`: its framing checked, its bytes counted as they
arrive; a body over the limit is drained without being kept and refused with the
profile's wording), the API key, an injected fault, the configured latency (model calls
only), then the route. Malformed framing (a negative or non-numeric ``Content-Length``, a
bad chunk-size line) is a 400 with Google's JSON error, and so is anything the standard
library refuses itself (a garbled request line). Every request is recorded in
:attr:`Emulator.requests` — method, path (never the query, which may hold a key), status,
body size and fault — so tests can watch retries happen on the wire; with ``log=`` each
is also written as one line (the same fields, never a key).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import select
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, TextIO
from urllib.parse import parse_qsl, urlsplit

from ..errors import redact
from ..models import get_profile
from ._batches import BatchStore
from ._faults import Fault, FaultPlan, parse_fault
from ._files import MAX_FILE_BYTES, FileStore
from ._openai import OpenAIApi, error_reply, handles
from ._routes import Api, Call, Reply, Route, catalogue, classify
from ._status import STATUS_NAMES, ApiError, bad_request, invalid_api_key, missing_api_key
from ._throttle import Uplink

__all__ = ["OFFLINE_API_KEY", "Emulator", "RequestRecord"]

#: The key offline sessions use with the in-process emulator. Not a secret: the emulator
#: accepts any non-empty key unless it was given a set of keys.
OFFLINE_API_KEY = "nbbanana-offline-emulator"

_READ_CHUNK = 1 << 20  # a body is read (and counted) in pieces of at most this
_MAX_DRAIN = 4 * 1024**3  # past this, a refused body is not drained: the connection is cut
#: No body is larger than the largest file the Files API takes, whatever the route.
_MAX_BODY = MAX_FILE_BYTES
_CHUNK_LINE = 1024  # longest chunk-size line (with extensions) accepted
_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(r"[0-9A-Fa-f]+")
#: Connections the kernel queues while the accept loop is busy. The standard library's
#: 5 resets or stalls clients when twenty connect at once (a class running a notebook).
LISTEN_BACKLOG = 128


@dataclass
class RequestRecord:
    """One request as the emulator saw it. ``status`` is ``None`` when no answer was sent
    (``reset``, or a ``timeout`` the client gave up on)."""

    method: str
    path: str
    status: int | None
    body_bytes: int
    fault: str | None
    started: float
    seconds: float
    #: Bytes of the answer's body (0 when none was sent).
    reply_bytes: int = 0


class Emulator:
    """An offline Gemini REST server on loopback, running in a background thread.

    >>> with Emulator() as emulator:                       # doctest: +SKIP
    ...     client = genai.Client(api_key=OFFLINE_API_KEY,
    ...                           http_options=types.HttpOptions(base_url=emulator.base_url))

    ``api_keys``: accepted keys; ``None`` accepts any non-empty key except those starting
    with ``invalid`` (so tests can provoke the "API key not valid" answer).
    ``profile``: an endpoint profile name from :data:`nbbanana.models.PROFILES` whose
    limits and wording to imitate; ``request_limit`` overrides its request limit.
    ``latency``: seconds added to every model call. ``fault_rate``/``fault_kinds``: see
    :mod:`nbbanana.emulator._faults`. ``clock``: time source for file expiry (tests).
    ``batch_delay``/``batch_item_seconds``: how fast batch jobs move (see ``_batches``).
    ``log``: a text stream that gets one line per request — time, method, path (never the
    query, which may hold a key), status, bytes in and out, milliseconds.
    ``bandwidth_bps``: uplink speed in bits per second; requests are read no faster
    (one link shared by all connections, see ``_throttle``); ``None``: loopback speed.
    ``openai_shape``: how the OpenAI-compatible paths answer (see ``_openai``).
    ``models``: the model ids to serve (default: every usable id of
    :data:`nbbanana.models.MODELS`); others answer 404, so tests can make a model
    disappear. Ids the table does not know are served with generic facts.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        fault_rate: float = 0.0,
        seed: int = 0,
        request_limit: int | None = None,
        profile: str = "gemini",
        api_keys: Collection[str] | None = None,
        fault_kinds: Iterable[str] | None = None,
        clock: Callable[[], float] = time.time,
        batch_delay: float = 0.05,
        batch_item_seconds: float = 0.0,
        log: TextIO | None = None,
        bandwidth_bps: float | None = None,
        openai_shape: str = "images",
        models: Iterable[str] | None = None,
    ) -> None:
        self.models = catalogue(models)
        self.host = host
        self.port = port
        self.latency = latency
        self.seed = seed
        self.profile = get_profile(profile)
        self.request_limit = (
            request_limit if request_limit is not None else self.profile.request_limit
        )
        self.api_keys = frozenset(api_keys) if api_keys is not None else None
        self.clock = clock
        self.log = log
        self.requests: list[RequestRecord] = []
        self.bandwidth_bps = bandwidth_bps
        self._uplink = Uplink(bandwidth_bps) if bandwidth_bps is not None else None
        self._faults = FaultPlan(fault_rate, seed, fault_kinds)
        self._files = FileStore(clock=clock, seed=seed)
        self._batches = BatchStore(
            files=self._files,
            seed=seed,
            clock=clock,
            start_delay=batch_delay,
            item_seconds=batch_item_seconds,
            parse=lambda body, model, key: self._api.parse(body, model, key),
        )
        self._api = Api(
            profile=self.profile,
            files=self._files,
            batches=self._batches,
            faults=self._faults,
            seed=seed,
            models=self.models,
        )
        self._api.openai = OpenAIApi(parse=self._api.parse, seed=seed, shape=openai_shape)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    # ------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("The emulator is not running; call start() first.")
        host, port = self._server.server_address[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else str(host)
        return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> Emulator:
        if self._server is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        server_class = type("_Server", (_Server,), {"address_family": family})
        self._server = server_class((self.host, self.port), _Handler)
        self._server.emulator = self
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"nbbanana-emulator:{self._server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        self._batches.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        self._batches.stop()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._server is not None else "stopped"
        return f"<nbbanana Emulator {where} profile={self.profile.name!r}>"

    # ---------------------------------------------------------------- faults

    def inject(
        self,
        fault: str,
        *,
        count: int = 1,
        on: Literal["generate", "any"] = "generate",
        **params: object,
    ) -> None:
        """Queue ``fault`` for the next ``count`` model calls (``on="any"``: any API request).

        ``params`` as in the header form, e.g. ``inject("429", retry=5)``,
        ``inject("slow", seconds=2)``, ``inject("blocked", reason="OTHER")``.
        """
        self._faults.inject(fault, count, on, {k: str(v) for k, v in params.items()})

    def clear_faults(self) -> None:
        self._faults.clear()

    # --------------------------------------------------------------- helpers

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

    def _log(self, record: RequestRecord) -> None:
        """One line per request: what a teacher watching the traffic needs, no key.

        ``record.path`` never holds the query (where ``?key=`` goes), and headers are
        not written at all."""
        if self.log is None:
            return
        status = record.status if record.status is not None else "---"
        # A key pasted into the path itself (a mistake, but one made) is hidden too.
        path = redact(record.path, *(self.api_keys or ()))
        fault = f" fault={record.fault}" if record.fault else ""
        line = (
            f"{time.strftime('%H:%M:%S')} "
            f"{record.method} {path} {status} in {record.body_bytes} B "
            f"out {record.reply_bytes} B {record.seconds * 1000:.0f} ms{fault}\n"
        )
        with self._lock, contextlib.suppress(OSError, ValueError):
            self.log.write(line)
            self.log.flush()

    def _check_key(self, headers: dict[str, str], query: dict[str, str]) -> None:
        bearer = headers.get("authorization", "").removeprefix("Bearer ")  # the openai SDK
        key = headers.get("x-goog-api-key") or query.get("key") or bearer
        if not key.strip():
            raise missing_api_key()
        if self.api_keys is not None:
            if key not in self.api_keys:
                raise invalid_api_key()
        elif key.startswith("invalid"):
            raise invalid_api_key()

    def _too_large(self) -> ApiError:
        limit = self.request_limit or 0
        message = self.profile.too_large_message.format(limit=limit)
        if self.profile.too_large_status == 413:
            return ApiError(413, message, plain_text=True)  # relays answer in plain text
        return ApiError(self.profile.too_large_status, message)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG
    emulator: Emulator

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def close_connections(self) -> None:
        """Cut idle keep-alive connections so stop() leaves nothing serving."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nbbanana-emulator"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this
    server: _Server
    _fault: Fault | None = None
    _body_bytes: int = 0  # of the current request, counted as they arrive

    def setup(self) -> None:
        super().setup()
        uplink = self.server.emulator._uplink
        if uplink is not None:  # the request, body included, arrives at the link's speed
            self.rfile = uplink.reader(self.rfile)  # type: ignore[assignment]

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: request lines may carry ``?key=``; :attr:`Emulator.requests` records
        what tests need and ``log=`` writes it without the query."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What the standard library refuses itself (a garbled request line, headers too
        long, an unknown method) gets Google's JSON error instead of an HTML page."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # a garbled request line: answer in HTTP/1.1
            self.request_version = "HTTP/1.1"
        text = message or self.responses.get(code, ("Error",))[0]
        status = STATUS_NAMES.get(code, "INVALID_ARGUMENT" if code < 500 else "UNKNOWN")
        body = json.dumps({"error": {"code": code, "message": text, "status": status}}).encode()
        # Logged before the answer (never recorded: it reached no route); the path without its query.
        path = str(getattr(self, "path", "") or "").split("?", 1)[0].split()[:1]
        shown = path[0] if path else "-"
        record = RequestRecord(self.command or "-", shown, code, 0, None, 0.0, 0.0, len(body))
        self.server.emulator._log(record)
        with contextlib.suppress(OSError):
            self.send_response(code, message)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    # ------------------------------------------------------------------ core

    def _handle(self) -> None:
        emulator = self.server.emulator
        started = time.monotonic()
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        route = classify(split.path, upload_id="upload_id" in query)
        headers = {k.lower(): v for k, v in self.headers.items()}
        self._fault = None
        self._body_bytes = 0
        reply: Reply | None = None
        try:
            reply = self._process(emulator, route, query, headers)
        except ApiError as error:
            reply = error_reply(error) if handles(route) else Reply.error(error)
        except _Dropped:
            reply = None
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in the emulator: answer like the service would
            traceback.print_exc(file=sys.stderr)
            reply = Reply.error(ApiError(500, f"Emulator internal error: {type(exc).__name__}."))
        # Recorded before the answer goes out, so a client that has its answer always
        # finds its request in Emulator.requests.
        fault = self._fault
        record = RequestRecord(
            self.command,
            split.path,
            reply.status if reply is not None else None,
            self._body_bytes,
            fault.name if fault else None,
            started,
            time.monotonic() - started,
            _reply_bytes(reply),
        )
        emulator._record(record)
        # Logged before the answer goes out too, so the line is there once the client has
        # its answer (the time is the handling time, without sending the answer).
        emulator._log(record)
        if reply is not None:
            try:
                self._send(reply)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    def _process(
        self,
        emulator: Emulator,
        route: Route,
        query: dict[str, str],
        headers: dict[str, str],
    ) -> Reply:
        # Upload chunks are exempt from the request limit (files may be 2 GB), from the key
        # (the SDK sends none: the upload id is the credential) and from faults.
        limited = route.kind in ("generate", "api", "unknown", "upload_start")
        limit = emulator.request_limit if limited else None
        body = self._read_body(headers, limit, emulator._too_large)
        if limited:
            emulator._check_key(headers, query)
        if route.kind in ("generate", "api", "upload_start"):
            self._fault = self._pick_fault(emulator, route, headers)
        if self._fault is not None and self._fault.transient:
            self._apply_transient(emulator, self._fault, headers, route.model)
        if route.kind == "generate" and emulator.latency > 0:
            emulator._stopping.wait(emulator.latency)
        call = Call(self.command, route, query, headers, body, emulator.base_url, self._fault)
        return emulator._api.dispatch(call)

    def _pick_fault(
        self, emulator: Emulator, route: Route, headers: dict[str, str]
    ) -> Fault | None:
        generate = route.kind == "generate"
        header = headers.get("x-emulator-fault")
        if header:
            try:
                fault = parse_fault(header)
            except ValueError as exc:
                raise ApiError(400, str(exc)) from None
            if generate or fault.transient:
                return fault
            return None
        return emulator._faults.take(generate=generate)

    def _apply_transient(
        self, emulator: Emulator, fault: Fault, headers: dict[str, str], model: str | None
    ) -> None:
        name = fault.name
        if name == "slow":
            emulator._stopping.wait(fault.number("seconds", 2.0))
            return
        if name == "timeout":
            client_timeout = _int(headers.get("x-server-timeout")) or 28
            self._hang(emulator, fault.number("seconds", client_timeout + 2.0))
            raise ApiError(504, "Deadline expired before operation could complete.")
        if name == "reset":
            self._reset()
            raise _Dropped()
        raise _transient_error(name, fault, model or "unknown")

    def _hang(self, emulator: Emulator, seconds: float) -> None:
        """Wait without answering, until ``seconds`` pass, the client hangs up or the
        emulator stops."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not emulator._stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.1)
            if readable:
                try:
                    if self.connection.recv(1, socket.MSG_PEEK) == b"":
                        raise _Dropped()  # the client gave up
                except OSError:
                    raise _Dropped() from None
        if emulator._stopping.is_set():
            raise _Dropped()

    def _reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    # ------------------------------------------------------------------ body

    def _read_body(
        self, headers: dict[str, str], limit: int | None, too_large: Callable[[], ApiError]
    ) -> bytes:
        """The request body, framed by ``Content-Length`` or ``Transfer-Encoding: chunked``.

        Bytes are counted as they arrive (in :attr:`_body_bytes`) and never kept past
        ``limit`` (or :data:`_MAX_BODY`): the rest of a body over it is drained without
        being kept, then ``too_large()`` is raised. A declared ``Content-Length`` over the
        limit is refused without keeping a byte. Malformed framing is a 400 and closes the
        connection (the next request could not be found in the stream).
        """
        cap = min(limit, _MAX_BODY) if limit is not None else _MAX_BODY

        def refuse() -> ApiError:
            return too_large() if limit is not None and limit <= cap else _body_over(cap)

        encoding = headers.get("transfer-encoding", "").strip().lower()
        if encoding:
            if encoding != "chunked":
                self.close_connection = True
                raise ApiError(501, f"Transfer-Encoding {encoding!r} is not supported.")
            return self._read_chunked(cap, refuse)
        declared = headers.get("content-length")
        if declared is None:
            return b""
        if len(set(self.headers.get_all("content-length") or [])) > 1:
            declared = ", ".join(self.headers.get_all("content-length") or [])
        if not _DIGITS.fullmatch(declared.strip()):
            self.close_connection = True
            raise bad_request(  # emulator wording
                f"Invalid Content-Length header {declared[:40]!r}: expected a number of bytes."
            )
        length = int(declared)
        if length > cap:
            self._body_bytes = length
            self._drain(length)
            raise refuse()
        # BytesIO: its getvalue() hands over its buffer without a copy, so a body costs
        # its size in memory once, not twice.
        body = io.BytesIO()
        while self._body_bytes < length:
            piece = self._read_piece(length - self._body_bytes)
            if not piece:  # the client hung up mid-body
                self.close_connection = True
                raise _Dropped()
            body.write(piece)
            self._body_bytes += len(piece)
        return body.getvalue()

    def _read_chunked(self, cap: int, refuse: Callable[[], ApiError]) -> bytes:
        """A ``Transfer-Encoding: chunked`` body, counted chunk by chunk; past ``cap`` the
        rest is drained (up to :data:`_MAX_DRAIN`) and not kept."""
        body = io.BytesIO()
        over = False
        while True:
            line = self.rfile.readline(_CHUNK_LINE + 1)
            size_text = line.split(b";", 1)[0].strip()
            if (
                len(line) > _CHUNK_LINE
                or not line.endswith(b"\n")
                or not _HEX.fullmatch(size_text.decode("latin-1"))
            ):
                self.close_connection = True
                if not line:
                    raise _Dropped()
                raise bad_request(  # emulator wording
                    f"Invalid chunk-size line {line[:40]!r} in a chunked request body."
                )
            size = int(size_text, 16)
            if size == 0:
                while self.rfile.readline(_CHUNK_LINE).strip():  # trailers
                    pass
                if over:
                    raise refuse()
                return body.getvalue()
            if self._body_bytes + size > _MAX_DRAIN:
                self.close_connection = True
                raise refuse()
            remaining = size
            while remaining > 0:
                piece = self._read_piece(remaining)
                if not piece:
                    self.close_connection = True
                    raise _Dropped()
                remaining -= len(piece)
                self._body_bytes += len(piece)
                if self._body_bytes > cap and not over:
                    over = True
                    body = io.BytesIO()  # counted from here on, never kept
                if not over:
                    body.write(piece)
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                self.close_connection = True
                raise bad_request(  # emulator wording
                    "A chunk of the chunked request body is not followed by CRLF."
                )

    def _read_piece(self, most: int) -> bytes:
        """Up to ``most`` bytes (at most :data:`_READ_CHUNK`) of the body: every body byte
        is read here, so whatever must watch the bytes arrive has one place to do it."""
        return self.rfile.read(min(_READ_CHUNK, most))

    def _drain(self, length: int) -> None:
        """Read and discard a refused body so the client can read the refusal."""
        if length > _MAX_DRAIN:
            self.close_connection = True
            return
        remaining = length
        while remaining > 0:
            chunk = self._read_piece(remaining)
            if not chunk:
                break
            remaining -= len(chunk)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.events is not None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in reply.events:
                data = b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\r\n\r\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(reply.body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(reply.body)
        self.wfile.flush()


class _Dropped(Exception):
    """No answer is sent (the connection was reset, or the client hung up)."""

    def __init__(self) -> None:
        super().__init__("dropped")


_TRANSIENT_MESSAGES = {
    "500": "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    "503": "The model is overloaded. Please try again later.",
    "504": "Deadline expired before operation could complete.",
}


def _transient_error(name: str, fault: Fault, model: str) -> ApiError:
    if name == "429":
        delay = fault.number("retry", 2.0)
        delay_text = f"{delay:g}s"
        metric = "generativelanguage.googleapis.com/generate_content_paid_tier_requests"
        return ApiError(
            429,
            # the service's wording (2026), with the emulator's quota numbers
            "You exceeded your current quota, please check your plan and billing details. "
            "For more information on this error, head to: "
            "https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, "
            f"head to: https://ai.dev/rate-limit. \n* Quota exceeded for metric: {metric}, "
            f"limit: 10, model: {model}\nPlease retry in {delay_text}.",
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": metric,
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                            "quotaDimensions": {"location": "global", "model": model},
                            "quotaValue": "10",
                        }
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [
                        {
                            "description": "Learn more about Gemini API quotas",
                            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                        }
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay_text},
            ],
        )
    return ApiError(int(name), _TRANSIENT_MESSAGES[name])


def _body_over(cap: int) -> ApiError:
    return bad_request(f"Request payload size exceeds the limit: {cap} bytes.")


def _reply_bytes(reply: Reply | None) -> int:
    if reply is None:
        return 0
    if reply.events is not None:
        return sum(len(json.dumps(event, ensure_ascii=False).encode()) for event in reply.events)
    return len(reply.body)


def _int(value: str | None) -> int:
    try:
        return int(value) if value else 0
    except ValueError:
        return 0
