"""The Gemini-native path accepts an image that a relay returns inside a text part
(a Markdown data URL or a hosted URL) instead of ``inlineData`` [reference §13]."""

from __future__ import annotations

import base64
import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import nbbanana
from nbbanana import errors
from nbbanana.emulator import Emulator

pytest.importorskip("nbbanana._gemini", reason="needs the request pipeline's Gemini backend")


class TextRelay:
    """Forwards ``generateContent`` to a Gemini endpoint and moves every image of the
    answer into a text part: ``![image](data:…)``, or a URL this relay serves."""

    def __init__(self, upstream: str, hosted: bool) -> None:
        self.upstream, self.hosted = upstream, hosted
        self.images: dict[str, bytes] = {}
        self.broken_links = False  # hand out links it cannot serve
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                data = b"" if relay.broken_links else relay.images.get(name, b"")
                self._send(200 if data else 404, data, "image/png")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                forward = urllib.request.Request(
                    relay.upstream + self.path,
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        "x-goog-api-key": self.headers.get("x-goog-api-key", ""),
                    },
                )
                with urllib.request.urlopen(forward, timeout=60) as response:
                    answer = json.loads(response.read())
                base = f"http://127.0.0.1:{relay.server.server_address[1]}"
                for candidate in answer.get("candidates", []):
                    for part in candidate.get("content", {}).get("parts", []):
                        blob = part.pop("inlineData", None)
                        if blob is None:
                            continue
                        if relay.hosted:
                            name = f"{len(relay.images)}.png"
                            relay.images[name] = base64.b64decode(blob["data"])
                            part["text"] = f"![image]({base}/hosted/{name})"
                        else:
                            part["text"] = (
                                f"![image](data:{blob['mimeType']};base64,{blob['data']})"
                            )
                self._send(200, json.dumps(answer).encode(), "application/json")

            def _send(self, status: int, data: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=["data-url", "hosted-url"])
def relay(request: pytest.FixtureRequest) -> Iterator[TextRelay]:
    with Emulator(seed=13) as upstream:
        text_relay = TextRelay(upstream.base_url, hosted=request.param == "hosted-url")
        yield text_relay
        text_relay.close()


def test_an_image_in_a_text_part_is_an_image(relay: TextRelay) -> None:
    session = nbbanana.connect(
        "relay-key", base_url=relay.base_url, endpoint="proxy-20mb", model="gemini-2.5-flash-image"
    )
    result = session.generate("a lighthouse", aspect_ratio="16:9")
    assert result.image is not None and result.image.size == (1344, 768)
    assert "![image]" not in result.text


def test_a_hosted_link_that_fails_is_service_unavailable() -> None:
    with Emulator(seed=13) as upstream:
        relay = TextRelay(upstream.base_url, hosted=True)
        relay.broken_links = True
        session = nbbanana.connect("relay-key", base_url=relay.base_url, endpoint="proxy-20mb")
        try:
            with pytest.raises(errors.ServiceUnavailable, match="image link"):
                session.generate("a lighthouse")
        finally:
            relay.close()
