"""``--api openai`` on the commands that need no service, and its refusals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import openai
import pytest

from nbbanana import cli
from nbbanana.samples import sample_path


def test_check_uses_the_relay_profile_for_gateways(capsys: pytest.CaptureFixture[str]) -> None:
    photo = str(sample_path("coffee.jpg"))
    assert cli.main(["check", photo, "--json", "--api", "openai"]) == 0
    assert json.loads(capsys.readouterr().out)["limit"] == 20_000_000
    assert cli.main(["check", photo, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["limit"] == 100_000_000
    assert cli.main(["check", photo, "--json", "--api", "openai", "--endpoint", "gemini"]) == 0
    assert json.loads(capsys.readouterr().out)["limit"] == 100_000_000


def test_generate_needs_a_base_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["generate", "-p", "x", "--api", "openai"]) != 0
    assert "--api openai needs --base-url" in capsys.readouterr().err


def test_emulator_cli_answers_in_the_chosen_shape() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "nbbanana", "emulator", "--openai-shape", "markdown"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        client = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
        answer = client.chat.completions.create(
            model="gemini-2.5-flash-image", messages=[{"role": "user", "content": "a kite"}]
        )
        assert "![image](data:image/png;base64," in (answer.choices[0].message.content or "")
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    assert process.returncode == 0
