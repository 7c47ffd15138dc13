"""The relay's security points, one test each: tokens, the admin token, other
participants' data, body limits, HTML in prompts and names, binding, CORS, and the
facilitator's key never reaching a participant, a log, the ledger, the gallery or an export."""

from __future__ import annotations

import logging
import socket
import sqlite3
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from _relay_helpers import MODEL, admin, generate, generate_body, running_relay, upstream_key

from nbbanana.relay import Relay, Upstream, _secrets
from nbbanana.relay._upstream import redact_stream

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    relay = Relay(tmp_path_factory.mktemp("workshop"), "emulator", max_request_bytes=200_000)
    with relay:
        yield relay


def test_no_token_and_a_wrong_token_are_refused(relay: Relay) -> None:
    missing = generate(relay.base_url, None)
    assert missing.status_code == 401 and missing.json()["error"]["status"] == "UNAUTHENTICATED"
    wrong = generate(relay.base_url, _secrets.new_token())
    assert wrong.status_code == 401
    assert "not valid for this workshop relay" in wrong.json()["error"]["message"]
    assert relay.ledger.requests() == [] or all(
        r["participant_id"] for r in relay.ledger.requests()
    )


def test_a_revoked_token_is_refused_at_once(relay: Relay) -> None:
    (token,) = relay.add_participants(1)
    assert generate(relay.base_url, token).status_code == 200
    pid = relay.ledger.authenticate(token).id  # type: ignore[union-attr]
    relay.revoke(pid)
    refused = generate(relay.base_url, token)
    assert refused.status_code == 403
    assert (
        refused.json()["error"]["message"]
        == "this participant token was revoked; ask the facilitator"
    )


def test_tokens_are_stored_only_as_hashes(relay: Relay) -> None:
    tokens = relay.add_participants(3)
    code = relay.join_code()
    stored = relay.ledger.path.read_bytes() + b"".join(
        p.read_bytes() for p in relay.ledger.directory.glob("ledger.sqlite3*")
    )
    for secret in [*tokens, code, code.replace("-", ""), relay.admin_token or "x"]:
        assert secret.encode() not in stored
    rows = (
        sqlite3.connect(relay.ledger.path).execute("SELECT token_hash FROM participants").fetchall()
    )
    assert _secrets.hash_token(tokens[0]) in {r[0] for r in rows}
    assert len(tokens[0]) > 30 and len(set(tokens)) == 3  # random and long


def test_token_checks_compare_in_constant_time(
    relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[str, str]] = []
    real = _secrets.same_hash
    monkeypatch.setattr(_secrets, "same_hash", lambda a, b: compared.append((a, b)) or real(a, b))
    (token,) = relay.add_participants(1)
    assert relay.ledger.authenticate(token) is not None
    assert relay.ledger.is_admin(relay.admin_token or "")
    assert not relay.ledger.is_admin(token)
    assert len(compared) == 3  # every check went through hmac.compare_digest


def test_the_admin_token_is_not_a_participant_token_and_vice_versa(relay: Relay) -> None:
    (token,) = relay.add_participants(1)
    assert generate(relay.base_url, relay.admin_token).status_code == 401
    for path, body in [
        ("/relay/admin/tokens", {"count": 1}),
        ("/relay/admin/join-codes", {}),
        ("/relay/admin/workshop", {"paused": True}),
        ("/relay/admin/participants/1", {"cap_usd": 100}),
        ("/relay/admin/gallery/1", {"hidden": True}),
    ]:
        for headers in ({}, {"Authorization": f"Bearer {token}"}, {"x-goog-api-key": token}):
            answer = httpx.post(relay.base_url + path, json=body, headers=headers)
            assert answer.status_code in (401, 403), (path, headers, answer.text)
            assert "admin token" in answer.json()["error"]["message"]
    assert not relay.ledger.paused
    ok = httpx.post(
        relay.base_url + "/relay/admin/workshop", json={"paused": False}, headers=admin(relay)
    )
    assert ok.status_code == 200


def test_a_participant_sees_only_their_own_data(relay: Relay) -> None:
    ada, bob = relay.add_participants(2, names=["Ada", "Bob"], cap_usd=1.0)
    assert generate(relay.base_url, bob, "bob's secret prompt").status_code == 200
    mine = httpx.get(relay.base_url + "/relay/me", headers={"x-goog-api-key": ada}).json()
    assert mine["name"] == "Ada" and mine["spent_usd"] == 0 and "token" not in str(mine)
    for path in ("/relay/admin/summary", "/relay/admin/requests"):
        refused = httpx.get(relay.base_url + path, headers={"Authorization": f"Bearer {ada}"})
        assert refused.status_code == 403 and "secret prompt" not in refused.text


