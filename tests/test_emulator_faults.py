"""Injected faults, seen through the real SDK; retries observed on the wire."""

from __future__ import annotations

import json
import urllib.request

import httpx2
import pytest
from _emulator_fixtures import answer_image
from google import genai
from google.genai import errors, types

from nbbanana.emulator import Emulator

FLASH = "gemini-2.5-flash-image"
FAST_RETRY = types.HttpRetryOptions(attempts=4, initial_delay=0.01, max_delay=0.05, jitter=0.0)
CALL = f"/v1/models/{FLASH}:generateContent"


def calls(emulator: Emulator) -> list[tuple[int | None, str | None]]:
    return [(r.status, r.fault) for r in emulator.requests if r.path == CALL]


@pytest.mark.parametrize(
    ("fault", "code", "status", "error_type"),
    [
        ("429", 429, "RESOURCE_EXHAUSTED", errors.ClientError),
        ("500", 500, "INTERNAL", errors.ServerError),
        ("503", 503, "UNAVAILABLE", errors.ServerError),
        ("504", 504, "DEADLINE_EXCEEDED", errors.ServerError),
    ],
)
def test_error_faults_via_header(
    make_client: object, fault: str, code: int, status: str, error_type: type[errors.APIError]
) -> None:
    client = make_client(headers={"x-emulator-fault": fault})  # type: ignore[operator]
    with pytest.raises(error_type) as info:
        client.models.generate_content(model=FLASH, contents="x")
    assert (info.value.code, info.value.status) == (code, status)


def test_429_carries_quota_help_and_retry_info(make_client: object) -> None:
    client = make_client(headers={"x-emulator-fault": "429;retry=7"})  # type: ignore[operator]
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=FLASH, contents="x")
    details = info.value.details["error"]["details"]
    types_ = [d["@type"].rsplit(".", 1)[-1] for d in details]
    assert types_ == ["QuotaFailure", "Help", "RetryInfo"]
    assert details[2]["retryDelay"] == "7s"
    assert info.value.message.startswith("You exceeded your current quota")


def test_retries_are_visible_on_the_wire(emulator: Emulator, make_client: object) -> None:
    emulator.inject("503", count=2)
    client = make_client(retry=FAST_RETRY)  # type: ignore[operator]
    response = client.models.generate_content(model=FLASH, contents="x")
    assert answer_image(response)
    assert calls(emulator) == [(503, "503"), (503, "503"), (200, None)]


def test_retries_give_up_after_the_configured_attempts(
    emulator: Emulator, make_client: object
) -> None:
    emulator.inject("429", count=10)
    client = make_client(retry=FAST_RETRY)  # type: ignore[operator]
    with pytest.raises(errors.ClientError):
        client.models.generate_content(model=FLASH, contents="x")
    assert calls(emulator) == [(429, "429")] * 4


def test_client_errors_are_not_retried(emulator: Emulator, make_client: object) -> None:
    client = make_client(retry=FAST_RETRY)  # type: ignore[operator]
    with pytest.raises(errors.ClientError):
        client.models.generate_content(model="nope", contents="x")
    assert len(emulator.requests) == 1


def test_reset_closes_the_connection(emulator: Emulator, make_client: object) -> None:
    emulator.inject("reset", count=2)
    without_retry = make_client()  # type: ignore[operator]
    with pytest.raises(httpx2.TransportError):
        without_retry.models.generate_content(model=FLASH, contents="x")
    # google-genai 3.6.1 retries only timeouts and connect errors: a reset mid-request
    # (httpx2.ReadError) reaches the caller even with HttpRetryOptions.
    with_retry = make_client(retry=FAST_RETRY)  # type: ignore[operator]
    with pytest.raises((httpx2.ReadError, httpx2.RemoteProtocolError)):
        with_retry.models.generate_content(model=FLASH, contents="x")
    assert calls(emulator) == [(None, "reset"), (None, "reset")]
    assert with_retry.models.generate_content(model=FLASH, contents="x").candidates


def test_timeout_hangs_past_the_client_timeout(emulator: Emulator, make_client: object) -> None:
    emulator.inject("timeout", seconds=5)
    client = make_client(timeout=300, retry=FAST_RETRY)  # type: ignore[operator]
    response = client.models.generate_content(model=FLASH, contents="x")
    assert response.candidates
    assert [f for _, f in calls(emulator)] == ["timeout", None]
    assert calls(emulator)[0][0] is None, "no answer was sent to the abandoned attempt"


def test_slow_answers_normally(emulator: Emulator, sdk_client: genai.Client) -> None:
    emulator.inject("slow", seconds=0.2)
    assert sdk_client.models.generate_content(model=FLASH, contents="x").candidates
    record = emulator.requests[-1]
    assert (record.status, record.fault) == (200, "slow")
    assert record.seconds >= 0.2


def test_image_safety_and_prohibited(emulator: Emulator, sdk_client: genai.Client) -> None:
    for fault, reason in (("image_safety", "IMAGE_SAFETY"), ("prohibited", "PROHIBITED_CONTENT")):
        emulator.inject(fault)
        response = sdk_client.models.generate_content(model=FLASH, contents="x")
        assert response.candidates[0].finish_reason.value == reason
        assert response.parts is None
        assert response.usage_metadata.prompt_token_count == 1


