"""``nbbanana generate``, ``edit`` and ``demo`` against the emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from nbbanana import cli
from nbbanana.emulator import Emulator
from nbbanana.samples import sample_path


@pytest.fixture(scope="module")
def emulator() -> Any:
    with Emulator(seed=9) as emu:
        yield emu


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)


def _saved(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.endswith((".png", ".json"))]


def test_generate_saves_and_prints_paths(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(
        ["generate", "-p", "a yellow kite", "--aspect-ratio", "16:9", "--base-url", emulator.base_url,
         "-o", str(tmp_path)]
    )  # fmt: skip
    assert status == 0
    out = capsys.readouterr().out
    png, sidecar = _saved(out)
    assert Image.open(png).size == (1376, 768)  # the default model's 16:9 at 1K
    assert json.loads(Path(sidecar).read_text())["prompt"] == "a yellow kite"
    assert "1376×768" in out and "$" in out


def test_edit_with_several_images(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(
        ["edit", str(sample_path("coffee.jpg")), str(sample_path("chart.png")), "-p", "combine them",
         "--base-url", emulator.base_url, "-o", str(tmp_path)]
    )  # fmt: skip
    assert status == 0
    png, sidecar = _saved(capsys.readouterr().out)
    meta = json.loads(Path(sidecar).read_text())
    assert [i["name"] for i in meta["inputs"]] == ["coffee.jpg", "chart.png"]
    assert Image.open(png).text["nbbanana:prompt"] == "combine them"  # type: ignore[attr-defined]


def test_refusals_exit_2_without_traceback(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jpg"
    assert cli.main(["edit", str(missing), "-p", "x", "--base-url", emulator.base_url]) == 2
    err = capsys.readouterr().err
    assert "No such image file" in err and "Traceback" not in err
    status = cli.main(
        [
            "generate",
            "-p",
            "x",
            "--aspect-ratio",
            "5:1",
            "--base-url",
            emulator.base_url,
            "-o",
            str(tmp_path),
        ]
    )
    assert status == 2
    assert "aspect_ratio='5:1'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_max_cost_is_enforced(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(
        [
            "generate",
            "-p",
            "x",
            "--max-cost",
            "0.0001",
            "--base-url",
            emulator.base_url,
            "-o",
            str(tmp_path),
        ]
    )
    assert status == 2
    err = capsys.readouterr().err
    # The CLI's flag and the cap as given: not the Python name, not "$0.00".
    assert "--max-cost" in err and "$0.0001 cap" in err
    assert "max_cost_usd" not in err and "$0.00 cap" not in err
    assert len(err.strip().splitlines()) == 1


def test_demo_fits_the_samples_and_saves_an_offline_edit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["demo", "-o", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    for name in ("coffee.jpg", "astronaut_cutout.png", "chart.png", "text.png"):
        assert name in out
    assert "4 fitted, 0 refused" in out
    assert "offline emulator" in out
    saved = out.split("Saved the edited image to ")[1].splitlines()[0]
    image = Image.open(saved)
    assert image.size == (1264, 848)  # coffee.jpg is 3:2 (the default model's 3:2 at 1K)
    assert image.text["nbbanana:offline"] == "true"  # type: ignore[attr-defined]


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("generate", "edit", "demo"):
        assert command in out
