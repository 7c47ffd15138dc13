"""SDK errors and empty answers → nbbanana's errors.

The first half builds the SDK's own error objects from the JSON bodies Google sends (no
server needed); the second drives the real SDK over real HTTP against the emulator with
each injected fault, and checks both the error and what happened on the wire.
"""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from _client_helpers import session_for
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image

from nbbanana import errors
from nbbanana._gemini import error_from_exception, retry_delay_seconds
from nbbanana._pipeline import error_from_response
from nbbanana.emulator import Emulator

FAKE_KEY = "AIzaFAKEfakeFAKEfakeFAKEfakeFAKEfake123"


def _client_error(code: int, message: str, status: str, details: list[Any] | None = None) -> Any:
    body: dict[str, Any] = {"error": {"code": code, "message": message, "status": status}}
    if details is not None:
        body["error"]["details"] = details
    cls = genai_errors.ClientError if code < 500 else genai_errors.ServerError
    return cls(code, body)


@pytest.mark.parametrize(
    ("code", "message", "status", "details", "expected"),
    [
        (
            400,
            "API key not valid. Please pass a valid API key.",
            "INVALID_ARGUMENT",
            [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
            errors.AuthError,
        ),
        (
            403,
            "Method doesn't allow unregistered callers",
            "PERMISSION_DENIED",
            None,
            errors.AuthError,
        ),
        (429, "You exceeded your current quota", "RESOURCE_EXHAUSTED", None, errors.RateLimited),
        (
            400,
            "Request payload size exceeds the limit: 20971520 bytes.",
            "INVALID_ARGUMENT",
            None,
            errors.RequestTooLarge,
        ),
        (413, "file size exceeds maximum allowed size: 20MB", "", None, errors.RequestTooLarge),
        (400, "Unsupported MIME type: image/gif", "INVALID_ARGUMENT", None, errors.InvalidRequest),
        (
            404,
            "models/nope is not found for API version v1",
            "NOT_FOUND",
            None,
            errors.InvalidRequest,
        ),
        (500, "An internal error has occurred.", "INTERNAL", None, errors.ServiceUnavailable),
        (503, "The model is overloaded.", "UNAVAILABLE", None, errors.ServiceUnavailable),
        (504, "Deadline exceeded", "DEADLINE_EXCEEDED", None, errors.ServiceUnavailable),
    ],
)
def test_api_errors_map_to_the_small_set(
    code: int, message: str, status: str, details: list[Any] | None, expected: type[Exception]
) -> None:
    sdk_error = _client_error(code, message, status, details)
    mapped = error_from_exception(sdk_error)
    assert type(mapped) is expected
    assert isinstance(mapped, errors.APIError)
    assert mapped.code == code and mapped.sdk_error is sdk_error
    assert message.split(":")[0] in str(mapped)
    if expected.hint:
        assert expected.hint in str(mapped)  # says what to do


def test_too_large_keeps_the_named_limit() -> None:
    mapped = error_from_exception(
        _client_error(
            400, "Request payload size exceeds the limit: 20971520 bytes.", "INVALID_ARGUMENT"
        )
    )
    assert isinstance(mapped, errors.RequestTooLarge) and mapped.limit_bytes == 20971520
    proxy = error_from_exception(
        _client_error(413, "file size exceeds maximum allowed size: 20MB", "")
    )
    assert isinstance(proxy, errors.RequestTooLarge) and proxy.limit_bytes == 20_000_000


def test_retry_info_is_read() -> None:
    details = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"},
    ]
    sdk_error = _client_error(429, "quota", "RESOURCE_EXHAUSTED", details)
    assert retry_delay_seconds(sdk_error) == 37.0
    mapped = error_from_exception(sdk_error)
    assert isinstance(mapped, errors.RateLimited) and mapped.retry_after == 37.0
    assert "37 s" in str(mapped)
    fractional = _client_error(
        429, "q", "RESOURCE_EXHAUSTED", [{"@type": "x/google.rpc.RetryInfo", "retryDelay": "0.25s"}]
    )
    assert retry_delay_seconds(fractional) == 0.25
    assert retry_delay_seconds(_client_error(429, "q", "RESOURCE_EXHAUSTED")) is None
    assert retry_delay_seconds(ValueError()) is None


