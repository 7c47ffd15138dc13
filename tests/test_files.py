"""Saved files: written atomically, with the mode the umask gives any new file."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbbanana._files import write_atomic
from nbbanana.cli import main
from nbbanana.samples import sample_path

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_atomic_follows_the_umask(tmp_path: Path, umask_022: None) -> None:
    path = write_atomic(tmp_path / "a.bin", b"one")
    assert path.read_bytes() == b"one" and _mode(path) == 0o644
    old = os.umask(0o077)
    try:
        write_atomic(path, b"two")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"two" and _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = write_atomic(tmp_path / "a.bin", b"old")

    with pytest.raises(TypeError):
        write_atomic(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_saved_results_and_fitted_files_are_readable_by_others(
    tmp_path: Path, umask_022: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from nbbanana._connect import connect

    with connect(offline=True) as session:
        saved = session.generate("a kite").save(tmp_path / "results")
    assert saved and all(_mode(p) == 0o644 for p in saved)

    assert main(["fit", str(sample_path("chart.png")), "-o", str(tmp_path / "fitted")]) == 0
    fitted = list((tmp_path / "fitted").iterdir())
    assert fitted and all(_mode(p) == 0o644 for p in fitted)
