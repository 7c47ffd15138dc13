"""The `nbbanana fit` and `nbbanana check` commands."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from _imagegen import encode, jpeg_bytes, photo_like
from PIL import Image

from nbbanana._cli_fit import parse_bytes, print_fit_table
from nbbanana.budget import RequestBudget
from nbbanana.cli import main
from nbbanana.samples import sample_paths

FIT_KEYS = {
    "input", "ok", "output", "input_bytes", "output_bytes", "request_bytes", "width",
    "height", "mime", "quality", "tokens", "seconds", "error",
}  # fmt: skip


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    files = {
        "a": tmp_path / "a" / "photo.jpg",
        "b": tmp_path / "b" / "photo.jpg",
        "png": tmp_path / "b" / "photo.png",
        "corrupt": tmp_path / "broken.jpg",
    }
    files["a"].write_bytes(jpeg_bytes(photo_like(900, 600, seed=1), quality=95))
    files["b"].write_bytes(jpeg_bytes(photo_like(600, 900, seed=2), quality=95))
    files["png"].write_bytes(encode(photo_like(300, 200, seed=3), "PNG"))
    files["corrupt"].write_bytes(jpeg_bytes(photo_like(64, 64))[:200])
    return files


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_fit_json_one_object_per_input_and_distinct_outputs(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    given = [str(inputs["a"]), str(inputs["b"]), str(inputs["png"])]
    status = main(["fit", *given, "-o", str(out), "--budget", "120KB", "--json"])
    assert status == 0
    rows = _json_lines(capsys.readouterr().out)
    assert [r["input"] for r in rows] == given
    outputs = set()
    for row in rows:
        assert row.keys() >= FIT_KEYS and row["ok"] is True and row["error"] is None
        output = Path(str(row["output"]))
        assert output.parent == out and output.exists()
        assert output.stat().st_size == row["output_bytes"]
        assert row["request_bytes"] == RequestBudget(limit=None).request_bytes(
            "",
            [(int(row["output_bytes"]), str(row["mime"]))],  # type: ignore[call-overload]
        )
        assert int(row["request_bytes"]) <= 120_000  # type: ignore[call-overload]
        with Image.open(output) as image:
            assert image.size == (row["width"], row["height"])
        outputs.add(output)
    assert len(outputs) == 3  # same names, different folders: nothing overwritten
    assert len({p.read_bytes() for p in outputs}) == 3


def test_a_refused_input_is_reported_and_the_others_still_fit(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "missing.jpg")
    given = [str(inputs["corrupt"]), str(inputs["a"]), missing]
    status = main(["fit", *given, "-o", str(tmp_path / "out"), "--json"])
    assert status == 2
    rows = _json_lines(capsys.readouterr().out)
    assert [r["ok"] for r in rows] == [False, True, False]
    for row in (rows[0], rows[2]):
        assert row.keys() >= FIT_KEYS and row["output"] is None
        assert isinstance(row["error"], str) and "\n" not in row["error"] and row["error"]
    assert "missing.jpg" in str(rows[2]["error"])


def test_no_traceback_from_the_console_script(inputs: dict[str, Path], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nbbanana", "fit", str(inputs["corrupt"]), "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert "refused" in done.stdout and "broken.jpg" in done.stdout


def test_fit_table_and_max_side(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["fit", str(inputs["a"]), "-o", str(tmp_path / "o"), "--max-side", "300"])
    text = capsys.readouterr().out
    assert status == 0
    assert "input" in text and "request" in text and "300×200" in text
    assert "1 fitted, 0 refused" in text
    main(["fit", str(inputs["a"]), "-o", str(tmp_path / "k"), "--max-side", "keep", "--json"])
    assert _json_lines(capsys.readouterr().out)[0]["width"] == 900


def test_an_impossible_budget_is_a_refusal_not_a_crash(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["fit", str(inputs["a"]), "-o", str(tmp_path), "--budget", "8KB", "--json"])
    row = _json_lines(capsys.readouterr().out)[0]
    assert status == 2 and row["ok"] is False and "8,000 bytes" in str(row["error"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [("15MB", 15_000_000), ("500kb", 500_000), ("7MiB", 7 * 2**20), ("1.5 MB", 1_500_000),
     ("20000000", 20_000_000)],
)  # fmt: skip
def test_parse_bytes(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "15 parsecs", "0", "-3MB"])
def test_parse_bytes_refuses_nonsense(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_bytes(text)


def test_bad_options_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["fit", "x.jpg", "--budget", "lots"], ["fit", "x.jpg", "--max-side", "tiny"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_check_json(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gif = tmp_path / "anim.gif"
    gif.write_bytes(encode(photo_like(40, 30).convert("P"), "GIF"))
    status = main(
        ["check", str(inputs["a"]), str(gif), str(inputs["corrupt"]), "--json",
         "--model", "gemini-2.5-flash-image"]
    )  # fmt: skip
    assert status == 2
    ok, not_accepted, refused = _json_lines(capsys.readouterr().out)
    size = inputs["a"].stat().st_size
    assert ok["ok"] is True and ok["fits"] is True
    assert ok["request_bytes"] == RequestBudget(limit=None).request_bytes(
        "", [(size, "image/jpeg")]
    )
    assert (ok["width"], ok["height"], ok["pixels"], ok["tokens"]) == (900, 600, 540_000, 258 * 2)
    assert ok["cost_usd"] == pytest.approx(516 * 0.30 / 1e6)
    assert not_accepted["fits"] is False and "not accepted" in str(not_accepted["reason"])
    assert refused["ok"] is False and refused["error"]


def test_check_table(inputs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(inputs["a"]), "--model", "gemini-3-pro-image"]) == 0
    text = capsys.readouterr().out
    assert "fits inline" in text and "1,120" in text and "yes" in text


def test_print_fit_table_for_the_demo(tmp_path: Path) -> None:
    out = io.StringIO()
    assert print_fit_table(sample_paths(), outdir=tmp_path, file=out) == 0
    text = out.getvalue()
    for path in sample_paths():
        assert path.name in text
    assert f"{len(sample_paths())} fitted, 0 refused" in text
    assert len(list(tmp_path.iterdir())) == len(sample_paths())