def test_transport_errors_map_to_service_unavailable() -> None:
    timeout = error_from_exception(httpx2.ReadTimeout("timed out"))
    assert isinstance(timeout, errors.ServiceUnavailable) and "timeout=" in str(timeout)
    reset = error_from_exception(httpx2.ConnectError("connection refused"))
    assert isinstance(reset, errors.ServiceUnavailable) and "base_url" in str(reset)
    assert error_from_exception(ValueError("not ours")) is None


def test_keys_are_redacted_from_messages() -> None:
    sdk_error = _client_error(
        400, f"bad request for key={FAKE_KEY} and {FAKE_KEY}", "INVALID_ARGUMENT"
    )
    mapped = error_from_exception(sdk_error, FAKE_KEY)
    assert mapped is not None and FAKE_KEY not in str(mapped)
    custom = "my-secret-proxy-token"
    mapped = error_from_exception(_client_error(400, f"token {custom} rejected", "X"), custom)
    assert mapped is not None and custom not in str(mapped)


def _answer(parts: list[types.Part], finish: str = "STOP") -> types.GenerateContentResponse:
    return types.GenerateContentResponse(
        candidates=[
            types.Candidate(content=types.Content(role="model", parts=parts), finish_reason=finish)  # type: ignore[arg-type]
        ]
    )


@pytest.mark.parametrize(
    "finish",
    [
        "SAFETY",
        "IMAGE_SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_RECITATION",
    ],
)
def test_blocking_finish_reasons(finish: str) -> None:
    problem = error_from_response(_answer([], finish), want_image=True)
    assert isinstance(problem, errors.Blocked) and problem.reason == finish
    assert errors.Blocked.hint in str(problem)


def test_prompt_feedback_block() -> None:
    response = types.GenerateContentResponse(
        prompt_feedback=types.GenerateContentResponsePromptFeedback(
            block_reason="PROHIBITED_CONTENT"
        )  # type: ignore[arg-type]
    )
    problem = error_from_response(response, want_image=True)
    assert isinstance(problem, errors.Blocked) and problem.reason == "PROHIBITED_CONTENT"


def test_text_only_answer_is_no_image_with_the_text() -> None:
    problem = error_from_response(
        _answer([types.Part(text="I can't draw that, but here's a poem.")]), want_image=True
    )
    assert isinstance(problem, errors.NoImage)
    assert (
        problem.text == "I can't draw that, but here's a poem." and problem.finish_reason == "STOP"
    )
    assert "here's a poem" in str(problem)
    # A thought image is not an answer.
    thought_only = _answer(
        [types.Part(inline_data=types.Blob(data=b"x", mime_type="image/png"), thought=True)]
    )
    assert isinstance(error_from_response(thought_only, want_image=True), errors.NoImage)
    # describe() wants text: a text answer is fine.
    assert error_from_response(_answer([types.Part(text="a cat")]), want_image=False) is None
    image = _answer([types.Part.from_bytes(data=b"png", mime_type="image/png")])
    assert error_from_response(image, want_image=True) is None


# --------------------------------------------------------------------------- over HTTP


@pytest.fixture(scope="module")
def emulator() -> Any:
    with Emulator(seed=5) as emu:
        yield emu


def _calls(emulator: Emulator, since: int) -> list[Any]:
    return [r for r in emulator.requests[since:] if ":generateContent" in r.path]


