"""The command line under bad input: every refusal is one line and exit 2, the output
location is checked before anything is paid for, one bad input never stops the others,
and messages use the command line's own words."""

from __future__ import annotations

import json
import os
import shlex
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from nbbanana import cli
from nbbanana._cli_common import cli_message
from nbbanana._cli_fit import CHECK_DOES_NOT_FIT
from nbbanana._format import format_count, format_usd
from nbbanana.emulator import Emulator
from nbbanana.samples import sample_path

GENERATE = ":generateContent"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(seed=3) as emu:
        yield emu


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)


def _calls(emulator: Emulator) -> int:
    return sum(1 for r in emulator.requests if r.path.endswith(GENERATE))


def _one_line_refusal(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nbbanana: ") and "Traceback" not in err
    return lines[0]


def _loop(tmp_path: Path) -> Path:
    (tmp_path / "loop-a.jpg").symlink_to(tmp_path / "loop-b.jpg")
    (tmp_path / "loop-b.jpg").symlink_to(tmp_path / "loop-a.jpg")
    return tmp_path / "loop-a.jpg"


# --------------------------------------------------------------- item 2: output location


@pytest.mark.parametrize("command", ["generate", "edit"])
def test_an_output_path_that_is_a_file_is_refused_before_paying(
    command: str, emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "results"
    taken.write_text("not a folder")
    inputs = [str(sample_path("coffee.jpg"))] if command == "edit" else []
    before = _calls(emulator)
    status = cli.main(
        [command, *inputs, "-p", "a kite", "--base-url", emulator.base_url, "-o", str(taken)]
    )
    assert status == 2
    line = _one_line_refusal(capsys.readouterr().err)
    assert str(taken) in line and "folder" in line
    assert _calls(emulator) == before  # nothing was sent, so nothing was paid for
    assert taken.read_text() == "not a folder"


def test_an_unwritable_output_folder_is_refused_before_paying(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    before = _calls(emulator)
    try:
        status = cli.main(
            ["generate", "-p", "x", "--base-url", emulator.base_url, "-o", str(locked)]
        )
    finally:
        locked.chmod(0o700)
    assert status == 2 and _calls(emulator) == before
    assert "cannot write" in _one_line_refusal(capsys.readouterr().err)


def test_fit_with_an_output_path_that_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "fitted"
    taken.write_text("x")
    assert cli.main(["fit", str(sample_path("coffee.jpg")), "-o", str(taken)]) == 2
    assert "a file of that name exists" in _one_line_refusal(capsys.readouterr().err)


@pytest.mark.parametrize("command", ["fit", "check"])
def test_a_symlink_loop_does_not_stop_the_other_inputs(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loop = _loop(tmp_path)
    good = sample_path("coffee.jpg")
    extra = ["-o", str(tmp_path / "out")] if command == "fit" else []
    status = cli.main([command, str(loop), str(good), "--json", *extra])
    assert status == 2
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines() if line.startswith("{")]
    assert [r["ok"] for r in rows] == [False, True]
    assert "symbolic links" in rows[0]["error"] and "Traceback" not in captured.err
    if command == "fit":
        assert (tmp_path / "out" / "coffee.jpg").is_file()


def test_batch_with_an_output_path_that_is_a_file(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"id": "a", "prompt": "x"}\n', encoding="utf-8")
    taken = tmp_path / "out"
    taken.write_text("x")
    before = _calls(emulator)
    status = cli.main(["batch", str(manifest), "-o", str(taken), "--base-url", emulator.base_url])
    assert status == 2 and _calls(emulator) == before
    assert "not a folder" in _one_line_refusal(capsys.readouterr().err)


def test_batch_names_a_symlink_loop_among_its_images(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _loop(tmp_path)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"id": "a", "prompt": "x", "images": ["loop-a.jpg"]}\n', "utf-8")
    status = cli.main(
        ["batch", str(manifest), "-o", str(tmp_path / "o"), "--base-url", emulator.base_url]
    )
    assert status == 2
    line = _one_line_refusal(capsys.readouterr().err)
    assert "line 1" in line and "symbolic links" in line


# --------------------------------------------------------------- item 11: one line, exit 2


def test_a_binary_manifest_is_one_line(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(Path(sample_path("chart.png")).read_bytes())
    status = cli.main(
        ["batch", str(manifest), "-o", str(tmp_path / "o"), "--base-url", emulator.base_url]
    )
    assert status == 2
    assert "binary file" in _one_line_refusal(capsys.readouterr().err)


def test_a_non_utf8_manifest_names_the_line(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("id,prompt\na,un café\nb,crème brûlée\n".encode("latin-1"))
    status = cli.main(
        ["batch", str(manifest), "-o", str(tmp_path / "o"), "--base-url", emulator.base_url]
    )
    assert status == 2
    line = _one_line_refusal(capsys.readouterr().err)
    assert "line 2" in line and "0xe9" in line and "UTF-8" in line


@pytest.mark.parametrize("url", ["http://[::1", "http://host:99999", "localhost:8000", "ftp://x"])
@pytest.mark.parametrize("command", ["generate", "batch"])
def test_an_invalid_base_url_is_one_line(
    command: str, url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"id": "a", "prompt": "x"}\n', encoding="utf-8")
    head = ["generate", "-p", "x"] if command == "generate" else ["batch", str(manifest)]
    status = cli.main([*head, "-o", str(tmp_path / "o"), "--base-url", url])
    assert status == 2
    assert "--base-url" in _one_line_refusal(capsys.readouterr().err)


def test_a_symlink_loop_as_an_edit_input_is_one_line(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loop = _loop(tmp_path)
    before = _calls(emulator)
    status = cli.main(
        ["edit", str(loop), "-p", "x", "--base-url", emulator.base_url, "-o", str(tmp_path)]
    )
    assert status == 2 and _calls(emulator) == before
    _one_line_refusal(capsys.readouterr().err)


# --------------------------------------------------------------- item 14: warnings


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    env["PYTHONWARNINGS"] = "default"  # as a user with warnings on would see them
    return subprocess.run(
        [sys.executable, "-m", "nbbanana", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_python_warnings_are_one_line_without_source_paths(tmp_path: Path) -> None:
    image = sample_path("coffee.jpg")
    done = _run("check", str(image), str(image), "--model", "gemini-9-image-preview", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [line for line in lines if line.startswith("nbbanana: warning: ")]
    assert sum("does not know the model" in line for line in lines) == 1  # shown once
    assert ".py:" not in done.stderr and "UserWarning" not in done.stderr


def test_pillows_corrupt_exif_warning_is_one_line(tmp_path: Path) -> None:
    import io

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(buf, "JPEG")
    payload = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x05" + b"\xff" * 7  # cut short
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(buf.getvalue()[:2] + app1 + buf.getvalue()[2:])
    done = _run("check", str(photo), str(photo), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "nbbanana: warning: Corrupt EXIF data. Expecting to read 12 bytes but only got 7."
    ]


def test_warnings_are_translated_and_shown_once(capsys: pytest.CaptureFixture[str]) -> None:
    import warnings

    from nbbanana._cli_common import warnings_as_lines

    with warnings_as_lines():
        for _ in range(2):
            warnings.warn("cap reached (max_cost_usd)", UserWarning, stacklevel=1)
    assert capsys.readouterr().err == "nbbanana: warning: cap reached (--max-cost)\n"


# --------------------------------------------------------------- item 16: wording


def _bomb(path: Path, width: int = 30_000, height: int = 30_000) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def test_the_pixel_limit_message_names_no_python_parameter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bomb = _bomb(tmp_path / "bomb.png")
    assert cli.main(["check", str(bomb)]) == 2
    out = capsys.readouterr().out
    assert "pixels" in out and "not decoded" in out
    assert "max_pixels" not in out


@pytest.mark.parametrize(
    ("python", "cli_words"),
    [
        ("of its $0.0001 cap (max_cost_usd). Connect with a higher max_cost_usd to continue.",
         "of its $0.0001 cap (--max-cost). Run again with a higher --max-cost to continue."),
        ("Check GEMINI_API_KEY (or pass api_key=...), or call nbbanana.connect(offline=True) "
         "to use the offline emulator.",
         "Check GEMINI_API_KEY, or add --offline to use the offline emulator."),
        ("x.png is big, so it was not decoded; if you trust it, pass max_pixels=9 (or more) "
         "to load it.", "x.png is big, so it was not decoded."),
    ],
)  # fmt: skip
def test_cli_message(python: str, cli_words: str) -> None:
    assert cli_message(python) == cli_words


@pytest.mark.parametrize(
    ("usd", "text"),
    [
        (0, "$0.00"), (0.0001, "$0.0001"), (0.000077, "$0.000077"), (0.039, "$0.039"),
        (0.23597249999999997, "$0.24"), (0.1, "$0.10"), (2, "$2.00"), (1234.5, "$1,234.50"),
        (1e-9, "<$0.000001"), (-0.5, "-$0.50"),
    ],
)  # fmt: skip
def test_format_usd(usd: float, text: str) -> None:
    assert format_usd(usd) == text


def test_format_count() -> None:
    assert format_count(1290) == "1,290" and format_count(None) == "-"


# --------------------------------------------------------------- item 24: CLI


def test_check_exits_nonzero_and_prints_the_fit_command_that_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    bmp = tmp_path / "scan one.bmp"  # the API takes no BMP: it does not fit as it is
    Image.new("RGB", (300, 200), "teal").save(bmp)
    good = sample_path("coffee.jpg")
    assert cli.main(["check", str(good), str(bmp)]) == CHECK_DOES_NOT_FIT == 3
    out = capsys.readouterr().out
    command = next(line.strip() for line in out.splitlines() if "nbbanana fit" in line)
    words = shlex.split(command)
    assert words[:2] == ["nbbanana", "fit"] and str(bmp) in words and str(good) not in words
    # The printed command does fix it.
    assert cli.main(words[1:]) == 0
    fitted = next((tmp_path / "fitted").iterdir())
    capsys.readouterr()
    assert cli.main(["check", str(fitted)]) == 0


def test_check_help_names_its_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["check", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"{CHECK_DOES_NOT_FIT} when some input does not fit" in text


def test_token_counts_have_thousands_separators(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "big.png"
    Image.new("RGB", (1600, 1200), "navy").save(big)
    model = "gemini-3-pro-image"  # an image this size is over a thousand tokens
    cli.main(["check", str(big), "--model", model])
    cli.main(["fit", str(big), "--model", model, "-o", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert "1,120" in out and " 1120 " not in out


def test_generate_help_says_nothing_of_edits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["generate", "--help"])
    help_text = capsys.readouterr().out
    assert "--aspect-ratio" in help_text and "edit" not in help_text.lower()
    with pytest.raises(SystemExit):
        cli.main(["edit", "--help"])
    assert "keep the input's" in capsys.readouterr().out


def test_batch_validation_lists_allowed_values_plainly(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"id": "a", "prompt": "x", "aspect_ratio": "5:1"}\n', "utf-8")
    status = cli.main(
        ["batch", str(manifest), "-o", str(tmp_path / "o"), "--base-url", emulator.base_url]
    )
    assert status == 2
    line = _one_line_refusal(capsys.readouterr().err)
    assert "use one of 1:1, 2:3, 3:2" in line and "[" not in line


def test_resume_of_a_finished_run_says_nothing_to_do(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": "y"}\n', "utf-8")
    args = ["batch", str(manifest), "-o", str(tmp_path / "o"), "--base-url", emulator.base_url]
    assert cli.main([*args, "--no-progress"]) == 0
    capsys.readouterr()
    before = _calls(emulator)
    assert cli.main([*args, "--resume"]) == 0  # progress bar on: it must not be drawn empty
    captured = capsys.readouterr()
    assert captured.out.startswith("Nothing to do: 2/2 items are done")
    assert captured.err == "" and _calls(emulator) == before
