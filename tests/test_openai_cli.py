"""``--api openai`` on the commands that need no service, and its refusals."""

from __future__ import annotations

import json

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
