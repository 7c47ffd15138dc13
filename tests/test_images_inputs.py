"""Inputs that used to hang, eat memory, come out black or be blamed on the file:

* anything that is not a regular file (a FIFO, ``/dev/zero``, a socket, a device) is
  refused at once in one line, by :func:`load_image` and by everything that reads an
  input path (``fit``, ``check``, ``Session.edit``); no input is read past the size
  limit + 1 byte;
* float images with NaN or infinity are loaded with those values replaced, and a warning;
* a valid PNG whose iCCP, zTXt or iTXt chunk is over Pillow's decompression limit is
  loaded without that chunk, with a note naming the chunk and the limit;
* a HEIC the bundled decoder cannot read is reported as the decoder's failure, with how
  to convert the file.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import subprocess
import sys
import textwrap
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _imagegen import encode, heic_bytes, png_bytes
from PIL import Image, PngImagePlugin

from nbbanana.errors import ImageError, UnsupportedImageError
from nbbanana.images import DEFAULT_MAX_BYTES, load_image

# --------------------------------------------------------------------------- item 1

_PROBE = textwrap.dedent(
    """
    import os, resource, socket, sys, time
    # A broken loader would hang on the FIFO or fill memory from /dev/zero: bound both.
    resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))
    import nbbanana
    from nbbanana.fit import fit_image
    from nbbanana.images import load_image

    folder = sys.argv[1]
    fifo = os.path.join(folder, "pipe.png")
    os.mkfifo(fifo)
    sock_path = os.path.join(folder, "sock.png")
    server = socket.socket(socket.AF_UNIX)
    server.bind(sock_path)
    session = nbbanana.connect(offline=True)
    for label, path in (("fifo", fifo), ("zero", "/dev/zero"), ("socket", sock_path)):
        for how, call in (
            ("load_image", lambda: load_image(path)),
            ("fit_image", lambda: fit_image(path)),
            ("edit", lambda: session.edit(path, "x")),
        ):
            start = time.monotonic()
            try:
                call()
                outcome = "loaded?!"
            except Exception as exc:
                outcome = type(exc).__name__ + ": " + str(exc)
            print(label, how, round(time.monotonic() - start, 2), outcome, flush=True)
    """
)


def _run(args: list[str], tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env
    )


def test_non_regular_files_are_refused_at_once_everywhere(tmp_path: Path) -> None:
    result = _run([sys.executable, "-c", _PROBE, str(tmp_path)], tmp_path)
    lines = result.stdout.splitlines()
    assert len(lines) == 9, result.stdout + result.stderr[-2000:]
    expected = {"fifo": "named pipe (FIFO)", "zero": "character device", "socket": "socket"}
    for line in lines:
        label, _how, seconds, outcome = line.split(" ", 3)
        assert outcome.startswith("ImageError: "), line
        assert f"is a {expected[label]}, not a regular file" in outcome, line
        assert "\n" not in outcome
        assert float(seconds) < 5, line


@pytest.mark.parametrize("command", ["check", "fit"])
def test_the_cli_refuses_a_fifo_and_dev_zero_in_one_line(tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    good = tmp_path / "good.png"
    Image.new("RGB", (40, 30), (9, 99, 199)).save(good)
    args = [sys.executable, "-m", "nbbanana", command, str(fifo), "/dev/zero", str(good)]
    if command == "fit":
        args += ["-o", str(tmp_path / "out")]
    result = _run(args, tmp_path)
    assert "Traceback" not in result.stderr
    output = result.stdout + result.stderr
    assert "named pipe (FIFO), not a regular file" in output, output
    assert "character device, not a regular file" in output, output
    assert result.returncode == 2
    if command == "fit":
        assert (tmp_path / "out").is_dir() and any((tmp_path / "out").iterdir())


def test_a_fifo_in_process_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match=r"is a named pipe \(FIFO\), not a regular file"):
        load_image(fifo)


def test_the_studio_uploader_refuses_a_fifo_too(tmp_path: Path) -> None:
    from nbbanana.widgets import ImageUploader

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match=r"named pipe \(FIFO\), not a regular file"):
        ImageUploader().add_file(fifo)


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(png_bytes(Image.new("RGB", (200, 100))) + b"\0" * 5000)
    with pytest.raises(ImageError, match="more than the limit of 4,000 bytes") as info:
        load_image(path, max_bytes=4000)
    assert "\n" not in str(info.value)
    assert load_image(path).size == (200, 100)  # the default limit is far larger
    assert DEFAULT_MAX_BYTES >= 1_000_000_000


class _Endless(io.RawIOBase):
    """A readable stream that never ends (like /dev/zero), counting what is read."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = len(buffer)
        buffer[:size] = b"\0" * size
        self.served += size
        return size


def test_a_stream_is_never_read_past_the_limit_plus_one_byte() -> None:
    endless = _Endless()
    with pytest.raises(ImageError, match="more than the limit of 100,000 bytes"):
        load_image(endless, max_bytes=100_000)
    assert endless.served <= 100_001
    real = open("/dev/zero", "rb")  # noqa: SIM115 - closed below
    try:
        with pytest.raises(ImageError, match="more than the limit"):
            load_image(real, max_bytes=50_000)
        assert real.tell() <= 50_001 + io.DEFAULT_BUFFER_SIZE
    finally:
        real.close()


def test_a_symlink_to_a_device_is_refused_too(tmp_path: Path) -> None:
    link = tmp_path / "photo.jpg"
    link.symlink_to("/dev/zero")
    with pytest.raises(ImageError, match="character device, not a regular file"):
        load_image(str(link))
    assert stat.S_ISLNK(os.lstat(link).st_mode)


# --------------------------------------------------------------------------- item 6


