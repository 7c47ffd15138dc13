"""The emulator as a server under hostile or heavy traffic: malformed framing and JSON are
400s with Gemini's JSON error (never a 500 and a traceback), a body over the limit is
refused while it arrives (never buffered whole), 100 simultaneous connections are all
served, and ``log=`` writes one line per request without any key."""

from __future__ import annotations

import io
import json
import re
import socket
import threading
import tracemalloc
from collections.abc import Iterator

import pytest
from google import genai
from google.genai import types

from nbbanana.emulator import Emulator

FLASH = "gemini-2.5-flash-image"
GENERATE = f"/v1beta/models/{FLASH}:generateContent"


def _address(emulator: Emulator) -> tuple[str, int]:
    host, port = emulator.base_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _exchange(emulator: Emulator, raw: bytes, *, timeout: float = 10) -> tuple[int, bytes]:
    """Send ``raw`` bytes on a fresh connection; the status and body of the answer."""
    with socket.create_connection(_address(emulator), timeout=timeout) as sock:
        sock.sendall(raw)
        return _answer(sock)


def _answer(sock: socket.socket) -> tuple[int, bytes]:
    reader = sock.makefile("rb")
    status_line = reader.readline()
    assert status_line.startswith(b"HTTP/1."), status_line
    status = int(status_line.split()[1])
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, reader.read(length)


def _post(path: str, body: bytes, extra: str = "") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nx-goog-api-key: k\r\n"
        f"Content-Type: application/json\r\n{extra}"
    )
    return head.encode() + b"\r\n" + body


def _assert_gemini_400(status: int, body: bytes) -> str:
    assert status == 400, body[:300]
    error = json.loads(body)["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
    assert "Traceback" not in error["message"] and "internal" not in error["message"].lower()
    return str(error["message"])


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(seed=2, request_limit=1_000_000) as emu:
        yield emu


def _still_serves(emulator: Emulator) -> None:
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=emulator.base_url))
    assert client.models.generate_content(model=FLASH, contents="still there?").candidates


# --------------------------------------------------------------------------- item 7


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # RecursionError in json.loads
        b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
        json.dumps({"contents": [{"parts": [{"text": "x", "extra": "DEEP"}]}]})
        .replace('"DEEP"', "[" * 150 + "]" * 150)
        .encode(),  # parses, but far deeper than any request
    ],
    ids=["arrays", "objects", "parsable-but-deep"],
)
def test_deeply_nested_json_is_a_400(emulator: Emulator, body: bytes) -> None:
    raw = _post(GENERATE, body, f"Content-Length: {len(body)}\r\n")
    message = _assert_gemini_400(*_exchange(emulator, raw))
    assert message.startswith("Invalid JSON payload received.")
    _still_serves(emulator)


def test_deeply_nested_batch_input_line_is_a_400(emulator: Emulator) -> None:
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=emulator.base_url))
    line = b'{"request": ' + b"[" * 50_000 + b"]" * 50_000 + b"}\n"
    uploaded = client.files.upload(
        file=io.BytesIO(line), config=types.UploadFileConfig(mime_type="application/jsonl")
    )
    with pytest.raises(genai.errors.ClientError) as info:
        client.batches.create(model=FLASH, src=uploaded.name or "")
    assert info.value.code == 400 and "line 1" in str(info.value.message)


@pytest.mark.parametrize("value", ["-1", "-99999", "abc", "1e3", "0x10", "+5", "5, 5", ""])
def test_invalid_content_length_is_a_400(emulator: Emulator, value: str) -> None:
    raw = _post(GENERATE, b'{"contents": []}', f"Content-Length: {value}\r\n")
    message = _assert_gemini_400(*_exchange(emulator, raw, timeout=5))
    assert "Content-Length" in message
    _still_serves(emulator)


def test_two_different_content_lengths_are_a_400(emulator: Emulator) -> None:
    raw = _post(GENERATE, b'{"contents": []}', "Content-Length: 16\r\nContent-Length: 3\r\n")
    assert "Content-Length" in _assert_gemini_400(*_exchange(emulator, raw, timeout=5))


def test_an_absurd_content_length_is_refused_at_once(emulator: Emulator) -> None:
    raw = _post(GENERATE, b"{}", "Content-Length: 99999999999999999999999\r\n")
    assert "exceeds the limit" in _assert_gemini_400(*_exchange(emulator, raw, timeout=5))
    _still_serves(emulator)