def test_a_body_over_the_limit_is_refused_from_its_length_before_it_is_read(relay: Relay) -> None:
    (token,) = relay.add_participants(1)
    with _conn(relay) as sock:
        # Announce 50 MB and send none of it: the answer comes anyway.
        sock.sendall(
            f"POST /v1beta/models/{MODEL}:generateContent HTTP/1.1\r\nHost: x\r\n"
            f"x-goog-api-key: {token}\r\nContent-Type: application/json\r\n"
            "Content-Length: 50000000\r\n\r\n".encode()
        )
        sock.settimeout(10)
        received = b""
        while chunk := sock.recv(4096):  # the relay closes the connection after answering
            received += chunk
        head = received.decode()
    assert head.startswith("HTTP/1.1 413"), head
    assert "Request payload size exceeds the limit: 200000 bytes." in head


def _conn(relay: Relay) -> socket.socket:
    host, port = relay.base_url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)))


def test_a_chunked_body_is_cut_off_as_soon_as_it_passes_the_limit(relay: Relay) -> None:
    (token,) = relay.add_participants(1)
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(1000):  # 64 MB if it were all read
            sent += 65536
            yield b" " * 65536

    try:
        answer = httpx.post(
            f"{relay.base_url}/v1beta/models/{MODEL}:generateContent",
            content=body(), headers={"x-goog-api-key": token}, timeout=30,
        )  # fmt: skip
        assert answer.status_code == 413
    except httpx.HTTPError:
        pass  # the server may close the connection while the client is still sending
    assert sent < 20_000_000
    assert relay.totals()["reserved_usd"] == 0


def test_html_in_prompts_and_names_is_kept_as_text_and_pages_forbid_inline_script(
    relay: Relay,
) -> None:
    (token,) = relay.add_participants(1, names=['<img src=x onerror="alert(1)">'])
    prompt = "<script>alert('pwned')</script> a banana"
    assert generate(relay.base_url, token, prompt).status_code == 200
    items = httpx.get(relay.base_url + "/gallery/items").json()
    assert items[0]["prompt"] == prompt  # data, not markup: the page sets it as text
    assert items[0]["name"] == '<img src=x onerror="alert(1)">'
    page = httpx.get(relay.base_url + "/gallery")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    script = httpx.get(relay.base_url + "/static/gallery.js").text
    assert "innerHTML" not in script and "textContent" in script
    from nbbanana.relay._view import GalleryView

    view = GalleryView(relay.base_url).refresh()
    assert "<script>" not in view._repr_html_() and "&lt;script&gt;" in view._repr_html_()


def test_cors_is_closed_unless_configured(relay: Relay, tmp_path: Path) -> None:
    preflight = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-goog-api-key",
    }
    url = f"/v1beta/models/{MODEL}:generateContent"
    closed = httpx.options(relay.base_url + url, headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    with Relay(tmp_path, "emulator", cors_origins=["https://class.example"]) as open_relay:
        allowed = httpx.options(
            open_relay.base_url + url, headers={**preflight, "Origin": "https://class.example"}
        )
        assert allowed.headers["access-control-allow-origin"] == "https://class.example"
        other = httpx.options(open_relay.base_url + url, headers=preflight)
        assert other.headers.get("access-control-allow-origin") != "https://evil.example"


def test_binds_to_loopback_unless_a_host_is_given_and_then_says_to_put_tls_in_front(
    tmp_path: Path,
) -> None:
    with Relay(tmp_path / "a", "emulator") as local:
        assert local.base_url.startswith("http://127.0.0.1:")
        assert local._socket is not None and local._socket.getsockname()[0] == "127.0.0.1"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Relay(tmp_path / "b", "emulator", host="0.0.0.0") as exposed:
            assert exposed._socket is not None and exposed._socket.getsockname()[0] == "0.0.0.0"
    assert any("Put TLS in front" in str(w.message) for w in caught)


def test_the_key_reaches_no_participant_log_ledger_gallery_or_export(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    with running_relay(tmp_path / "ws") as relay:
        key = upstream_key(relay)
        (token,) = relay.add_participants(1, cap_usd=0.05)
        for answer in (
            generate(relay.base_url, token),
            generate(relay.base_url, token, stream=True),  # refused: over the cap
            httpx.get(relay.base_url + "/v1beta/models", headers={"x-goog-api-key": token}),
            httpx.get(
                relay.base_url + f"/v1beta/models/{MODEL}", headers={"x-goog-api-key": token}
            ),
            httpx.get(relay.base_url + "/v1beta/models/nope", headers={"x-goog-api-key": token}),
            httpx.post(
                relay.base_url + f"/v1beta/models/{MODEL}:countTokens",
                json=generate_body("x"),
                headers={"x-goog-api-key": token},
            ),
            httpx.get(relay.base_url + "/gallery/items"),
            httpx.get(relay.base_url + "/relay/admin/summary", headers=admin(relay)),
            httpx.get(relay.base_url + "/relay/admin/requests", headers=admin(relay)),
            httpx.get(relay.base_url + "/relay/me", headers={"x-goog-api-key": token}),
        ):
            seen.append(answer.text + str(answer.headers))
        assert any("candidates" in s for s in seen) and any("models" in s for s in seen)
        from nbbanana.relay._export import export

        export(relay.ledger, tmp_path / "export")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".png" for p in files)
    for path in files:
        assert key.encode() not in path.read_bytes(), path.name
    assert key not in "\n".join(seen)
    assert key not in caplog.text and "generateContent" in caplog.text


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _collect(source: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in source])