def test_float_arrays_with_nan_and_infinity_load_with_a_warning() -> None:
    array = np.array([[0.0, 0.5, 1.0, np.nan, np.inf, -np.inf]], dtype=np.float32)
    with pytest.warns(UserWarning, match="3 non-finite values"):
        loaded = load_image(array)
    pixels = [loaded.image.getpixel((x, 0)) for x in range(6)]
    assert pixels == [0, 128, 255, 0, 255, 0]
    assert any("non-finite" in note for note in loaded.warnings)
    rgb = np.full((4, 4, 3), 0.25)
    rgb[0, 0, 1] = np.nan
    with pytest.warns(UserWarning, match="1 non-finite value"):
        loaded = load_image(rgb)
    assert loaded.image.getpixel((1, 1)) == (64, 64, 64)


@pytest.mark.parametrize("scale", [1.0, 255.0, 4095.0])
def test_float_images_with_nan_keep_their_range(scale: float) -> None:
    """A mode "F" image (a float TIFF, say) with one NaN pixel: not silently black."""
    values = np.array([[0.0, 0.5, 1.0, np.nan, np.inf]], dtype=np.float32) * scale
    values[0, 3] = np.nan
    image = Image.fromarray(values, "F")
    for source in (image, encode(image, "TIFF")):
        with pytest.warns(UserWarning, match="non-finite"):
            loaded = load_image(source)
        pixels = [loaded.image.getpixel((x, 0)) for x in range(5)]
        top = {1.0: 255, 255.0: 255, 4095.0: round(4095 * 255 / 65535)}[scale]
        assert pixels == [0, round(top / 2 + 0.01), top, 0, 255], pixels


def test_finite_float_images_give_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_image(np.full((2, 2), 0.5))
    assert loaded.warnings == []


# --------------------------------------------------------------------------- item 12


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_with(chunks: list[bytes], *, after_pixels: bool = False) -> bytes:
    data = png_bytes(Image.new("RGB", (32, 24), (10, 200, 30)))
    if after_pixels:
        iend = data.rindex(b"IEND") - 4
        return data[:iend] + b"".join(chunks) + data[iend:]
    return data[:33] + b"".join(chunks) + data[33:]  # right after IHDR


_BIG = zlib.compress(b"x" * (PngImagePlugin.MAX_TEXT_CHUNK + 10))


@pytest.mark.parametrize(
    ("chunk", "words"),
    [
        (_chunk(b"zTXt", b"Comment\x00\x00" + _BIG), "zTXt chunk"),
        (_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + _BIG), "iTXt chunk"),
        (_chunk(b"iCCP", b"profile\x00\x00" + _BIG), "iCCP chunk (colour profile)"),
    ],
    ids=["zTXt", "iTXt", "iCCP"],
)
@pytest.mark.parametrize("after_pixels", [False, True])
def test_a_png_with_an_oversized_metadata_chunk_loads(
    chunk: bytes, words: str, after_pixels: bool
) -> None:
    data = _png_with([chunk], after_pixels=after_pixels)
    loaded = load_image(data)
    assert loaded.size == (32, 24)
    assert loaded.image.getpixel((5, 5)) == (10, 200, 30)
    notes = " ".join(loaded.warnings)
    assert words in notes and "dropped" in notes and "MAX_TEXT_CHUNK" in notes, notes
    assert loaded.source_sha256 == __import__("hashlib").sha256(data).hexdigest()
    assert loaded.original_bytes == len(data)


def test_text_chunks_over_pillows_total_text_limit_are_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(PngImagePlugin, "MAX_TEXT_MEMORY", 50_000)
    text = [_chunk(b"tEXt", b"Comment\x00" + bytes([65 + i]) * 20_000) for i in range(4)]
    loaded = load_image(_png_with(text))
    assert loaded.size == (32, 24)
    assert any("MAX_TEXT_MEMORY" in note for note in loaded.warnings), loaded.warnings


def test_small_metadata_chunks_are_untouched() -> None:
    data = _png_with([_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"hello"))])
    loaded = load_image(data, strip_metadata=False)
    assert loaded.warnings == []
    assert loaded.image.info.get("comment") in (None, "hello", b"hello")


# --------------------------------------------------------------------------- item 13


def _heic() -> bytes:
    try:
        return heic_bytes(Image.new("RGB", (64, 48), (200, 30, 30)))
    except (ImportError, RuntimeError, OSError) as exc:
        pytest.skip(f"this pillow-heif build cannot encode HEIC ({exc})")


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.replace(b"hvc1", b"vvc1"),  # a codec this libheif does not have
        lambda d: d.replace(b"hvcC", b"hvcX"),  # no decoder configuration it knows
        lambda d: d[:-20],  # pixels cut short
    ],
    ids=["unknown-codec", "unknown-config", "cut-short"],
)
def test_a_heic_the_decoder_cannot_read_says_so(damage: Any) -> None:
    data = damage(_heic())
    with pytest.raises(UnsupportedImageError) as info:
        load_image(data)
    message = str(info.value)
    assert "HEIC/HEIF decoder" in message and "could not read" in message
    assert "convert it to JPEG or PNG" in message
    assert "re-download" not in message and "cannot identify" not in message
    assert "\n" not in message and message.endswith(".")


def test_many_small_zlib_bombs_cost_bounded_work_and_name_the_limit() -> None:
    bomb = _chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"\x00" * 2_000_000, 9))
    data = _png_with([bomb] * 200)
    with pytest.raises(ImageError, match=r"Pillow's safety limit .*MAX_TEXT_CHUNK") as info:
        load_image(data)
    assert "damaged" not in str(info.value) and "\n" not in str(info.value)