@pytest.mark.parametrize(
    "chunks",
    [
        b"zz\r\n{}\r\n0\r\n\r\n",
        b"-5\r\n{}\r\n0\r\n\r\n",
        b"\r\n",
        b"2\r\n{}XX0\r\n\r\n",  # no CRLF after the chunk data
        b"1" * 2000 + b"\r\n",  # a size line longer than any real one
        b"FFFFFFFFFFFFFFFFFFFFFFFF\r\n",  # absurd size
    ],
    ids=["not-hex", "negative", "empty", "no-crlf", "overlong", "absurd"],
)
def test_bad_chunked_framing_is_a_400(emulator: Emulator, chunks: bytes) -> None:
    raw = _post(GENERATE, chunks, "Transfer-Encoding: chunked\r\n")
    message = _assert_gemini_400(*_exchange(emulator, raw, timeout=5))
    assert "chunk" in message.lower() or "exceeds" in message.lower()
    _still_serves(emulator)


def test_a_malformed_request_line_gets_a_json_error(emulator: Emulator) -> None:
    status, body = _exchange(emulator, b"NONSENSE\r\n\r\n")
    assert status == 400
    assert json.loads(body)["error"]["status"] == "INVALID_ARGUMENT"


def test_no_request_ended_in_a_500(emulator: Emulator) -> None:
    raw = _post(GENERATE, b"[" * 100_000, "Content-Length: 100000\r\n")
    _exchange(emulator, raw)
    assert all(r.status != 500 for r in emulator.requests)


# --------------------------------------------------------------------------- item 8


def test_a_hundred_simultaneous_connections_are_all_served(emulator: Emulator) -> None:
    count = 100
    request = b"GET /v1beta/models HTTP/1.1\r\nHost: x\r\nx-goog-api-key: k\r\n\r\n"
    barrier = threading.Barrier(count)
    statuses: list[int | str] = []
    lock = threading.Lock()

    def client() -> None:
        barrier.wait()
        try:
            # Generous: a dropped connection is caught by the next test, which does
            # not depend on timing.
            status, _ = _exchange(emulator, request, timeout=20)
            outcome: int | str = status
        except OSError as exc:
            outcome = type(exc).__name__
        with lock:
            statuses.append(outcome)

    threads = [threading.Thread(target=client) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert statuses == [200] * count


def test_the_listen_backlog_admits_a_hundred_waiting_connections() -> None:
    """Connections the server has not accepted yet wait in the kernel's listen queue;
    that queue must hold 100 of them (the standard library's default holds 5, and
    twenty students connecting at once got resets and stalls)."""
    emulator = Emulator()
    emulator.start()
    server = emulator._server
    assert server is not None
    try:
        # Stop accepting: the listening socket stays open, nobody calls accept().
        server.shutdown()
        sockets = []
        try:
            for _ in range(100):
                sock = socket.socket()
                sock.settimeout(0.5)
                sock.connect(server.server_address[:2])  # completes only if queued
                sockets.append(sock)
        finally:
            for sock in sockets:
                sock.close()
        assert len(sockets) == 100
    finally:
        emulator.stop()


# --------------------------------------------------------------------------- item 9


def _send_chunked(emulator: Emulator, total: int, piece: int = 1 << 20) -> tuple[int, bytes]:
    with socket.create_connection(_address(emulator), timeout=30) as sock:
        sock.sendall(_post(GENERATE, b"", "Transfer-Encoding: chunked\r\n"))
        block = b"%x\r\n%s\r\n" % (piece, b"A" * piece)
        try:
            for _ in range(total // piece):
                sock.sendall(block)
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may stop reading once it has refused
        return _answer(sock)


def test_a_huge_chunked_body_is_refused_as_it_arrives() -> None:
    with Emulator(request_limit=2_000_000) as emulator:
        tracemalloc.start()
        try:
            status, body = _send_chunked(emulator, 64 * 1024 * 1024)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert status == 400
        assert json.loads(body)["error"]["message"] == (
            "Request payload size exceeds the limit: 2000000 bytes."
        )
        # Counted as it arrived, never kept: far less than the 64 MB sent.
        assert peak < 16 * 1024 * 1024, peak
        assert emulator.requests[-1].body_bytes > 2_000_000
        _still_serves(emulator)


def test_a_chunked_body_within_the_limit_is_read() -> None:
    with Emulator(request_limit=2_000_000) as emulator:
        body = json.dumps({"contents": [{"parts": [{"text": "x" * 100_000}]}]}).encode()
        pieces = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 7000]), body[i : i + 7000])
            for i in range(0, len(body), 7000)
        )
        raw = _post(f"/v1beta/models/{FLASH}:countTokens", pieces + b"0\r\n\r\n",
                    "Transfer-Encoding: chunked\r\n")  # fmt: skip
        status, answer = _exchange(emulator, raw)
        assert status == 200, answer
        assert emulator.requests[-1].body_bytes == len(body)


