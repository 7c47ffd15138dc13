"""Discovery: the real SDK's ``models.list`` over HTTP against the emulator, the caches,
``nbbanana models``, ``Session.models()`` / ``nbbanana.models()``, and what a 404 says."""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from _client_helpers import session_for
from google import genai
from google.genai import types

import nbbanana
from nbbanana import discovery, errors
from nbbanana.cli import main
from nbbanana.emulator import OFFLINE_API_KEY, Emulator
from nbbanana.models import MODELS, RETIRED


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test with an empty memory cache and its own XDG cache folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    discovery.clear_cache()
    yield tmp_path / "cache" / "nbbanana"
    discovery.clear_cache()


def _client(emulator: Emulator) -> genai.Client:
    return genai.Client(
        api_key=OFFLINE_API_KEY, http_options=types.HttpOptions(base_url=emulator.base_url)
    )


def _lists(emulator: Emulator) -> int:
    return sum(1 for r in emulator.requests if r.path.endswith("/models") and r.method == "GET")


def test_the_emulator_serves_the_table_and_discovery_classifies_it(emulator: Emulator) -> None:
    catalogue = discovery.discover(_client(emulator), emulator.base_url)
    status = {row.id: row.status for row in catalogue}
    assert all(status[i] == "available" for i in MODELS)
    assert all(status[i] == "retired" for i in RETIRED)
    assert catalogue.available == list(MODELS)
    assert catalogue.default_model == "gemini-nano-banana-2.1"
    pro = catalogue.row("gemini-3-pro-image")
    assert pro is not None and pro.sizes == ("1K", "2K", "4K") and pro.reference_limit == 14
    assert pro.price_per_image == {"1K": 0.1344, "2K": 0.1344, "4K": 0.24}
    assert "models.list" in pro.sources["status"] and "pricing page" in pro.sources["price"]
    retired = catalogue.row("gemini-3-pro-image-preview")
    assert retired is not None and retired.successor == "gemini-3-pro-image"
    assert retired.retired == "2026-06-25"


def test_a_model_missing_from_the_service_and_a_new_one(fresh_cache: Path) -> None:
    served = ["gemini-3-pro-image", "gemini-4-flash-image"]
    with Emulator(models=served) as emulator:
        catalogue = discovery.discover(_client(emulator), emulator.base_url)
    status = {row.id: row.status for row in catalogue}
    assert status["gemini-3-pro-image"] == "available"
    assert status["gemini-4-flash-image"] == "new"
    assert status["gemini-3.1-flash-image"] == "unavailable"
    assert status["gemini-2.5-flash-image"] == "retired"  # reported retired, and not listed
    new = catalogue.row("gemini-4-flash-image")
    assert new is not None and new.price_per_image is None and new.sizes is None
    assert "unknown" in new.sources["price"]
    assert catalogue.default_model == "gemini-3-pro-image"


def test_listing_is_cached_in_memory_and_on_disk_for_a_day(
    emulator: Emulator, fresh_cache: Path
) -> None:
    client = _client(emulator)
    clock = [1_000_000.0]
    first = discovery.discover(client, emulator.base_url, persist=True, now=lambda: clock[0])
    assert not first.from_cache and _lists(emulator) == 1
    (cached,) = fresh_cache.glob("models-*.json")
    stored = json.loads(cached.read_text())
    assert stored["base_url"] == emulator.base_url and "key" not in cached.read_text().lower()
    again = discovery.discover(client, emulator.base_url, persist=True, now=lambda: clock[0])
    assert again.from_cache and _lists(emulator) == 1
    discovery.clear_cache()  # a new process: the disk file answers
    clock[0] += 3600
    from_disk = discovery.discover(client, emulator.base_url, persist=True, now=lambda: clock[0])
    assert from_disk.from_cache and from_disk.available == first.available
    assert _lists(emulator) == 1
    clock[0] += discovery.CACHE_SECONDS  # a day later: asked again
    discovery.clear_cache()
    stale = discovery.discover(client, emulator.base_url, persist=True, now=lambda: clock[0])
    assert not stale.from_cache and _lists(emulator) == 2
    discovery.discover(client, emulator.base_url, refresh=True, now=lambda: clock[0])
    assert _lists(emulator) == 3


def test_loopback_endpoints_are_not_written_to_disk(emulator: Emulator, fresh_cache: Path) -> None:
    discovery.discover(_client(emulator), emulator.base_url)
    assert not fresh_cache.exists() or not list(fresh_cache.glob("models-*.json"))


def test_a_damaged_cache_file_is_ignored(emulator: Emulator, fresh_cache: Path) -> None:
    client = _client(emulator)
    discovery.discover(client, emulator.base_url, persist=True)
    (cached,) = fresh_cache.glob("models-*.json")
    cached.write_text("{not json")
    discovery.clear_cache()
    catalogue = discovery.discover(client, emulator.base_url, persist=True)
    assert not catalogue.from_cache and catalogue.available


