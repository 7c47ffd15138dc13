"""The emulator's REST surface: which path does what, independent of HTTP plumbing.

Paths (each under both ``/v1`` and ``/v1beta``; google-genai 3.x uses ``v1`` for the
Developer API unless told otherwise):

=========================================  ===========================================
``GET  models`` / ``models/{model}``       list (``pageSize``, ``pageToken``) / get
``POST models/{model}:generateContent``    one answer
``POST models/{model}:streamGenerateContent?alt=sse``  the same answer as SSE events
                                           (a JSON array of the events without ``alt``)
``POST models/{model}:countTokens``        ``{"totalTokens", "promptTokensDetails"}``
``POST models/{model}:batchGenerateContent``  a batch job (see :mod:`._batches`)
``POST /upload/{v}/files``                 resumable upload (see :mod:`._files`)
``GET  files`` / ``files/{id}``            list / get; ``DELETE files/{id}``
``GET  files/{id}:download?alt=media``     bytes of a generated file (batch results);
                                           also served under ``/download/{v}/…``
``GET  batches`` / ``batches/{id}``        list / get; ``DELETE batches/{id}``
``POST batches/{id}:cancel``               cancel
``POST /emulator/faults``                  control: queue faults (not part of the API)
``POST chat/completions``, ``images/…``    OpenAI-compatible (see :mod:`._openai`)
=========================================  ===========================================

The models served are the emulator's catalogue (:func:`catalogue`): by default every
usable id of :data:`nbbanana.models.MODELS`; retired ids (:data:`~nbbanana.models.RETIRED`)
and ids left out of the catalogue answer 404 NOT_FOUND with the service's wording.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..models import MODELS, RETIRED, EndpointProfile, ModelInfo, generic_model
from . import _generate, _json
from ._batches import BatchStore
from ._faults import Fault, FaultPlan
from ._files import FileStore
from ._status import ApiError, bad_request, model_not_found, not_found

if TYPE_CHECKING:
    from ._openai import OpenAIApi

__all__ = ["Api", "Call", "Reply", "Route", "catalogue", "classify"]

Kind = Literal["generate", "api", "upload_start", "upload_chunk", "control", "unknown"]

_VERSIONED = re.compile(r"^/(?:(?P<prefix>upload|download)/)?(?P<version>v1|v1beta)/(?P<rest>.*)$")
_MODEL_CALL = re.compile(r"^models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$")

#: Token limits shown by ``models.get``: the Lite model's from public reports, the
#: others emulator-only display values (unconfirmed).
_TOKEN_LIMITS: Mapping[str, tuple[int, int]] = {
    "gemini-2.5-flash-image": (32_768, 32_768),
    "gemini-3-pro-image": (65_536, 32_768),
    "gemini-3.1-flash-lite-image": (65_536, 4_096),
}
_METHODS = ("generateContent", "countTokens", "batchGenerateContent")
_OPENAI_PATHS = ("chat/completions", "images/generations", "images/edits")


def catalogue(model_ids: Iterable[str] | None = None) -> dict[str, ModelInfo]:
    """The models an emulator serves: ``model_ids`` (default: all of
    :data:`~nbbanana.models.MODELS`). An id the table does not know is served with
    generic facts (a "new" model, for discovery tests); a retired id cannot be served."""
    if model_ids is None:
        return dict(MODELS)
    served: dict[str, ModelInfo] = {}
    for raw in model_ids:
        name = raw.strip().removeprefix("models/")
        if not name:
            continue
        if name in RETIRED:
            raise ValueError(f"{name} is retired ({RETIRED[name].message()}); it cannot be served.")
        served[name] = MODELS.get(name) or generic_model(name)
    if not served:
        raise ValueError("The emulator needs at least one model to serve.")
    return served


@dataclass(frozen=True)
class Route:
    kind: Kind
    version: str = "v1"
    rest: str = ""
    prefix: str | None = None
    model: str | None = None
    method: str | None = None


def classify(path: str, *, upload_id: bool = False) -> Route:
    """What a request path is, before its body is read (for limits, faults, latency).
    ``upload_id``: the query names an upload session (a chunk of a resumable upload)."""
    if path.startswith("/emulator/"):
        return Route("control", rest=path.removeprefix("/emulator/"))
    match = _VERSIONED.match(path)
    if match is None:
        return Route("unknown", rest=path)
    version, rest, prefix = match["version"], match["rest"], match["prefix"]
    if prefix == "upload":
        return Route("upload_chunk" if upload_id else "upload_start", version, rest, prefix)
    if rest.removeprefix("openai/") in _OPENAI_PATHS:  # see ._openai: model calls too
        return Route("generate", version, rest, prefix)
    call = _MODEL_CALL.match(rest)
    if call is not None:
        kind: Kind = (
            "generate" if call["method"] in ("generateContent", "streamGenerateContent") else "api"
        )
        return Route(kind, version, rest, prefix, call["model"], call["method"])
    model = rest.removeprefix("models/") if rest.startswith("models/") else None
    return Route("api", version, rest, prefix, model)


@dataclass
class Call:
    method: str
    route: Route
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    base_url: str
    fault: Fault | None = None


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] | None = None  # server-sent events instead of a body

    @classmethod
    def json(cls, obj: object, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(obj, ensure_ascii=False).encode(), headers=headers or {})

    @classmethod
    def error(cls, error: ApiError) -> Reply:
        if error.plain_text:
            return cls(
                error.code, error.message.encode(), "text/plain; charset=UTF-8", error.headers
            )
        return cls.json(error.payload(), error.code, error.headers)


def parse_json(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    value = _json.loads(body)
    if not isinstance(value, dict):
        raise bad_request("Invalid JSON payload received. Expected an object.")
    return value


class Api:
    """Routes a :class:`Call` to the stores and the generator."""

    def __init__(
        self,
        *,
        profile: EndpointProfile,
        files: FileStore,
        batches: BatchStore,
        faults: FaultPlan,
        seed: int,
        models: Mapping[str, ModelInfo] | None = None,
    ) -> None:
        self.models = dict(models) if models is not None else catalogue()
        self.profile = profile
        self.files = files
        self.batches = batches
        self.faults = faults
        self.seed = seed
        #: The OpenAI-compatible surface (:mod:`._openai`), set by the emulator.
        self.openai: OpenAIApi | None = None

    # ------------------------------------------------------------------ dispatch

    def dispatch(self, call: Call) -> Reply:
        route = call.route
        if self.openai is not None and self.openai.handles(route):
            return self.openai.dispatch(call)
        if route.kind == "control":
            return self._control(call)
        if route.kind in ("upload_start", "upload_chunk"):
            return self._upload(call)
        rest, method = route.rest, call.method
        if route.method is not None:
            handler = self._model_calls().get(route.method)
            if handler is None or method != "POST":
                raise not_found(f"Method not found: {route.method}.")
            return handler(call, self._model(route.model or "", route.version, route.method))
        parts = rest.split("/")
        if rest == "models" and method == "GET":
            return self._list_models(call)
        if len(parts) == 2 and parts[0] == "models" and method == "GET":
            return Reply.json(self._model_resource(self._model(parts[1], route.version, "get")))
        if parts[0] in ("files", "batches") and not self.profile.files_api:
            raise not_found(f"{parts[0].capitalize()} API is not available on this endpoint.")
        if rest == "files" and method == "GET":
            return self._list_files(call)
        if len(parts) == 2 and parts[0] == "files":
            return self._file(call, parts[1])
        if rest == "batches" and method == "GET":
            page, token = self.batches.list(
                _int(call.query.get("pageSize"), 50), call.query.get("pageToken")
            )
            out: dict[str, Any] = {"operations": page}
            if token:
                out["nextPageToken"] = token
            return Reply.json(out)
        if len(parts) == 2 and parts[0] == "batches":
            name, _, verb = parts[1].partition(":")
            if verb == "cancel" and method == "POST":
                self.batches.cancel(name)
                return Reply.json({})
            if not verb and method == "GET":
                return Reply.json(self.batches.get(name))
            if not verb and method == "DELETE":
                self.batches.delete(name)
                return Reply.json({})
        raise not_found(f"The requested URL {call.method} /{route.version}/{rest} was not found.")

    def _model_calls(self) -> dict[str, Callable[[Call, ModelInfo], Reply]]:
        return {
            "generateContent": self._generate,
            "streamGenerateContent": self._generate,
            "countTokens": self._count_tokens,
            "batchGenerateContent": self._batch_create,
        }

    def _model(self, name: str, version: str, method: str) -> ModelInfo:
        info = self.models.get(name)
        if info is None:  # retired or not served: the service's 404
            raise model_not_found(name, version, method)
        return info

    # -------------------------------------------------------------- model calls

    def parse(
        self, body: Mapping[str, Any], model: ModelInfo, key: str, **kw: Any
    ) -> _generate.GenerateRequest:
        return _generate.parse_request(
            body,
            model,
            files=self.files,
            key=key,
            per_image_limit=self.profile.per_image_limit,
            **kw,
        )

    def _generate(self, call: Call, model: ModelInfo) -> Reply:
        body = parse_json(call.body)
        request = self.parse(body, model, _generate.body_key(call.body))
        fault = call.fault if call.fault is not None and not call.fault.transient else None
        response = _generate.respond(request, fault, self.seed)
        if call.route.method == "streamGenerateContent":
            chunks = _generate.stream_chunks(response)
            if call.query.get("alt") == "sse":
                return Reply(content_type="text/event-stream", events=chunks)
            return Reply.json(chunks)  # without alt=sse the service streams one JSON array
        return Reply.json(response)

    def _count_tokens(self, call: Call, model: ModelInfo) -> Reply:
        body = parse_json(call.body)
        inner = _generate.field_of(body, "generateContentRequest") or body
        request = self.parse(inner, model, "", check_config=False)
        return Reply.json(_generate.count_tokens(request))

    def _batch_create(self, call: Call, model: ModelInfo) -> Reply:
        if not self.profile.files_api:
            raise not_found("Batch API is not available on this endpoint.")
        body = parse_json(call.body)
        return Reply.json(
            self.batches.create(model, body, call.base_url, call.route.version, len(call.body))
        )

    def _list_models(self, call: Call) -> Reply:
        size = max(1, min(_int(call.query.get("pageSize"), 50), 1000))
        start = _int(call.query.get("pageToken"), 0)
        infos = list(self.models.values())
        out: dict[str, Any] = {
            "models": [self._model_resource(m) for m in infos[start : start + size]]
        }
        if start + size < len(infos):
            out["nextPageToken"] = str(start + size)
        return Reply.json(out)

    @staticmethod
    def _model_resource(info: ModelInfo) -> dict[str, Any]:
        limit_in, limit_out = _TOKEN_LIMITS.get(info.id, (65_536, 32_768))
        resource: dict[str, Any] = {
            "name": f"models/{info.id}",
            "version": "emulator",
            "displayName": info.name,
            "description": f"{info.name} ({info.id}) as imitated by the nbbanana offline emulator.",
            "inputTokenLimit": limit_in,
            "outputTokenLimit": limit_out,
            "supportedGenerationMethods": list(_METHODS),
            "temperature": 1.0,
            "topP": 0.95,
            "topK": 64,
            "maxTemperature": 2.0,
            "thinking": info.thinking,
        }
        if not info.known:  # a model nbbanana's table does not know: no emulator claims
            resource["description"] = f"{info.id} (offline emulator, generic facts)."
        return resource

    # ------------------------------------------------------------------- files

    def _upload(self, call: Call) -> Reply:
        if not self.profile.files_api or call.route.rest != "files" or call.method != "POST":
            raise not_found("Files API is not available on this endpoint.")
        command = call.headers.get("x-goog-upload-command", "").replace(" ", "").split(",")
        token = call.query.get("upload_id")
        if token is None:
            if "start" not in command:
                raise bad_request("Expected X-Goog-Upload-Command: start.")
            meta = parse_json(call.body).get("file") or {}
            length = call.headers.get("x-goog-upload-header-content-length")
            session = self.files.start_upload(
                meta,
                size=int(length) if length and length.isdigit() else None,
                mime_type=call.headers.get("x-goog-upload-header-content-type"),
            )
            url = f"{call.base_url}/upload/{call.route.version}/files?upload_id={session.token}"
            return Reply(
                headers={
                    "X-Goog-Upload-URL": url,
                    "X-Goog-Upload-Status": "active",
                    "X-Goog-Upload-Chunk-Granularity": "8388608",
                }
            )
        if "upload" not in command:
            raise bad_request("Expected X-Goog-Upload-Command: upload[, finalize].")
        try:
            stored = self.files.upload_chunk(
                token,
                offset=_int(call.headers.get("x-goog-upload-offset"), 0),
                data=call.body,
                finalize="finalize" in command,
            )
        except ApiError as error:
            error.headers["X-Goog-Upload-Status"] = "final"
            raise
        if stored is None:
            return Reply(headers={"X-Goog-Upload-Status": "active"})
        return Reply.json(
            {"file": stored.resource(call.base_url, call.route.version)},
            headers={"X-Goog-Upload-Status": "final"},
        )

    def _list_files(self, call: Call) -> Reply:
        page, token = self.files.list(
            _int(call.query.get("pageSize"), 10), call.query.get("pageToken")
        )
        out: dict[str, Any] = {
            "files": [f.resource(call.base_url, call.route.version) for f in page]
        }
        if token:
            out["nextPageToken"] = token
        return Reply.json(out)

    def _file(self, call: Call, name: str) -> Reply:
        file_id, _, verb = name.partition(":")
        if verb == "download" and call.method == "GET":
            stored = self.files.get(file_id)
            if stored.source != "GENERATED":
                raise bad_request(  # emulator wording
                    f"Only generated files can be downloaded; files/{file_id} was uploaded."
                )
            return Reply(body=stored.data, content_type=stored.mime_type)
        if verb:
            raise not_found(f"Method not found: {verb}.")
        if call.method == "GET":
            return Reply.json(self.files.get(file_id).resource(call.base_url, call.route.version))
        if call.method == "DELETE":
            self.files.delete(file_id)
            return Reply.json({})
        raise not_found(f"Method {call.method} is not allowed on files/{file_id}.")

    # ----------------------------------------------------------------- control

    def _control(self, call: Call) -> Reply:
        if call.route.rest == "faults" and call.method == "POST":
            body = parse_json(call.body)
            name = str(body.get("fault", ""))
            on: Literal["generate", "any"] = "any" if body.get("on") == "any" else "generate"
            params = {str(k): str(v) for k, v in (body.get("params") or {}).items()}
            try:
                self.faults.inject(name, _int(body.get("count"), 1), on, params)
            except ValueError as exc:
                raise bad_request(str(exc)) from None
            return Reply.json({"queued": self.faults.pending()})
        if call.route.rest == "faults" and call.method == "DELETE":
            self.faults.clear()
            return Reply.json({"queued": 0})
        raise not_found("Unknown emulator control endpoint; use POST /emulator/faults.")


def _int(value: object, default: int) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default
