"""The relay's HTTP surface (Starlette): the Gemini REST API for participants, the
facilitator's admin API, the join page and the gallery.

One model call goes through these steps, in this order:

1. the body size from ``Content-Length`` (over the limit: refused before a byte of the
   body is read), the participant token (hash lookup, constant-time compare), the
   participant's request rate;
2. the body, read in chunks and refused as soon as it passes the limit (a chunked body
   has no length to check first);
3. the estimate, then :meth:`Ledger.reserve` — pause, revocation and both caps checked
   and the estimate reserved in one SQLite transaction, so two concurrent requests can
   never both spend the last dollar;
4. the upstream call with the facilitator's key; the answer streams back to the
   participant as it arrives (with the key removed, see :mod:`._upstream`);
5. after the last byte (a background task, so the participant does not wait for it):
   settlement from ``usageMetadata``, images written to disk by hash, the gallery told.

Errors to participants are Gemini-style JSON (``{"error": {"code", "message", "status"}}``)
in plain words. Refusals that only the facilitator can lift (a cap, a pause) are ``400
FAILED_PRECONDITION``: no client retries them, and the toolkit shows the message as is.
A request-rate refusal is ``429 RESOURCE_EXHAUSTED`` with a ``RetryInfo`` delay.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import re
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._files import write_atomic
from . import _accounting
from ._ledger import Ledger, Participant, Refusal, gallery_item, image_filename, micros, usd
from ._upstream import Upstream

__all__ = ["RelayApp", "create_app"]

log = logging.getLogger("nbbanana.relay")

#: Bodies of the admin and join endpoints are small JSON objects.
_SMALL_BODY = 64 * 1024
#: Above this size a body is parsed in a worker thread, not on the event loop.
_PARSE_IN_THREAD = 512 * 1024
_JOIN_FAILURES_PER_MINUTE = 10
#: What a model (and method) segment may be: the facilitator's key must not reach any
#: other path of the upstream through dot segments or encoded slashes.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(:[A-Za-z]+)?")
_GALLERY_IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
_MODEL_CALLS = ("generateContent", "streamGenerateContent", "countTokens")
_STATIC = resources.files("nbbanana.relay") / "static"
#: What the browser may do on the relay's pages: its own scripts, styles and images only.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def gemini_error(
    code: int, status: str, message: str, *, retry_after: float | None = None
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    headers = {}
    if retry_after is not None:
        seconds = max(1, round(retry_after))
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{seconds}s"}
        ]
        headers["Retry-After"] = str(seconds)
    return JSONResponse({"error": error}, status_code=code, headers=headers)


def _refused(refusal: Refusal) -> JSONResponse:
    response = gemini_error(
        refusal.code, refusal.status, refusal.message, retry_after=refusal.retry_after
    )
    if refusal.code == 413:
        # Close the connection rather than read the rest of the body to keep it open.
        response.headers["connection"] = "close"
    return response


class Broadcaster:
    """Fan-out of gallery events to every open Server-Sent Events stream."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.closed = False

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=256)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._queues.discard(queue)

    def publish(self, event: dict[str, Any]) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:  # a stalled viewer: end its stream; it reconnects
                self._queues.discard(queue)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)

    def close(self) -> None:
        """Shutdown: end every stream so the server can finish (EventSource reconnects)."""
        self.closed = True
        for queue in list(self._queues):
            with suppress(asyncio.QueueFull):
                queue.put_nowait(None)


class _RateWindow:
    """Requests per minute per participant, in memory (a restart forgets a minute)."""

    def __init__(self) -> None:
        self._times: dict[int, deque[float]] = defaultdict(deque)

    def peek(self, key: int, per_minute: int | None) -> float | None:
        """``None`` if one more is allowed now, else the seconds until the next slot."""
        if not per_minute:
            return None
        now = time.monotonic()
        times = self._times[key]
        while times and now - times[0] >= 60.0:
            times.popleft()
        return 60.0 - (now - times[0]) if len(times) >= per_minute else None

    def record(self, key: int) -> None:
        self._times[key].append(time.monotonic())

    def check(self, key: int, per_minute: int | None) -> float | None:
        """Like :meth:`peek`, and counts the request when it is allowed."""
        wait = self.peek(key, per_minute)
        if wait is None and per_minute:
            self.record(key)
        return wait


