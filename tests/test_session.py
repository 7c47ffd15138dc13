"""Session: the real google-genai SDK over real HTTP against the emulator.

Nothing in the SDK is patched; the wire is observed through the emulator's request log
and an httpx event hook installed with the SDK's documented ``client_args``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _client_helpers import FAST_RETRY, recorded_session, session_for
from google.genai import types
from PIL import Image

import nbbanana
from nbbanana import errors
from nbbanana._connect import DEFAULT_RETRY, connect
from nbbanana.emulator import Emulator
from nbbanana.fit import fit_image
from nbbanana.models import EndpointProfile, get_model
from nbbanana.result import Result
from nbbanana.samples import sample_path


@pytest.fixture(scope="module")
def emulator() -> Any:
    with Emulator(seed=1) as emu:
        yield emu


@pytest.fixture
def session(emulator: Emulator) -> nbbanana.Session:
    return session_for(emulator.base_url)


def _model_calls(emulator: Emulator) -> list[Any]:
    return [r for r in emulator.requests if ":generateContent" in r.path]


def _inline_images(body: dict[str, Any]) -> list[bytes]:
    parts = body["contents"][-1]["parts"]
    return [base64.urlsafe_b64decode(p["inlineData"]["data"]) for p in parts if "inlineData" in p]


# --------------------------------------------------------------------------- generate


def test_generate_returns_an_image_of_the_documented_size(session: nbbanana.Session) -> None:
    result = session.generate("a banana on a blue table")
    assert isinstance(result, Result)
    assert result.image is not None and result.image.size == (1024, 1024)
    assert result.model == "gemini-2.5-flash-image" and result.prompt == "a banana on a blue table"
    assert result.usage.output_image_tokens == 1290
    assert result.cost_usd > 0 and result.latency_s > 0
    assert session.spent == pytest.approx(result.cost_usd)
    wide = session.generate("a banana", aspect_ratio="16:9")
    assert wide.image is not None and wide.image.size == (1344, 768)
    assert wide.params["aspect_ratio"] == "16:9"


def test_generate_with_image_size_on_a_model_that_has_it(session: nbbanana.Session) -> None:
    result = session.generate("a banana", model="gemini-3-pro-image", image_size="2k")
    assert result.image is not None and result.image.size == (2048, 2048)
    assert result.params["image_size"] == "2K"
    assert result.model == "gemini-3-pro-image"


def test_bad_options_are_refused_before_sending(
    session: nbbanana.Session, emulator: Emulator
) -> None:
    before = len(emulator.requests)
    with pytest.raises(errors.InvalidRequest, match="aspect_ratio='7:3'"):
        session.generate("x", aspect_ratio="7:3")
    with pytest.raises(errors.InvalidRequest, match="image_size"):
        session.generate("x", image_size="2K")  # gemini-2.5-flash-image has no image_size
    with pytest.raises(errors.InvalidRequest, match="prompt is empty"):
        session.generate("   ")
    assert len(emulator.requests) == before


# --------------------------------------------------------------------------- edit


def _kinds(tmp_path: Path) -> dict[str, Any]:
    path = sample_path("coffee.jpg")
    data = path.read_bytes()
    pil = Image.open(path)
    return {
        "str path": str(path),
        "Path": path,
        "bytes": data,
        "bytearray": bytearray(data),
        "memoryview": memoryview(data),
        "file object": io.BytesIO(data),
        "PIL": pil,
        "numpy": np.asarray(pil.convert("RGB")),
        "FileUpload item": {
            "name": "coffee.jpg",
            "type": "image/jpeg",
            "size": len(data),
            "content": memoryview(data),
        },
        "FittedImage": fit_image(path),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "str path",
        "Path",
        "bytes",
        "bytearray",
        "memoryview",
        "file object",
        "PIL",
        "numpy",
        "FileUpload item",
        "FittedImage",
    ],
)
def test_edit_accepts_every_input_kind_and_sends_the_fitted_bytes(
    emulator: Emulator, tmp_path: Path, kind: str
) -> None:
    session, wire = recorded_session(emulator.base_url)
    source = _kinds(tmp_path)[kind]
    result = session.edit(source, "make the cup blue")
    assert result.image is not None
    assert result.image.size == (1248, 832)  # the input's 3:2 ratio is kept
    (ref,) = result.inputs
    assert ref.transport == "inline" and ref.thumbnail is not None
    (body,) = wire.generate_bodies()
    (sent,) = _inline_images(body)
    assert (
        len(sent) == ref.sent_bytes
        and __import__("hashlib").sha256(sent).hexdigest() == ref.sent_sha256
    )
    assert body["contents"][-1]["parts"][0] == {"text": "make the cup blue"}
    if kind in (
        "str path",
        "Path",
        "bytes",
        "bytearray",
        "memoryview",
        "file object",
        "FileUpload item",
    ):
        # An upright sRGB JPEG under the budget goes out byte for byte (never re-encoded).
        assert sent == sample_path("coffee.jpg").read_bytes()
        assert ref.source_sha256 == ref.sent_sha256


def test_edit_with_a_previous_result_records_the_parent(session: nbbanana.Session) -> None:
    first = session.generate("a red square")
    second = session.edit(first, "make it green")
    assert second.parent is first
    assert (
        second.inputs[0].source_sha256
        == __import__("hashlib").sha256(first.image_data[0][0]).hexdigest()
    )


def test_edit_with_several_references(emulator: Emulator) -> None:
    session, wire = recorded_session(emulator.base_url)
    result = session.edit(
        [sample_path("coffee.jpg"), sample_path("astronaut_cutout.png"), sample_path("chart.png")],
        "put the astronaut next to the cup",
    )
    assert len(result.inputs) == 3
    assert [r.name for r in result.inputs] == ["coffee.jpg", "astronaut_cutout.png", "chart.png"]
    (body,) = wire.generate_bodies()
    assert len(_inline_images(body)) == 3


def test_too_many_references_are_refused_before_sending(
    session: nbbanana.Session, emulator: Emulator
) -> None:
    before = len(emulator.requests)
    with pytest.raises(errors.TooManyReferenceImages, match="at most 3"):
        session.edit([sample_path("coffee.jpg")] * 4, "combine")
    assert len(emulator.requests) == before


def test_more_references_than_recommended_warns(session: nbbanana.Session) -> None:
    small = Image.new("RGB", (64, 64), (200, 100, 0))
    with pytest.warns(UserWarning, match="works best with up to 11"):
        result = session.edit([small] * 12, "a collage", model="gemini-3-pro-image")
    assert len(result.inputs) == 12


def test_files_api_takes_what_does_not_fit_inline(emulator: Emulator) -> None:
    tight = EndpointProfile(name="tight", request_limit=120_000, files_api=True)
    session, wire = recorded_session(emulator.base_url, endpoint=tight)
    noisy = Image.effect_noise((900, 600), 90).convert("RGB")
    result = session.edit([noisy, noisy.rotate(180)], "blend these")
    transports = sorted(r.transport for r in result.inputs)
    assert transports == ["files-api", "inline"]
    assert any("/upload/" in url for url in wire.urls())
    (body,) = wire.generate_bodies()
    kinds = [next(iter(p)) for p in body["contents"][-1]["parts"]]
    assert kinds.count("fileData") == 1 and kinds.count("inlineData") == 1
    file_part = next(p for p in body["contents"][-1]["parts"] if "fileData" in p)
    # google-genai 3.6.1 writes this part's fields in snake_case (file_uri, mime_type).
    uri = file_part["fileData"].get("fileUri") or file_part["fileData"].get("file_uri")
    assert uri.startswith(emulator.base_url)


def test_async_edit_uploads_through_the_async_files_api(emulator: Emulator) -> None:
    tight = EndpointProfile(name="tight", request_limit=120_000, files_api=True)
    session, wire = recorded_session(emulator.base_url, endpoint=tight)
    noisy = Image.effect_noise((900, 600), 90).convert("RGB")

    async def main() -> list[Result]:
        return list(
            await asyncio.gather(
                session.aedit([noisy, noisy.rotate(180)], "blend"),
                session.aedit([noisy.rotate(90), noisy], "blend again"),
            )
        )

    for result in asyncio.run(main()):
        assert sorted(r.transport for r in result.inputs) == ["files-api", "inline"]
    assert sum("/upload/" in url for url in wire.urls()) >= 2


def test_no_files_api_splits_the_budget_between_images(emulator: Emulator) -> None:
    tight = EndpointProfile(name="tight-proxy", request_limit=150_000, files_api=False)
    session, wire = recorded_session(emulator.base_url, endpoint=tight)
    noisy = Image.effect_noise((900, 600), 90).convert("RGB")
    result = session.edit(
        [noisy, noisy.rotate(180), noisy.transpose(Image.Transpose.FLIP_LEFT_RIGHT)], "blend"
    )
    assert all(r.transport == "inline" for r in result.inputs)
    (body,) = wire.generate_bodies()
    assert len(_inline_images(body)) == 3
    assert emulator.requests[-1].body_bytes <= 150_000 - 8192


# --------------------------------------------------------------------------- describe


def test_describe_answers_with_text(emulator: Emulator) -> None:
    session, wire = recorded_session(emulator.base_url)
    result = session.describe(sample_path("chart.png"), "What kind of picture is this?")
    assert result.images == [] and result.text
    assert result.prompt == "What kind of picture is this?"
    (body,) = wire.generate_bodies()
    assert body["generationConfig"]["responseModalities"] == ["TEXT"]


# --------------------------------------------------------------------------- async / threads


def test_async_twins_run_concurrently(emulator: Emulator) -> None:
    session = session_for(emulator.base_url)

    async def main() -> list[Result]:
        return list(
            await asyncio.gather(
                session.agenerate("a", aspect_ratio="3:4"),
                session.aedit(sample_path("coffee.jpg"), "b"),
                session.aedit([sample_path("chart.png"), sample_path("text.png")], "c"),
                session.adescribe(sample_path("text.png")),
                *(session.agenerate(f"more {i}") for i in range(4)),
            )
        )

    results = asyncio.run(main())
    assert results[0].image is not None and results[0].image.size == (864, 1184)
    assert results[1].inputs[0].name == "coffee.jpg" and results[2].image is not None
    assert results[3].text and not results[3].images
    assert len({r.id for r in results}) == 8
    assert session.spent == pytest.approx(sum(r.cost_usd for r in results))
    assert session.calls == 8
    # A second event loop works too (the SDK's async client is reused across loops).
    again = asyncio.run(session.agenerate("again"))
    assert again.image is not None


def test_threads_share_a_session(emulator: Emulator) -> None:
    session = session_for(emulator.base_url)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(lambda i: session.edit(sample_path("coffee.jpg"), f"variant {i}"), range(6))
        )
    assert all(r.image is not None for r in results)
    assert session.spent == pytest.approx(sum(r.cost_usd for r in results))


# --------------------------------------------------------------------------- cost guard


def test_estimate_uses_the_model_tables(session: nbbanana.Session) -> None:
    estimate = session.estimate("a banana")
    assert estimate.output_image_tokens == 1290 and estimate.usd > 0.0387
    fitted = fit_image(sample_path("coffee.jpg"))
    with_image = session.estimate("a banana", [fitted])
    info = get_model("gemini-2.5-flash-image")
    assert with_image.input_tokens - estimate.input_tokens == info.input_image_tokens(
        fitted.width, fitted.height
    )
    pro = session.estimate("a banana", model="gemini-3-pro-image", image_size="4K")
    assert pro.output_image_tokens == 2000 and pro.usd > 0.24
    assert "$" in str(pro)
    # Sources are measured at the size they would be sent at.
    side = info.fit_max_side
    big = Image.new("RGB", (2 * side, side))
    assert (
        session.estimate("x", big).input_tokens
        == session.estimate("x", Image.new("RGB", (side, side // 2))).input_tokens
    )


def test_cost_cap_refuses_before_sending(emulator: Emulator) -> None:
    session = session_for(emulator.base_url, max_cost_usd=0.05)
    first = session.generate("one")
    before = len(emulator.requests)
    with pytest.raises(errors.CostLimitExceeded, match="max_cost_usd") as info:
        session.generate("two")
    assert len(emulator.requests) == before  # nothing was sent
    assert info.value.cap_usd == 0.05 and info.value.spent_usd == pytest.approx(first.cost_usd)
    assert session.spent == pytest.approx(first.cost_usd)


def test_cost_cap_holds_under_concurrency(emulator: Emulator) -> None:
    session = session_for(emulator.base_url, max_cost_usd=0.1)

    async def main() -> list[Any]:
        return list(
            await asyncio.gather(
                *(session.agenerate(f"p{i}") for i in range(6)), return_exceptions=True
            )
        )

    outcomes = asyncio.run(main())
    done = [o for o in outcomes if isinstance(o, Result)]
    refused = [o for o in outcomes if isinstance(o, errors.CostLimitExceeded)]
    assert len(done) == 2 and len(refused) == 4
    assert session.spent <= 0.1


# --------------------------------------------------------------------------- retries


def test_transient_failures_are_retried_on_the_wire(emulator: Emulator) -> None:
    session = session_for(emulator.base_url)
    before = len(_model_calls(emulator))
    emulator.inject("503", count=2)
    result = session.generate("after two failures")
    assert result.image is not None
    statuses = [r.status for r in _model_calls(emulator)[before:]]
    assert statuses == [503, 503, 200]


def test_server_retry_delay_is_honoured(emulator: Emulator) -> None:
    session = session_for(emulator.base_url)
    before = len(_model_calls(emulator))
    emulator.inject("429", retry=0.2)
    assert session.generate("after a 429").image is not None
    first, second = _model_calls(emulator)[before:]
    assert (first.status, second.status) == (429, 200)
    # The SDK's own backoff here is 10 ms; the retry waited for the server's 0.2 s.
    assert second.started - first.started >= 0.2


def test_a_longer_server_delay_than_max_delay_ends_retries(emulator: Emulator) -> None:
    session = session_for(emulator.base_url)
    before = len(_model_calls(emulator))
    emulator.inject("429", retry=120)
    with pytest.raises(errors.RateLimited) as info:
        session.generate("quota")
    assert info.value.retry_after == 120
    assert [r.status for r in _model_calls(emulator)[before:]] == [429]


def test_default_retry_options() -> None:
    assert DEFAULT_RETRY.attempts == 4
    assert sorted(DEFAULT_RETRY.http_status_codes or []) == [408, 429, 500, 502, 503, 504]


# --------------------------------------------------------------------------- too large


def test_refit_and_retry_once_when_the_server_names_a_smaller_limit() -> None:
    with Emulator(request_limit=200_000) as strict:
        # The session believes the endpoint takes 10 MB and no Files API.
        session = session_for(
            strict.base_url, endpoint=EndpointProfile("custom", 10_000_000, files_api=False)
        )
        noisy = Image.effect_noise((1200, 800), 100).convert("RGB")
        result = session.edit(noisy, "refit me")
        statuses = [r.status for r in _model_calls(strict)]
        assert statuses == [400, 200]
        assert result.inputs[0].sent_bytes < 200_000
        assert nbbanana.models.learned_limit(session.limit_key) == 200_000
        # The next call fits the learned limit at once.
        session.edit(noisy, "again")
        assert [r.status for r in _model_calls(strict)][2:] == [200]


def test_refit_on_a_413_proxy_that_names_a_limit_it_does_not_keep() -> None:
    # A relay says "20MB" but refuses far less: the refusal teaches half of what was sent.
    with Emulator(profile="proxy-20mb", request_limit=600_000) as proxy:
        session = session_for(
            proxy.base_url, endpoint=EndpointProfile("custom", 10_000_000, files_api=False)
        )
        noisy = Image.effect_noise((1100, 700), 100).convert("RGB")
        result = session.edit(noisy, "fit the relay")
        assert [r.status for r in _model_calls(proxy)] == [413, 200]
        assert result.image is not None


def test_a_second_too_large_refusal_is_raised() -> None:
    with Emulator(request_limit=200_000) as strict:
        session = session_for(
            strict.base_url, endpoint=EndpointProfile("custom", 10_000_000, files_api=False)
        )
        with pytest.raises(errors.RequestTooLarge):
            session.generate("x" * 300_000)  # the prompt alone is too large: nothing to refit
        assert [r.status for r in _model_calls(strict)] == [400]


# --------------------------------------------------------------------------- connect


def test_endpoint_profiles_by_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)

    # A key connects by listing the endpoint's models, which fails on a closed network
    # (the table's default is kept): fast retries, not the default's seconds of back-off.
    def remote(**kwargs: Any) -> nbbanana.Session:
        return connect("k", retry=FAST_RETRY, **kwargs)

    assert remote().endpoint.name == "gemini" and remote().base_url is None
    assert remote(base_url="https://generativelanguage.googleapis.com").endpoint.name == "gemini"
    assert remote(base_url="https://relay.example.com").endpoint.name == "proxy-20mb"
    assert remote(base_url="https://relay.example.com", endpoint="vertex").endpoint.name == "vertex"


def test_key_from_the_environment(monkeypatch: pytest.MonkeyPatch, emulator: Emulator) -> None:
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", "env-key")
    session = connect(base_url=emulator.base_url, retry=FAST_RETRY)
    assert not session.offline
    assert session.generate("x").image is not None
    monkeypatch.delenv("GEMINI_API_KEY")
    monkeypatch.setenv("GOOGLE_API_KEY", "google-env-key")
    assert not connect(retry=FAST_RETRY).offline  # lists Google's models: see above
    monkeypatch.delenv("GOOGLE_API_KEY")
    with pytest.raises(errors.AuthError, match="GEMINI_API_KEY"):
        connect(offline=False)


def test_offline_session_is_announced_once_per_process(tmp_path: Path) -> None:
    script = (
        "import nbbanana\n"
        "a = nbbanana.connect()\n"
        "b = nbbanana.connect(offline=True)\n"
        "r = a.generate('a banana')\n"
        "print(a.offline, b.offline, r.offline, r.image.size)\n"
        "print(repr(a))\n"
    )
    env = {
        k: v
        for k, v in __import__("os").environ.items()
        if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("OFFLINE session") == 1
    assert "not to Google" in done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "True True True (1024, 1024)"
    assert "offline emulator" in lines[1]


def test_offline_with_base_url_is_refused() -> None:
    with pytest.raises(errors.InvalidRequest, match="base_url"):
        connect(offline=True, base_url="http://127.0.0.1:1")


def test_unreachable_endpoint_is_service_unavailable() -> None:
    session = connect(
        "k", base_url="http://127.0.0.1:9", retry=types.HttpRetryOptions(attempts=1), timeout=5
    )
    with pytest.raises(errors.ServiceUnavailable, match="Could not reach") as info:
        session.generate("x")
    assert info.value.__cause__ is not None


@pytest.mark.live
@pytest.mark.skipif(
    not __import__("os").environ.get("GEMINI_API_KEY"), reason="GEMINI_API_KEY is not set"
)
def test_live_generate_then_edit() -> None:
    """Against the real API (a few cents): the same session code path as offline."""
    session = connect(max_cost_usd=0.25)
    assert not session.offline
    first = session.generate("A flat, minimal icon of a yellow banana on white.")
    assert first.image is not None and first.image.size == (1024, 1024)
    second = session.edit(first, "Make the banana blue.")
    assert second.image is not None and second.parent is first
    assert 0 < session.spent <= 0.25
