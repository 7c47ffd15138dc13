"""The CLI through an independently written OpenAI-compatible gateway (tests/_openai_gateway.py)
placed in front of a Gemini endpoint (the emulator's Gemini API): ``--api openai``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _openai_gateway import Gateway
from PIL import Image

from nbbanana import cli
from nbbanana.emulator import Emulator

pytest.importorskip("nbbanana._backend", reason="needs the request pipeline")

GATEWAY_KEY = "sk-gw-7f3a9c2e51d84b06"
UPSTREAM_KEY = "upstream-key-for-the-gateway-only"
MODEL = "google/gemini-2.5-flash-image"


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with (
        Emulator(seed=11, api_keys={UPSTREAM_KEY}) as upstream,
        Gateway(upstream.base_url, UPSTREAM_KEY, GATEWAY_KEY) as gw,
    ):
        yield gw


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", GATEWAY_KEY)


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = cli.main(args)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _no_key_anywhere(out: str, err: str, folder: Path) -> None:
    assert GATEWAY_KEY not in out + err
    for path in folder.rglob("*"):
        assert GATEWAY_KEY.encode() not in path.read_bytes(), path.name


def _saved(out: str) -> tuple[Path, dict[str, object]]:
    png, sidecar = (Path(line) for line in out.splitlines() if line.endswith((".png", ".json")))
    return png, json.loads(sidecar.read_text())


def test_generate_through_the_gateway(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(
        ["generate", "-p", "a kite over the sea", "--aspect-ratio", "16:9", "--api", "openai",
         "--base-url", gateway.base_url, "--model", MODEL, "-o", str(tmp_path)],
        capsys,
    )  # fmt: skip
    assert status == 0, err
    png, meta = _saved(out)
    assert Image.open(png).size == (1344, 768)
    assert meta["prompt"] == "a kite over the sea"
    assert "$" in out  # the model table's price: the gateway name maps to a known model
    _no_key_anywhere(out, err, tmp_path)


@pytest.mark.slow
def test_edit_a_48_megapixel_photo_under_the_gateways_20_mb(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "in" / "photo.jpg"
    photo.parent.mkdir()
    Image.effect_noise((8000, 6000), 60).convert("RGB").save(photo, quality=95)
    assert photo.stat().st_size > 20_000_000  # the raw file alone is over the relay's limit
    before = len(gateway.seen)
    status, out, err = _run(
        ["edit", str(photo), "-p", "make it warmer", "--api", "openai",
         "--base-url", gateway.base_url, "--model", MODEL, "-o", str(tmp_path / "out")],
        capsys,
    )  # fmt: skip
    assert status == 0, err
    png, meta = _saved(out)
    assert meta["prompt"] == "make it warmer"
    assert Image.open(png).text["nbbanana:prompt"] == "make it warmer"  # type: ignore[attr-defined]
    ((_, sent, code),) = gateway.seen[before:]
    assert code == 200 and sent <= 20_000_000
    _no_key_anywhere(out, err, tmp_path / "out")


def test_without_a_key_it_says_what_to_set(
    gateway: Gateway,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    status, _, err = _run(
        ["generate", "-p", "x", "--api", "openai", "--base-url", gateway.base_url, "-o", str(tmp_path)],
        capsys,
    )  # fmt: skip
    assert status != 0 and "OPENAI_API_KEY" in err