def test_a_key_echoed_by_the_upstream_is_removed_even_across_chunks() -> None:
    import asyncio

    key = b"AIzaSyTHE-FACILITATORS-KEY-123456789"
    text = b'{"error": {"message": "API key ' + key + b" is not valid, " + key + b'"}}'
    for cut in range(1, len(text)):
        out = asyncio.run(_collect(redact_stream(_chunks(text[:cut], text[cut:]), key)))
        assert key not in out and out.count(b"[redacted]") == 2


def test_an_upstream_that_refuses_the_key_reads_as_the_facilitators_problem(tmp_path: Path) -> None:
    key = "AIzaSy-facilitator-key-for-this-test-0000"

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["x-goog-api-key"] == key  # forwarded with the key...
        assert "nbr-" not in str(request.headers)  # ...never the participant's token
        return httpx.Response(400, json={"error": {"code": 400, "status": "INVALID_ARGUMENT",
                              "message": f"API key not valid: {key}"}})  # fmt: skip

    upstream = Upstream("http://upstream.test", key, transport=httpx.MockTransport(handler))
    with Relay(tmp_path, upstream) as relay:
        (token,) = relay.add_participants(1, cap_usd=1.0)
        answer = generate(relay.base_url, token)
        assert answer.status_code == 502 and key not in answer.text
        assert "tell the facilitator" in answer.json()["error"]["message"]
        assert relay.totals()["spent_usd"] == 0  # a failed request costs nothing


def test_malformed_bodies_are_refused_as_invalid_not_as_a_crash(relay: Relay) -> None:
    (token,) = relay.add_participants(1)
    url = f"{relay.base_url}/v1beta/models/{MODEL}:generateContent"
    headers = {"x-goog-api-key": token, "content-type": "application/json"}
    for body in (b"not json", b"[1, 2]", b'{"generationConfig": {"candidateCount": "many"}}'):
        answer = httpx.post(url, content=body, headers=headers)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    too_many = httpx.post(
        relay.base_url + "/relay/admin/tokens", json={"count": 10**9}, headers=admin(relay)
    )
    assert too_many.status_code == 400 and "between 1 and 1000" in too_many.text


def test_the_key_reaches_only_model_paths_of_the_upstream(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(200, json={"models": []})

    upstream = Upstream("http://upstream.test", "k" * 30, transport=httpx.MockTransport(handler))
    with Relay(tmp_path, upstream) as relay:
        (token,) = relay.add_participants(1)
        headers = {"x-goog-api-key": token}
        for path in ("/v1beta/models/..", "/v1beta/models/%2e%2e", "/v1beta/models/..%2Ffiles",
                     "/v1beta/files", "/v1beta/models/x/../../files", "/v9/models"):  # fmt: skip
            answer = httpx.get(relay.base_url + path, headers=headers)
            assert answer.status_code == 404, (path, answer.text)
        assert httpx.get(relay.base_url + "/v1beta/models", headers=headers).status_code == 200
        assert (
            httpx.get(relay.base_url + f"/v1beta/models/{MODEL}", headers=headers).status_code
            == 200
        )
    assert seen == ["/v1beta/models", f"/v1beta/models/{MODEL}"]


def test_an_upstream_that_breaks_off_mid_answer_is_settled_once_at_its_estimate(
    tmp_path: Path,
) -> None:
    class _Broken(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b'{"candidates": ['
            raise httpx.ReadError("connection reset by peer")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "application/json"}, stream=_Broken())

    upstream = Upstream("http://upstream.test", "k" * 30, transport=httpx.MockTransport(handler))
    with Relay(tmp_path, upstream) as relay:
        (token,) = relay.add_participants(1, cap_usd=1.0)
        with pytest.raises(httpx.HTTPError):
            generate(relay.base_url, token)
        (row,) = relay.ledger.requests()
        assert row["status"] == "interrupted" and row["cost_micros"] == row["est_micros"] > 0
        assert relay.relay_app.in_flight == 0
