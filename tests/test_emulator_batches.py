"""The Batch API through the SDK's ``client.batches``: inline and JSONL jobs, states,
results inline and as a downloadable file, list, cancel, delete."""

from __future__ import annotations

import io
import json
import time

import pytest
from _emulator_fixtures import png_size
from google import genai
from google.genai import errors, types

from nbbanana.emulator import Emulator

FLASH = "gemini-2.5-flash-image"
DONE = {
    types.JobState.JOB_STATE_SUCCEEDED,
    types.JobState.JOB_STATE_CANCELLED,
    types.JobState.JOB_STATE_FAILED,
}


def wait(client: genai.Client, name: str) -> types.BatchJob:
    for _ in range(500):
        job = client.batches.get(name=name)
        if job.state in DONE:
            return job
        time.sleep(0.01)
    raise AssertionError("batch job did not finish")


def inline_request(prompt: str, ratio: str = "1:1") -> dict[str, object]:
    return {
        "contents": [{"role": "user", "parts": [{"text": prompt}]}],
        "config": {"response_modalities": ["IMAGE"], "image_config": {"aspect_ratio": ratio}},
        "metadata": {"key": prompt},
    }


def test_inline_batch_runs_to_success(sdk_client: genai.Client) -> None:
    job = sdk_client.batches.create(
        model=FLASH,
        src=[inline_request("one", "16:9"), inline_request("two"), inline_request("bad", "7:3")],
        config={"display_name": "three items"},
    )
    assert job.name and job.name.startswith("batches/")
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert job.display_name == "three items" and job.model == f"models/{FLASH}"
    done = wait(sdk_client, job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.end_time is not None
    responses = done.dest.inlined_responses
    assert [r.metadata for r in responses] == [{"key": "one"}, {"key": "two"}, {"key": "bad"}]
    first = responses[0].response.candidates[0].content.parts[0].inline_data.data
    assert png_size(first) == (1344, 768)
    assert responses[2].response is None and responses[2].error is not None
    assert responses[2].error.code == 400


def test_jsonl_batch_results_come_back_as_a_file(sdk_client: genai.Client) -> None:
    lines = [
        {
            "key": "a",
            "request": {
                "contents": [{"parts": [{"text": "a"}]}],
                "generationConfig": {"responseModalities": ["IMAGE"]},
            },
        },
        {
            "key": "b",
            "request": {
                "contents": [{"parts": [{"text": "b"}]}],
                "generationConfig": {"imageConfig": {"aspectRatio": "3:4"}},
            },
        },
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    source = sdk_client.files.upload(
        file=io.BytesIO(data), config={"mime_type": "application/jsonl"}
    )
    job = sdk_client.batches.create(model=FLASH, src=source.name)
    done = wait(sdk_client, job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.dest.file_name and done.dest.file_name.startswith("files/")
    result_file = sdk_client.files.get(name=done.dest.file_name)
    assert result_file.source == types.FileSource.GENERATED and result_file.download_uri
    content = sdk_client.files.download(file=result_file)
    results = [json.loads(line) for line in content.decode().splitlines()]
    assert [r["key"] for r in results] == ["a", "b"]
    parsed = types.GenerateContentResponse.model_validate(results[1]["response"])
    image = next(p for p in parsed.candidates[0].content.parts if p.inline_data)
    assert png_size(image.inline_data.data) == (864, 1184)


def test_batch_is_deterministic(sdk_client: genai.Client) -> None:
    images = []
    for _ in range(2):
        job = wait(
            sdk_client, sdk_client.batches.create(model=FLASH, src=[inline_request("same")]).name
        )
        images.append(
            job.dest.inlined_responses[0].response.candidates[0].content.parts[0].inline_data.data
        )
    assert images[0] == images[1]


def test_states_cancel_list_delete() -> None:
    with Emulator(batch_delay=0.05, batch_item_seconds=5) as emulator:
        client = genai.Client(
            api_key="k", http_options=types.HttpOptions(base_url=emulator.base_url)
        )
        job = client.batches.create(
            model=FLASH, src=[inline_request("slow"), inline_request("slower")]
        )
        for _ in range(200):
            if client.batches.get(name=job.name).state == types.JobState.JOB_STATE_RUNNING:
                break
            time.sleep(0.01)
        assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_RUNNING
        client.batches.cancel(name=job.name)
        cancelled = client.batches.get(name=job.name)
        assert cancelled.state == types.JobState.JOB_STATE_CANCELLED and cancelled.dest is None
        other = client.batches.create(model=FLASH, src=[inline_request("x")])
        listed = client.batches.list(config={"page_size": 1})
        assert len(listed.page) == 1
        assert {j.name for j in listed} == {job.name, other.name}
        client.batches.delete(name=job.name)
        with pytest.raises(errors.ClientError) as info:
            client.batches.get(name=job.name)
        assert info.value.code == 404


def test_batch_create_refusals(sdk_client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as info:
        sdk_client.batches.create(model="nope-model", src=[inline_request("x")])
    assert info.value.code == 404
    with pytest.raises(errors.ClientError) as info:
        sdk_client.batches.create(model=FLASH, src="files/missing")
    assert info.value.code == 403
    bad = sdk_client.files.upload(
        file=io.BytesIO(b"not json\n"), config={"mime_type": "application/jsonl"}
    )
    with pytest.raises(errors.ClientError) as info:
        sdk_client.batches.create(model=FLASH, src=bad.name)
    assert info.value.code == 400 and "line 1" in info.value.message


def test_unfinished_jobs_expire_after_48_hours() -> None:
    now = [1_800_000_000.0]
    with Emulator(clock=lambda: now[0], batch_delay=0.0, batch_item_seconds=30) as emulator:
        client = genai.Client(
            api_key="k", http_options=types.HttpOptions(base_url=emulator.base_url)
        )
        job = client.batches.create(model=FLASH, src=[inline_request("never done")])
        now[0] += 48 * 3600
        expired = client.batches.get(name=job.name)
        assert expired.state == types.JobState.JOB_STATE_EXPIRED and expired.dest is None