def test_a_content_length_body_over_the_limit_is_never_kept() -> None:
    with Emulator(request_limit=2_000_000) as emulator:
        total = 64 * 1024 * 1024
        tracemalloc.start()
        try:
            with socket.create_connection(_address(emulator), timeout=30) as sock:
                sock.sendall(_post(GENERATE, b"", f"Content-Length: {total}\r\n"))
                piece = b"A" * (1 << 20)
                try:
                    for _ in range(total // len(piece)):
                        sock.sendall(piece)
                except OSError:
                    pass
                status, _ = _answer(sock)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert status == 400
        assert peak < 16 * 1024 * 1024, peak


# --------------------------------------------------------------------------- item 10


def test_log_writes_one_line_per_request_without_keys() -> None:
    log = io.StringIO()
    with Emulator(log=log, api_keys={"secret-key-123"}) as emulator:
        client = genai.Client(
            api_key="secret-key-123", http_options=types.HttpOptions(base_url=emulator.base_url)
        )
        client.models.generate_content(model=FLASH, contents="hello")
        raw = b"GET /v1beta/models?key=secret-key-123&pageSize=2 HTTP/1.1\r\nHost: x\r\n\r\n"
        assert _exchange(emulator, raw)[0] == 200
        bad = b"GET /v1beta/models?key=wrong-key-456 HTTP/1.1\r\nHost: x\r\n\r\n"
        assert _exchange(emulator, bad)[0] == 400
        garbled = b"GET /v1beta/models?key=wrong-key-456 HTTP/1.1 extra\r\n\r\n"
        assert _exchange(emulator, garbled)[0] == 400
        pasted = b"GET /v1beta/secret-key-123/AIza" + b"x" * 35 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        assert _exchange(emulator, pasted)[0] == 403
    lines = log.getvalue().splitlines()
    assert len(lines) == 5, lines
    assert "GET /v1beta/***/*** 403 " in lines.pop()
    assert re.fullmatch(r"\d{2}:\d{2}:\d{2} - - 400 in 0 B out \d+ B \d+ ms", lines.pop())
    pattern = re.compile(
        r"^\d{2}:\d{2}:\d{2} (GET|POST) (/\S+) (\d{3}) in (\d+) B out (\d+) B (\d+) ms$"
    )
    parsed = [pattern.match(line) for line in lines]
    assert all(parsed), lines
    first, second, third = (m.groups() for m in parsed if m)
    assert first[0] == "POST" and first[1].endswith(f"/models/{FLASH}:generateContent")
    assert first[2] == "200" and int(first[3]) > 0 and int(first[4]) > 1000
    assert second[:3] == ("GET", "/v1beta/models", "200")
    assert third[:3] == ("GET", "/v1beta/models", "400")
    assert "secret-key-123" not in log.getvalue() and "wrong-key-456" not in log.getvalue()
    assert "key=" not in log.getvalue()


@pytest.mark.parametrize(
    "body",
    [
        b'{"contents": [{"parts": [{"text": "x"}]}], "n": ' + b"1" * 5000 + b"}",
        b'{"batch": {"inputConfig": {"requests": {"requests": [5]}}}}',
        b'{"batch": {"inputConfig": {"requests": {"requests": [{"request": 5}]}}}}',
    ],
    ids=["integer-too-long-for-python", "batch-entry-not-object", "batch-request-not-object"],
)
def test_other_malformed_bodies_are_400s(emulator: Emulator, body: bytes) -> None:
    method = "batchGenerateContent" if b"batch" in body else "generateContent"
    raw = _post(f"/v1beta/models/{FLASH}:{method}", body, f"Content-Length: {len(body)}\r\n")
    _assert_gemini_400(*_exchange(emulator, raw))