@dataclass
class RelayApp:
    """Everything the routes share. ``app`` is the ASGI application to serve."""

    ledger: Ledger
    upstream: Upstream
    max_request_bytes: int = 20_000_000
    cors_origins: Sequence[str] = ()
    gallery_size: int = 48
    broadcaster: Broadcaster = field(default_factory=Broadcaster)
    app: Starlette = field(init=False)
    _rates: _RateWindow = field(default_factory=_RateWindow)
    _join_failures: _RateWindow = field(default_factory=_RateWindow)
    #: One ledger operation at a time, off the event loop (SQLite is serialised anyway).
    _db_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))
    in_flight: int = 0
    #: The event loop serving the app (set at startup; other threads publish through it).
    loop: asyncio.AbstractEventLoop | None = None

    def __post_init__(self) -> None:
        middleware = [Middleware(_SecurityHeaders)]
        if self.cors_origins:
            middleware.append(
                Middleware(
                    CORSMiddleware,
                    allow_origins=list(self.cors_origins),
                    allow_methods=["GET", "POST"],
                    allow_headers=[
                        "authorization",
                        "content-type",
                        "x-goog-api-key",
                        "x-goog-api-client",
                    ],
                )
            )
        v = "{version:str}"
        routes = [
            Route(f"/{v}/models", self.list_models, methods=["GET"]),
            Route(f"/{v}/models/{{name:str}}", self.model_route, methods=["GET", "POST"]),
            Route("/relay/join", self.join, methods=["POST"]),
            Route("/relay/me", self.me, methods=["GET"]),
            Route("/relay/admin/summary", self.admin_summary, methods=["GET"]),
            Route("/relay/admin/tokens", self.admin_add_tokens, methods=["POST"]),
            Route("/relay/admin/join-codes", self.admin_add_join_code, methods=["POST"]),
            Route("/relay/admin/workshop", self.admin_workshop, methods=["POST"]),
            Route("/relay/admin/participants/{pid:int}", self.admin_participant, methods=["POST"]),
            Route("/relay/admin/gallery/{rid:int}", self.admin_gallery, methods=["POST"]),
            Route("/relay/admin/requests", self.admin_requests, methods=["GET"]),
            Route("/", self.index, methods=["GET"]),
            Route("/join", self.page("join.html"), methods=["GET"]),
            Route("/gallery", self.page("gallery.html"), methods=["GET"]),
            Route("/static/{file:str}", self.static, methods=["GET"]),
            Route("/gallery/items", self.gallery_items, methods=["GET"]),
            Route("/gallery/events", self.gallery_events, methods=["GET"]),
            Route("/gallery/images/{sha:str}", self.gallery_image, methods=["GET"]),
            Route("/healthz", self.health, methods=["GET"]),
        ]
        self.app = Starlette(
            routes=routes,
            middleware=middleware,
            exception_handlers={404: self.not_found, 405: self.not_allowed},
            lifespan=self._lifespan,
        )

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.loop = asyncio.get_running_loop()
        yield
        await self.upstream.aclose()

    async def _db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=self._db_limiter)

    # ------------------------------------------------------------ auth and bodies

    async def _participant(self, request: Request) -> Participant:
        token = request.headers.get("x-goog-api-key") or _bearer(request)
        if not token:
            raise Refusal(
                401,
                "UNAUTHENTICATED",
                "no participant token; connect with api_key=YOUR_TOKEN (from the facilitator "
                "or the join page)",
            )
        participant: Participant | None = await self._db(self.ledger.authenticate, token)
        if participant is None:
            raise Refusal(
                401,
                "UNAUTHENTICATED",
                "this token is not valid for this workshop relay; check the token the "
                "facilitator gave you",
            )
        if participant.revoked:
            raise Refusal(
                403, "PERMISSION_DENIED", "this participant token was revoked; ask the facilitator"
            )
        return participant

    async def _require_admin(self, request: Request) -> None:
        token = _bearer(request)
        if not token or not await self._db(self.ledger.is_admin, token):
            raise Refusal(
                401 if not token else 403,
                "UNAUTHENTICATED" if not token else "PERMISSION_DENIED",
                "this needs the facilitator's admin token (Authorization: Bearer ...)",
            )

    @staticmethod
    def _check_length(request: Request, limit: int) -> None:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise _too_large(limit)

    @staticmethod
    async def _read(request: Request, limit: int) -> bytes:
        """The body, refused as soon as it passes ``limit`` (nothing more is buffered)."""
        RelayApp._check_length(request, limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _json(self, request: Request, limit: int = _SMALL_BODY) -> dict[str, Any]:
        body = await self._read(request, limit)
        return await _parse(body)

    # ------------------------------------------------------------- Gemini API

    async def list_models(self, request: Request) -> Response:
        return await self._guarded(request, self._forward_read)

    async def model_route(self, request: Request) -> Response:
        name = request.path_params["name"]
        if not _MODEL_NAME.fullmatch(name):
            return gemini_error(404, "NOT_FOUND", f"there is no model {name!r} on this relay")
        if request.method == "GET" and ":" not in name:
            return await self._guarded(request, self._forward_read)
        model, _, method = name.partition(":")
        if request.method != "POST" or method not in _MODEL_CALLS:
            return gemini_error(
                404,
                "NOT_FOUND",
                f"the workshop relay offers generateContent, streamGenerateContent and "
                f"countTokens, not {method or request.method!r}",
            )
        return await self._guarded(request, lambda r: self._model_call(r, model, method))

    async def _guarded(
        self, request: Request, handler: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.path_params["version"] not in ("v1", "v1beta", "v1alpha"):
            return await self.not_found(request, None)
        try:
            return await handler(request)
        except Refusal as refusal:
            return _refused(refusal)

    async def _forward_read(self, request: Request) -> Response:
        participant = await self._participant(request)
        self._rate(participant)
        query = {k: v for k, v in request.query_params.items() if k in ("pageSize", "pageToken")}
        try:
            reply = await self.upstream.forward(
                "GET", _upstream_path(request), query=query, body=None
            )
        except httpx.HTTPError as exc:
            return _unreachable(exc)
        body = b"".join([chunk async for chunk in reply.chunks])
        if reply.status >= 400:
            return self._upstream_error(reply.status, body)
        return Response(body, reply.status, media_type="application/json")

    def _rate(self, participant: Participant) -> None:
        wait = self._rates.check(participant.id, participant.rate_per_min)
        if wait is not None:
            raise Refusal(
                429,
                "RESOURCE_EXHAUSTED",
                f"you can send {participant.rate_per_min} requests a minute in this workshop; "
                f"wait {max(1, round(wait))} s",
                retry_after=wait,
            )

    async def _model_call(self, request: Request, model: str, method: str) -> Response:
        started = time.perf_counter()
        self._check_length(request, self.max_request_bytes)
        participant = await self._participant(request)
        self._rate(participant)
        raw = await self._read(request, self.max_request_bytes)
        received = time.perf_counter()
        body = await _parse(_accounting.skim(raw))
        try:
            estimate = _accounting.estimate(model, method, body)
        except (TypeError, ValueError, AttributeError):
            raise Refusal(
                400,
                "INVALID_ARGUMENT",
                "Invalid JSON payload received: a field has the wrong type.",
            ) from None
        request_id = await self._db(
            self.ledger.reserve,
            participant,
            model=estimate.model,
            method=method,
            prompt=estimate.prompt,
            est_input_tokens=estimate.input_tokens,
            est_output_tokens=estimate.output_tokens,
            est_micros=estimate.micros,
        )
        call = _Call(self, participant, request_id, model, method, estimate, started, received)
        query = {"alt": request.query_params["alt"]} if "alt" in request.query_params else {}
        self.in_flight += 1
        call.forwarded = time.perf_counter()
        try:
            reply = await self.upstream.forward(
                "POST", _upstream_path(request), query=query, body=raw
            )
        except httpx.HTTPError as exc:
            await call.finish(None, status="interrupted" if _may_have_run(exc) else "error",
                              http_status=None, error=type(exc).__name__)  # fmt: skip
            return _unreachable(exc)
        if reply.status >= 400:
            body_bytes = b"".join([chunk async for chunk in reply.chunks])
            response = self._upstream_error(reply.status, body_bytes)
            await call.finish(None, status="error", http_status=reply.status,
                              error=_error_message(response.body))  # fmt: skip
            return response
        return StreamingResponse(
            call.stream(reply.chunks),
            status_code=reply.status,
            media_type=reply.content_type,
            background=BackgroundTask(call.settle),
        )

    def _upstream_error(self, status: int, body: bytes) -> JSONResponse:
        """The upstream's error, except that a refusal of the facilitator's own key must
        not read as if the participant's token were wrong."""
        try:
            error = json.loads(body).get("error") or {}
        except (ValueError, AttributeError):
            error = {}
        message = str(error.get("message") or body[:300].decode("utf-8", "replace") or "no message")
        if status in (401, 403) or "API_KEY" in json.dumps(error) or "API key" in message:
            return gemini_error(
                502,
                "UNAVAILABLE",
                "the workshop relay's own access to the image service was refused; tell the "
                "facilitator (their key may be wrong or out of quota)",
            )
        return gemini_error(status, str(error.get("status") or "UNKNOWN"), message)

    # ---------------------------------------------------------- participants

    async def join(self, request: Request) -> Response:
        client = request.client.host if request.client else "?"
        key = int(hashlib.sha256(client.encode()).hexdigest()[:12], 16)
        try:
            body = await self._json(request)
            # Codes are long and random; this only stops a script from trying many.
            wait = self._join_failures.peek(key, _JOIN_FAILURES_PER_MINUTE)
            if wait is not None:
                raise Refusal(429, "RESOURCE_EXHAUSTED", "too many wrong workshop codes; wait a minute",
                              retry_after=wait)  # fmt: skip
            try:
                participant, token = await self._db(
                    self.ledger.join, str(body.get("code", "")), str(body.get("name", ""))
                )
            except Refusal:
                self._join_failures.record(key)
                raise
        except Refusal as refusal:
            return _refused(refusal)
        log.info("participant %d (%s) joined", participant.id, participant.name)
        return JSONResponse({"token": token, "participant": participant.summary()})

    async def me(self, request: Request) -> Response:
        try:
            participant = await self._participant(request)
        except Refusal as refusal:
            return _refused(refusal)
        fresh: Participant = await self._db(self.ledger.participant, participant.id)
        return JSONResponse(
            {**fresh.summary(), "paused": await self._db(lambda: self.ledger.paused)}
        )

    # ----------------------------------------------------------------- admin

    async def _admin(
        self, request: Request, action: Callable[[dict[str, Any]], Awaitable[Any]]
    ) -> Response:
        try:
            await self._require_admin(request)
            body = await self._json(request) if request.method == "POST" else {}
            result = await action(body)
        except Refusal as refusal:
            return _refused(refusal)
        except (KeyError, ValueError, TypeError) as exc:
            message = exc.args[0] if exc.args else str(exc)
            return gemini_error(400, "INVALID_ARGUMENT", str(message))
        return JSONResponse(result)

    async def admin_summary(self, request: Request) -> Response:
        async def action(_: dict[str, Any]) -> Any:
            return {
                **await self._db(self.ledger.totals),
                "participants": [p.summary() for p in await self._db(self.ledger.participants)],
                "upstream": self.upstream.label,
                "in_flight": self.in_flight,
            }

        return await self._admin(request, action)

    async def admin_requests(self, request: Request) -> Response:
        async def action(_: dict[str, Any]) -> Any:
            return [_public_request(r) for r in await self._db(self.ledger.requests)]

        return await self._admin(request, action)

    async def admin_add_tokens(self, request: Request) -> Response:
        async def action(body: dict[str, Any]) -> Any:
            made = await self._db(
                self.ledger.add_participants,
                int(body.get("count", 1)),
                cap_micros=_cap(body.get("cap_usd")),
                rate_per_min=_opt_int(body.get("rate_per_min")),
                names=[str(n) for n in body.get("names") or []],
            )
            return {"participants": [{**p.summary(), "token": t} for p, t in made]}

        return await self._admin(request, action)

    async def admin_add_join_code(self, request: Request) -> Response:
        async def action(body: dict[str, Any]) -> Any:
            code = await self._db(
                self.ledger.add_join_code,
                cap_micros=_cap(body.get("cap_usd")),
                rate_per_min=_opt_int(body.get("rate_per_min")),
                uses=_opt_int(body.get("uses")),
            )
            return {"code": code}

        return await self._admin(request, action)

    async def admin_workshop(self, request: Request) -> Response:
        async def action(body: dict[str, Any]) -> Any:
            if "paused" in body:
                await self._db(self.ledger.set_paused, bool(body["paused"]))
                log.info("workshop %s", "paused" if body["paused"] else "resumed")
            if "cap_usd" in body:
                await self._db(self.ledger.set_workshop_cap, _cap(body["cap_usd"]))
            if "participant_cap_usd" in body:
                await self._db(self.ledger.set_all_caps, _cap(body["participant_cap_usd"]))
            return await self._db(self.ledger.totals)

        return await self._admin(request, action)

    async def admin_participant(self, request: Request) -> Response:
        pid = int(request.path_params["pid"])

        async def action(body: dict[str, Any]) -> Any:
            if body.get("revoke"):
                await self._db(self.ledger.revoke, pid)
                log.info("participant %d revoked", pid)
            if "cap_usd" in body:
                await self._db(self.ledger.set_cap, pid, _cap(body["cap_usd"]))
            participant: Participant = await self._db(self.ledger.participant, pid)
            return participant.summary()

        return await self._admin(request, action)

    async def admin_gallery(self, request: Request) -> Response:
        rid = int(request.path_params["rid"])

        async def action(body: dict[str, Any]) -> Any:
            hidden = bool(body.get("hidden", True))
            if not await self._db(self.ledger.set_hidden, rid, hidden):
                raise KeyError(f"there is no request {rid}")
            await self.publish_hidden(rid, hidden)
            return {"id": rid, "hidden": hidden}

        return await self._admin(request, action)

    async def publish_hidden(self, rid: int, hidden: bool) -> None:
        if hidden:
            self.broadcaster.publish({"event": "hide", "data": {"id": rid}})
        else:  # shown again: everyone reloads the latest items
            items = await self._db(self.ledger.gallery, self.gallery_size)
            self.broadcaster.publish({"event": "snapshot", "data": items})

    # --------------------------------------------------------------- gallery

    async def index(self, request: Request) -> Response:
        return JSONResponse(
            {
                "relay": "nbbanana workshop relay",
                "gemini_api": "/v1beta",
                "join": "/join",
                "gallery": "/gallery",
            }
        )

    def page(self, name: str) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            html = (_STATIC / name).read_bytes()
            return Response(html, media_type="text/html; charset=utf-8",
                            headers={"Content-Security-Policy": _CSP})  # fmt: skip

        return serve

    async def static(self, request: Request) -> Response:
        name = request.path_params["file"]
        types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
        suffix = os.path.splitext(name)[1]
        if not re.fullmatch(r"[a-z]+\.(js|css)", name) or suffix not in types:
            return await self.not_found(request, None)
        return Response((_STATIC / name).read_bytes(), media_type=types[suffix])

    async def gallery_items(self, request: Request) -> Response:
        return JSONResponse(await self._db(self.ledger.gallery, self.gallery_size))

    async def gallery_events(self, request: Request) -> Response:
        queue = self.broadcaster.subscribe()
        snapshot = await self._db(self.ledger.gallery, self.gallery_size)

        async def stream() -> AsyncIterator[str]:
            try:
                yield _sse("snapshot", snapshot)
                while not self.broadcaster.closed:
                    try:
                        event = await asyncio.wait_for(queue.get(), timeout=15.0)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if event is None:
                        break
                    yield _sse(event["event"], event["data"])
            finally:
                self.broadcaster.unsubscribe(queue)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def gallery_image(self, request: Request) -> Response:
        sha = request.path_params["sha"]
        found = (
            await self._db(self.ledger.image, sha) if re.fullmatch(r"[0-9a-f]{64}", sha) else None
        )
        if found is None:
            return await self.not_found(request, None)
        path, mime = found
        return FileResponse(path, media_type=mime, headers={"Cache-Control": "max-age=86400"})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "in_flight": self.in_flight})

    async def not_found(self, request: Request, exc: Exception | None) -> Response:
        return gemini_error(
            404, "NOT_FOUND", f"the workshop relay has nothing at {request.url.path}"
        )

    async def not_allowed(self, request: Request, exc: Exception | None) -> Response:
        return gemini_error(
            405, "INVALID_ARGUMENT", f"{request.method} is not allowed on {request.url.path}"
        )