@pytest.mark.parametrize(
    ("fault", "expected", "status"),
    [
        ("429", errors.RateLimited, 429),
        ("500", errors.ServiceUnavailable, 500),
        ("503", errors.ServiceUnavailable, 503),
        ("504", errors.ServiceUnavailable, 504),
    ],
)
def test_transient_faults_are_retried_then_mapped(
    emulator: Emulator, fault: str, expected: type[Exception], status: int
) -> None:
    session = session_for(emulator.base_url)  # 3 attempts
    since = len(emulator.requests)
    emulator.inject(fault, count=3, **({"retry": 0.01} if fault == "429" else {}))
    with pytest.raises(expected) as info:
        session.generate("x")
    assert isinstance(info.value.__cause__, genai_errors.APIError)
    assert info.value.__cause__.code == status
    assert [r.status for r in _calls(emulator, since)] == [status] * 3
    assert session.spent == 0 and session.calls == 0


def test_connection_reset_is_service_unavailable(emulator: Emulator) -> None:
    session = session_for(emulator.base_url)
    emulator.inject("reset", count=3)
    with pytest.raises(errors.ServiceUnavailable) as info:
        session.generate("x")
    assert isinstance(info.value.__cause__, httpx2.TransportError)
    emulator.clear_faults()


def test_timeouts_are_retried_then_mapped(emulator: Emulator) -> None:
    retry = types.HttpRetryOptions(attempts=2, initial_delay=0.01, jitter=0.0)
    session = session_for(emulator.base_url, retry=retry, timeout=0.5)
    since = len(emulator.requests)
    emulator.inject("timeout", seconds=2)
    assert session.generate("slow once").image is not None  # the second attempt answers
    assert len(_calls(emulator, since)) == 2
    emulator.inject("timeout", count=2, seconds=2)
    with pytest.raises(errors.ServiceUnavailable, match="timed out") as info:
        session.generate("slow twice")
    assert isinstance(info.value.__cause__, httpx2.TimeoutException)


def test_a_slow_answer_within_the_timeout_is_fine(emulator: Emulator) -> None:
    session = session_for(emulator.base_url, timeout=10)
    emulator.inject("slow", seconds=0.2)
    assert session.generate("take your time").image is not None


@pytest.mark.parametrize(
    ("fault", "params", "reason"),
    [
        ("image_safety", {}, "IMAGE_SAFETY"),
        ("prohibited", {}, "PROHIBITED_CONTENT"),
        ("blocked", {}, "SAFETY"),
        ("blocked", {"reason": "OTHER"}, "OTHER"),
    ],
)
def test_blocked_answers(
    emulator: Emulator, fault: str, params: dict[str, str], reason: str
) -> None:
    session = session_for(emulator.base_url)
    emulator.inject(fault, **params)
    with pytest.raises(errors.Blocked) as info:
        session.edit(Image.new("RGB", (64, 64)), "something")
    assert info.value.reason == reason
    assert "Rephrase" in str(info.value)
    assert session.calls == 1  # answered (and billed for what usage it reported)


def test_text_only_answer(emulator: Emulator) -> None:
    session = session_for(emulator.base_url)
    emulator.inject("text_only")
    with pytest.raises(errors.NoImage) as info:
        session.generate("a banana")
    assert info.value.text
    assert " ".join(info.value.text.split())[:100] in str(info.value)
    assert info.value.finish_reason == "STOP"


def test_bad_key_is_auth_error(emulator: Emulator) -> None:
    session = session_for(emulator.base_url, key="invalid-key-for-test")
    with pytest.raises(errors.AuthError, match="GEMINI_API_KEY") as info:
        session.generate("x")
    assert isinstance(info.value.__cause__, genai_errors.ClientError)
    assert "invalid-key-for-test" not in str(info.value)


def test_unknown_model_is_invalid_request(emulator: Emulator) -> None:
    session = session_for(emulator.base_url)
    with (
        pytest.warns(UserWarning, match="does not know the model"),
        pytest.raises(errors.InvalidRequest, match="model") as info,
    ):
        # An id of this test's own: the warning comes once per process and id.
        session.generate("x", model="gemini-0-mapping-test-image")
    assert info.value.code == 404
    # The Gemini backend's 404 hook: the models this endpoint serves, and what to pass.
    assert isinstance(info.value, errors.ModelUnavailable)
    assert "Image models served there: " in info.value.message
    assert info.value.successor in info.value.message
