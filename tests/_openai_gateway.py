"""A small OpenAI-compatible gateway in front of a Gemini endpoint, for tests only.

Written independently of nbbanana's OpenAI backend and of the emulator's OpenAI surface
(it imports neither), from the public shapes: it takes ``POST /v1/chat/completions``,
translates the messages into a Gemini ``generateContent`` request, forwards it with its
own upstream key, and answers in OpenRouter's shape (``message.images[]``). Like many
relays it refuses bodies over 20 MB with a 413 and its own wording, checks a bearer key
of its own, and passes upstream errors on as OpenAI-style error JSON.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LIMIT = 20_000_000


class Gateway:
    def __init__(self, upstream: str, upstream_key: str, key: str, limit: int = LIMIT) -> None:
        self.upstream = upstream.rstrip("/")
        self.upstream_key = upstream_key
        self.key = key
        self.limit = limit
        self.seen: list[tuple[str, int, int]] = []  # (path, body bytes, status)
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                gateway.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> Gateway:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ one request

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        if length > self.limit:
            remaining = length
            while remaining > 0:
                remaining -= len(request.rfile.read(min(remaining, 1 << 20)))
            return self.reply(
                request,
                413,
                _error("file size exceeds maximum allowed size: 20MB", "request_too_large"),
                length,
            )
        body = request.rfile.read(length)
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return self.reply(request, 401, _error("invalid api key", "invalid_api_key"), length)
        if request.path.rstrip("/") != "/v1/chat/completions":
            return self.reply(request, 404, _error("no such route", "not_found"), length)
        try:
            payload = json.loads(body)
            model = str(payload["model"]).split("/")[-1]
            gemini = _to_gemini(payload)
        except (ValueError, KeyError, TypeError) as exc:
            return self.reply(
                request, 400, _error(f"bad request: {exc}", "invalid_request"), length
            )
        url = f"{self.upstream}/v1beta/models/{model}:generateContent"
        upstream = urllib.request.Request(
            url,
            data=json.dumps(gemini).encode(),
            headers={"Content-Type": "application/json", "x-goog-api-key": self.upstream_key},
        )
        try:
            with urllib.request.urlopen(upstream, timeout=120) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = json.loads(exc.read() or b"{}").get("error", {})
            return self.reply(
                request,
                exc.code,
                _error(str(detail.get("message", "upstream error")), "upstream_error"),
                length,
            )
        self.reply(request, 200, _to_openai(answer, str(payload["model"])), length)

    def reply(self, request: BaseHTTPRequestHandler, status: int, obj: Any, length: int) -> None:
        self.seen.append((request.path, length, status))
        data = json.dumps(obj).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)


def _error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": code}}


def _to_gemini(payload: dict[str, Any]) -> dict[str, Any]:
    contents = []
    system = []
    for message in payload["messages"]:
        items = message["content"]
        items = [{"type": "text", "text": items}] if isinstance(items, str) else items
        parts: list[dict[str, Any]] = []
        for item in items:
            if item["type"] == "text":
                parts.append({"text": item["text"]})
            elif item["type"] == "image_url":
                head, _, data = item["image_url"]["url"].partition(",")
                mime = head.removeprefix("data:").removesuffix(";base64")
                parts.append({"inline_data": {"mime_type": mime, "data": data}})
        if message["role"] == "system":
            system += parts
        elif parts:
            role = "model" if message["role"] == "assistant" else "user"
            contents.append({"role": role, "parts": parts})
    config: dict[str, Any] = {
        "responseModalities": [m.upper() for m in payload.get("modalities", ["image", "text"])]
    }
    image_config = payload.get("image_config") or {}
    if image_config:
        config["imageConfig"] = {
            {"aspect_ratio": "aspectRatio", "image_size": "imageSize"}[k]: v
            for k, v in image_config.items()
        }
    out: dict[str, Any] = {"contents": contents, "generationConfig": config}
    if system:
        out["systemInstruction"] = {"parts": system}
    return out


def _to_openai(answer: dict[str, Any], model: str) -> dict[str, Any]:
    candidate = (answer.get("candidates") or [{}])[0]
    texts, images = [], []
    for part in (candidate.get("content") or {}).get("parts", []):
        if part.get("thought"):
            continue
        if "text" in part:
            texts.append(part["text"])
        elif "inlineData" in part:
            blob = part["inlineData"]
            url = f"data:{blob['mimeType']};base64,{blob['data']}"
            images.append({"type": "image_url", "image_url": {"url": url}})
    finish = candidate.get("finishReason", "STOP")
    usage = answer.get("usageMetadata", {})
    return {
        "id": "gen-test",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(texts), "images": images},
                "finish_reason": "stop" if finish == "STOP" else "content_filter",
            }
        ],
        "usage": {
            "prompt_tokens": usage.get("promptTokenCount", 0),
            "completion_tokens": usage.get("candidatesTokenCount", 0),
            "total_tokens": usage.get("totalTokenCount", 0),
        },
    }