@dataclass
class _Call:
    """One forwarded model call: relays the answer, then settles and files its images."""

    app: RelayApp
    participant: Participant
    request_id: int
    model: str
    method: str
    estimate: _accounting.Estimate
    started: float
    #: When the body had arrived, when the request went upstream and when its answer's
    #: last byte came back. ``relay_s`` — the relay's own time, what it adds to a request
    #: — is body-to-upstream plus last-byte-to-done; receiving the body is not counted
    #: (any server must), nor is waiting for the upstream.
    received: float = 0.0
    forwarded: float | None = None
    sent: float | None = None
    upstream_done: float | None = None
    _chunks: list[bytes] = field(default_factory=list)
    _complete: bool = False
    _finished: bool = False

    async def stream(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The answer as it arrives, kept for settlement."""
        try:
            async for chunk in chunks:
                self._chunks.append(chunk)
                yield chunk
        except httpx.HTTPError as exc:
            # The upstream broke off mid-answer: the response is cut (the participant sees
            # a dropped connection) and Starlette skips the background task, so settle here.
            self._chunks = []
            with anyio.CancelScope(shield=True):
                await self.finish(None, status="interrupted", http_status=200,
                                  error=type(exc).__name__)  # fmt: skip
            raise
        self.upstream_done = time.perf_counter()
        self._complete = True

    async def settle(self) -> None:
        self.sent = time.perf_counter()  # the participant has the whole answer now
        body = b"".join(self._chunks)
        self._chunks = []
        answers = await anyio.to_thread.run_sync(_answers, body) if self._complete else []
        await self.finish(
            answers, status="ok" if self._complete else "interrupted", http_status=200
        )

    async def finish(
        self,
        answers: list[Mapping[str, Any]] | None,
        *,
        status: str,
        http_status: int | None,
        error: str | None = None,
    ) -> None:
        if self._finished:
            return
        self._finished = True
        self.app.in_flight -= 1
        now = time.perf_counter()
        latency = now - self.started
        upstream = relay_s = None
        if self.forwarded is not None:
            upstream = (self.upstream_done or now) - self.forwarded
            done = self.sent or now
            relay_s = (self.forwarded - self.received) + (done - (self.upstream_done or done))
        images = [img for answer in answers or [] for img in _images(answer)]
        usage = next(
            (a["usageMetadata"] for a in reversed(answers or []) if "usageMetadata" in a), None
        )
        # Every image the answer holds, whether the gallery shows its type or not.
        held = sum(_image_count(answer) for answer in answers or [])
        settled = _accounting.settle_usage(
            self.model, usage, images=held, image_size=self.estimate.image_size
        )
        if status == "ok" and settled is None and self.method != "countTokens":
            status = "unmetered"  # a 200 without usage: the estimate, or every image
        if status == "ok" and settled is not None:
            cost, tokens_in, tokens_out = (
                settled.micros,
                settled.input_tokens,
                settled.output_tokens,
            )
        elif status == "unmetered":
            cost = _accounting.settle_unmetered(self.estimate, images=held).micros
            tokens_in, tokens_out = None, None  # nobody reported them
        elif status == "interrupted":
            cost, tokens_in, tokens_out = self.estimate.micros, None, None
        else:
            cost, tokens_in, tokens_out = 0, None, None
        ledger = self.app.ledger
        with anyio.CancelScope(shield=True):
            # Images first, so that a settled request always has its images recorded.
            stored = []
            for position, (mime, data) in enumerate(images):
                sha = await anyio.to_thread.run_sync(_store_image, ledger.images_dir, mime, data)
                await self.app._db(
                    ledger.add_image, self.request_id, position, sha, mime, len(data)
                )
                stored.append((position, sha))
            await self.app._db(
                ledger.settle,
                self.request_id,
                status=status,
                http_status=http_status,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cost_micros=cost,
                latency_s=latency,
                upstream_s=upstream,
                relay_s=relay_s,
                error=error,
            )
        log.info(
            "#%d %s (participant %d) %s %s: %s, %.2f s, %s (estimated %s)",
            self.request_id,
            self.participant.name,
            self.participant.id,
            self.method,
            self.model,
            status if http_status is None else f"{status} {http_status}",
            latency,
            usd(cost),
            usd(self.estimate.micros),
        )
        for position, sha in stored:
            item = gallery_item(
                {
                    "id": self.request_id,
                    "time": time.time(),
                    "prompt": self.estimate.prompt,
                    "model": self.estimate.model,
                    "name": self.participant.name,
                    "position": position,
                    "sha256": sha,
                }
            )
            self.app.broadcaster.publish({"event": "item", "data": item})


class _SecurityHeaders:
    """Headers every answer carries: no MIME sniffing, no referrer, no framing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ------------------------------------------------------------------------ helpers


def _upstream_path(request: Request) -> str:
    """The path forwarded upstream, rebuilt from the parts the routes checked."""
    version = request.path_params["version"]
    name = request.path_params.get("name")
    return f"/{version}/models/{name}" if name else f"/{version}/models"


def _bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _too_large(limit: int) -> Refusal:
    # The wording Google's front end uses, so the toolkit learns the relay's limit.
    return Refusal(
        413, "INVALID_ARGUMENT", f"Request payload size exceeds the limit: {limit} bytes."
    )


async def _parse(body: bytes) -> dict[str, Any]:
    def parse() -> Any:
        return json.loads(body) if body.strip() else {}

    try:
        value = await anyio.to_thread.run_sync(parse) if len(body) > _PARSE_IN_THREAD else parse()
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refusal(400, "INVALID_ARGUMENT", "Invalid JSON payload received.") from None
    if not isinstance(value, dict):
        raise Refusal(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object.")
    return value


def _cap(value: Any) -> int | None:
    if value is None:
        return None
    dollars = float(value)
    if dollars < 0:
        raise ValueError(f"a cap must be 0 or more dollars (got {dollars})")
    return micros(dollars)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _unreachable(exc: httpx.HTTPError) -> JSONResponse:
    if isinstance(exc, httpx.TimeoutException):
        return gemini_error(
            504,
            "DEADLINE_EXCEEDED",
            "the image service did not answer the relay in time; try again",
        )
    return gemini_error(
        502,
        "UNAVAILABLE",
        f"the relay could not reach the image service ({type(exc).__name__}); try again",
    )


def _may_have_run(exc: httpx.HTTPError) -> bool:
    """A request the upstream may have received (and billed) — anything past connecting."""
    return not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))


