"""The one output-folder check (``_files.prepare_folder``), as the CLI and batches word it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nbbanana._cli_common import CLIError, prepare_outdir
from nbbanana._files import FolderProblem, prepare_folder
from nbbanana.batch import BatchError
from nbbanana.batch._engine import _prepare_outdir


def test_a_new_nested_folder_is_created_and_usable(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    assert prepare_folder(folder) is None
    assert folder.is_dir() and list(folder.iterdir()) == []  # the probe leaves nothing


def test_a_file_in_the_way_is_not_a_folder(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    assert prepare_folder(taken) == FolderProblem("not-a-folder")
    assert prepare_folder(taken / "below") is not None  # a file as a parent
    with pytest.raises(CLIError, match="a file of that name exists"):
        prepare_outdir(taken)
    with pytest.raises(BatchError, match="exists and is not a folder"):
        _prepare_outdir(taken)
    assert taken.read_text() == "keep me"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions")
def test_a_read_only_folder_cannot_be_written(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        problem = prepare_folder(folder)
        assert problem is not None and problem.kind == "cannot-write"
        assert problem.detail == "Permission denied"
        with pytest.raises(CLIError, match=r"cannot write there \(Permission denied\)"):
            prepare_outdir(folder, flag="--outdir")
        with pytest.raises(BatchError, match=r"Cannot use .* \(Permission denied\)"):
            _prepare_outdir(folder)
        below = prepare_folder(folder / "new")
        assert below == FolderProblem("cannot-create", "Permission denied")
    finally:
        folder.chmod(0o700)
