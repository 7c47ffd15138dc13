"""``nbbanana emulator``: prints its base URL first, serves the SDK, stops cleanly."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request

import pytest
from google import genai
from google.genai import errors, types


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "nbbanana", "emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first_line = process.stdout.readline().strip()
    return process, first_line


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_cli_prints_url_serves_and_stops(stop_signal: signal.Signals) -> None:
    process, url = start(
        "--port", "0", "--seed", "5", "--profile", "proxy-20mb", "--request-limit", "500"
    )
    try:
        assert url.startswith("http://127.0.0.1:"), url
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=url))
        response = client.models.generate_content(model="gemini-2.5-flash-image", contents="hello")
        assert response.candidates
        with pytest.raises(errors.ClientError) as info:
            client.models.generate_content(model="gemini-2.5-flash-image", contents="x" * 1000)
        assert info.value.code == 413
    finally:
        process.send_signal(stop_signal)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_cli_refuses_a_bad_fault_rate() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nbbanana", "emulator", "--fault-rate", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "fault_rate must be between 0 and 1" in result.stderr


def test_cli_log_prints_each_request_without_keys() -> None:
    process, url = start("--log")
    key = "cli-log-secret-9f8e7d"
    try:
        client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=url))
        client.models.generate_content(model="gemini-2.5-flash-image", contents="hello")
        with urllib.request.urlopen(f"{url}/v1beta/models?key={key}&pageSize=1") as answer:
            assert answer.status == 200
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    lines = [line for line in stderr.splitlines() if " B " in line]
    assert len(lines) == 2, stderr
    assert re.search(r" POST /\S+:generateContent 200 in \d+ B out \d+ B \d+ ms$", lines[0])
    assert re.search(r" GET /v1beta/models 200 in 0 B out \d+ B \d+ ms$", lines[1])
    assert key not in stderr and "key=" not in stderr