def test_session_models_and_nbbanana_models(emulator: Emulator) -> None:
    session = session_for(emulator.base_url)
    rows = session.models()
    assert "gemini-3-pro-image" in rows.available
    assert nbbanana.models(session).available == rows.available
    assert nbbanana.models.list_models(session).available == rows.available
    assert "gemini-3-pro-image" in str(rows) and "<table" in rows._repr_html_()


def test_the_default_model_is_the_first_preferred_one_served() -> None:
    with Emulator(models=["gemini-3-pro-image", "gemini-3.1-flash-image"]) as emulator:
        session = nbbanana.connect("test-key", base_url=emulator.base_url)
        assert session.model == "gemini-3.1-flash-image"
        result = session.generate("a banana")
    assert result.model == "gemini-3.1-flash-image"


def test_offline_default_model_is_a_ga_model() -> None:
    session = nbbanana.connect(offline=True)
    assert session.model == "gemini-nano-banana-2.1" and session.model in MODELS


def test_a_retired_id_fails_before_sending(emulator: Emulator) -> None:
    session = session_for(emulator.base_url)
    before = len(emulator.requests)
    with pytest.raises(errors.ModelUnavailable, match="use its successor gemini-3-pro-image"):
        session.generate("a banana", model="gemini-3-pro-image-preview")
    assert len(emulator.requests) == before
    with pytest.raises(errors.ModelUnavailable, match="shut down on 2026-06-25"):
        nbbanana.connect("test-key", base_url=emulator.base_url, model="gemini-3-pro-image-preview")


def test_a_model_the_emulator_lacks_gives_the_served_list() -> None:
    with Emulator(models=["gemini-3-pro-image", "gemini-nano-banana-2.1"]) as emulator:
        session = session_for(emulator.base_url, model="gemini-nano-banana-2.1")
        with pytest.raises(errors.ModelUnavailable) as caught:
            session.generate("a banana", model="gemini-3.1-flash-image")
    message = str(caught.value)
    assert "gemini-3.1-flash-image is not served" in message and "404" in message
    assert "gemini-3-pro-image, gemini-nano-banana-2.1" in message
    assert caught.value.successor == "gemini-nano-banana-2.1" and caught.value.code == 404


def test_not_found_for_a_retired_id_names_the_successor(emulator: Emulator) -> None:
    catalogue = discovery.discover(_client(emulator), emulator.base_url)
    error = discovery.not_found_error("models/gemini-3.1-flash-image-preview", catalogue)
    assert error.successor == "gemini-3.1-flash-image"
    assert "Image models served at" in str(error) and "gemini-3-pro-image" in str(error)


def test_unknown_model_cost_shows_as_unknown() -> None:
    with Emulator(models=["gemini-4-flash-image"]) as emulator, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = session_for(emulator.base_url, model="gemini-4-flash-image")
        result = session.generate("a banana")
        estimate = session.estimate("a banana")
        capped = session_for(emulator.base_url, model="gemini-4-flash-image", max_cost_usd=1)
        before = len(emulator.requests)
        with pytest.raises(errors.CostLimitExceeded, match="price of gemini-4-flash-image"):
            capped.generate("a banana")
        assert len(emulator.requests) == before
    assert result.cost_usd is None and "cost unknown" in result.footer()
    assert estimate.usd is None and "cost unknown" in str(estimate)
    assert session.spent == 0.0


def test_models_cli_json(emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json", "--base-url", emulator.base_url]) == 0
    table = json.loads(capsys.readouterr().out)
    rows = {row["id"]: row for row in table["models"]}
    assert {i for i, r in rows.items() if r["status"] == "available"} == set(MODELS)
    assert rows["gemini-3-pro-image-preview"]["status"] == "retired"
    assert rows["gemini-3-pro-image-preview"]["successor"] == "gemini-3-pro-image"
    assert rows["gemini-3.1-flash-image-preview"]["successor"] == "gemini-3.1-flash-image"
    assert rows["gemini-3-pro-image"]["sources"]["price"].startswith("pricing page")
    assert rows["gemini-3.1-flash-lite-image"]["price_per_image"] is None
    assert table["default_model"] == "gemini-nano-banana-2.1"


def test_models_cli_table(emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--base-url", emulator.base_url]) == 0
    out = capsys.readouterr().out
    assert "retired → gemini-3-pro-image" in out and "$0.240 (4K)" in out


def test_connect_asks_for_the_model_list_once_and_does_not_wait_on_retries() -> None:
    """The listing at connect only picks the default model: a service that answers 503
    (or a closed network) costs one attempt, not the retries' back-off, and the table's
    default stands in."""
    asked: list[str] = []

    class Unavailable(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = b'{"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}}'
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        session = nbbanana.connect("test-key", base_url=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
    assert len(asked) == 1 and asked[0].split("?")[0].endswith("/models")
    assert session.model == nbbanana.models.DEFAULT_MODEL