def test_text_only(emulator: Emulator, sdk_client: genai.Client) -> None:
    emulator.inject("text_only")
    response = sdk_client.models.generate_content(model=FLASH, contents="draw a cat")
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert all(p.inline_data is None for p in response.parts)
    assert "no image" in response.text


def test_the_prompt_is_the_last_words_of_the_last_user_turn(
    emulator: Emulator, sdk_client: genai.Client
) -> None:
    # A chat joins a regional turn's note and the next prompt into one user turn: the
    # answer (here the text-only one, which quotes the prompt) is to the prompt.
    emulator.inject("text_only")
    turn = types.Content(
        role="user",
        parts=[types.Part.from_text(text="[a note on the picture]"),
               types.Part.from_text(text="draw a cat")],
    )  # fmt: skip
    response = sdk_client.models.generate_content(model=FLASH, contents=[turn])
    assert "“draw a cat”" in response.text and "a note" not in response.text


def test_blocked_prompt(make_client: object, emulator: Emulator) -> None:
    client = make_client(headers={"x-emulator-fault": "blocked;reason=PROHIBITED_CONTENT"})  # type: ignore[operator]
    response = client.models.generate_content(model=FLASH, contents="x")
    assert not response.candidates
    assert response.prompt_feedback.block_reason.value == "PROHIBITED_CONTENT"
    emulator.inject("blocked")
    plain = make_client()  # type: ignore[operator]
    assert (
        plain.models.generate_content(model=FLASH, contents="x").prompt_feedback.block_reason.value
        == "SAFETY"
    )


def test_content_faults_only_hit_model_calls(emulator: Emulator, sdk_client: genai.Client) -> None:
    emulator.inject("image_safety", on="any")
    assert sdk_client.models.get(model=FLASH).name  # not consumed by models.get
    response = sdk_client.models.generate_content(model=FLASH, contents="x")
    assert response.candidates[0].finish_reason.value == "IMAGE_SAFETY"


def test_transient_fault_on_any_request(emulator: Emulator, sdk_client: genai.Client) -> None:
    emulator.inject("500", on="any")
    with pytest.raises(errors.ServerError):
        sdk_client.models.list()
    assert list(sdk_client.models.list())


def test_streaming_faults(emulator: Emulator, sdk_client: genai.Client) -> None:
    emulator.inject("503")
    with pytest.raises(errors.ServerError):
        list(sdk_client.models.generate_content_stream(model=FLASH, contents="x"))
    emulator.inject("image_safety")
    (chunk,) = list(sdk_client.models.generate_content_stream(model=FLASH, contents="x"))
    assert chunk.candidates[0].finish_reason.value == "IMAGE_SAFETY"


def test_control_endpoint_queues_faults(emulator: Emulator, sdk_client: genai.Client) -> None:
    body = json.dumps({"fault": "500", "count": 2}).encode()
    request = urllib.request.Request(
        emulator.base_url + "/emulator/faults", data=body, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert json.loads(answer.read()) == {"queued": 2}
    for _ in range(2):
        with pytest.raises(errors.ServerError):
            sdk_client.models.generate_content(model=FLASH, contents="x")
    assert sdk_client.models.generate_content(model=FLASH, contents="x").candidates


def test_unknown_fault_names_are_refused(emulator: Emulator, make_client: object) -> None:
    with pytest.raises(ValueError, match="Unknown emulator fault"):
        emulator.inject("418")
    client = make_client(headers={"x-emulator-fault": "teapot"})  # type: ignore[operator]
    with pytest.raises(errors.ClientError, match="Unknown emulator fault"):
        client.models.generate_content(model=FLASH, contents="x")


def test_fault_rate_is_seeded_and_repeatable() -> None:
    outcomes = []
    for _ in range(2):
        with Emulator(fault_rate=0.5, seed=3, fault_kinds=["500", "503"]) as emulator:
            client = genai.Client(
                api_key="k", http_options=types.HttpOptions(base_url=emulator.base_url)
            )
            for _ in range(12):
                try:
                    client.models.count_tokens(model=FLASH, contents="x")  # never faulted
                    client.models.generate_content(
                        model=FLASH,
                        contents="x",
                        config=types.GenerateContentConfig(response_modalities=["TEXT"]),
                    )
                except errors.ServerError:
                    pass
            outcomes.append([(r.status, r.fault) for r in emulator.requests])
    assert outcomes[0] == outcomes[1]
    faults = [f for _, f in outcomes[0] if f]
    assert 2 <= len(faults) <= 10 and set(faults) <= {"500", "503"}
    assert all(f is None for _, f in outcomes[0][0::2]), "countTokens is never faulted"


def test_latency_applies_to_model_calls() -> None:
    with Emulator(latency=0.3) as emulator:
        client = genai.Client(
            api_key="k", http_options=types.HttpOptions(base_url=emulator.base_url)
        )
        client.models.get(model=FLASH)
        client.models.generate_content(model=FLASH, contents="x")
        get, generate = emulator.requests
        assert generate.seconds >= 0.3 > get.seconds