def _error_message(body: bytes | memoryview) -> str:
    try:
        return str(json.loads(bytes(body))["error"]["message"])[:500]
    except (ValueError, KeyError, TypeError):
        return ""


def _answers(body: bytes) -> list[Mapping[str, Any]]:
    """The answer objects in a response body: one JSON object, a JSON array of stream
    chunks, or Server-Sent Events (``data: {...}`` lines)."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return []
    if text.startswith("data:") or "\ndata:" in text[:200]:
        out = []
        for line in text.splitlines():
            if line.startswith("data:"):
                try:
                    out.append(json.loads(line[5:]))
                except json.JSONDecodeError:
                    continue
        return [a for a in out if isinstance(a, dict)]
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return []
    if isinstance(value, list):
        return [a for a in value if isinstance(a, dict)]
    return [value] if isinstance(value, dict) else []


def _images(answer: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    out = []
    for candidate in answer.get("candidates") or []:
        for part in (candidate.get("content") or {}).get("parts") or []:
            inline = part.get("inlineData") or part.get("inline_data")
            if not isinstance(inline, dict) or part.get("thought"):
                continue
            mime = str(inline.get("mimeType") or inline.get("mime_type") or "")
            if mime in _GALLERY_IMAGE_TYPES:
                try:
                    out.append((mime, base64.b64decode(str(inline.get("data", "")))))
                except ValueError:
                    continue
    return out


def _image_count(answer: Mapping[str, Any]) -> int:
    """Final images in an answer, counted as :meth:`nbbanana.result.Result.from_response`
    counts them: inline data that is not a thought (interim thought images are billed as
    thinking)."""
    count = 0
    for candidate in answer.get("candidates") or []:
        if not isinstance(candidate, Mapping):
            continue
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, Mapping) else None
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, Mapping) or part.get("thought"):
                continue
            inline = part.get("inlineData") or part.get("inline_data")
            if isinstance(inline, Mapping) and inline.get("data"):
                count += 1
    return count


def _store_image(directory: Path, mime: str, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    path = directory / image_filename(sha, mime)
    if not path.exists():
        # Atomic, through a temporary name of its own: a crash never leaves half an image
        # under its hash, and two requests storing the same image at once do not collide.
        write_atomic(path, data)
    return sha


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _public_request(row: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("id", "time", "participant_id", "name", "model", "method", "prompt", "status",
            "http_status", "est_micros", "cost_micros", "input_tokens", "output_tokens",
            "latency_s", "upstream_s", "relay_s", "error", "hidden")  # fmt: skip
    return {k: row.get(k) for k in keys}


def create_app(
    ledger: Ledger,
    upstream: Upstream,
    *,
    max_request_bytes: int = 20_000_000,
    cors_origins: Sequence[str] = (),
) -> RelayApp:
    return RelayApp(ledger, upstream, max_request_bytes, tuple(cors_origins))
