"""The journal survives torn writes; committed outputs replace earlier attempts exactly."""

from __future__ import annotations

from pathlib import Path

from nbbanana.batch._journal import (
    JOURNAL_NAME,
    Journal,
    commit_files,
    read_journal,
    staging_dir,
)


def test_torn_last_record_is_ignored_and_fenced(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        journal.append("done", id="a", files=[])
    with (tmp_path / JOURNAL_NAME).open("a", encoding="utf-8") as fh:
        fh.write('{"event": "done", "id": "b", "fi')  # kill -9 mid-write
    with Journal(tmp_path) as journal:
        journal.append("failed", id="c", error={"message": "boom"})
    state = read_journal(tmp_path / JOURNAL_NAME)
    assert set(state.done) == {"a"}
    assert set(state.failed) == {"c"}
    assert state.torn_lines == 1


def test_done_needs_its_files(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        journal.append("failed", id="a", error={})
        journal.append("done", id="a", files=["a.png"])
        journal.append("done", id="b", files=["b.png"])
    (tmp_path / "a.png").write_bytes(b"x")
    state = read_journal(tmp_path / JOURNAL_NAME)
    assert state.failed == {}  # a later success clears the failure
    assert state.is_done("a", tmp_path)
    assert not state.is_done("b", tmp_path)  # its file is gone: run it again


def test_commit_replaces_an_interrupted_attempt(tmp_path: Path) -> None:
    # An earlier attempt left two images; this one has one: the extra must go.
    for name in ("cat.png", "cat+2.png", "cat.json", "cat.b.png", "cat+x.png", "journal.jsonl"):
        (tmp_path / name).write_bytes(b"old")
    stage = staging_dir(tmp_path, "cat")
    (stage / "r1.png").write_bytes(b"new")
    (stage / "r1.json").write_bytes(b"{}")
    names = commit_files(tmp_path, "cat", [stage / "r1.png", stage / "r1.json"])
    assert names == ["cat.png", "cat.json"]
    assert (tmp_path / "cat.png").read_bytes() == b"new"
    assert not (tmp_path / "cat+2.png").exists()
    # other items' files and the journal are untouched
    assert (tmp_path / "cat.b.png").exists() and (tmp_path / "cat+x.png").exists()
    assert (tmp_path / "journal.jsonl").exists()
    assert not stage.exists()


def test_damaged_lines_are_named_with_their_item(tmp_path: Path) -> None:
    """A torn or garbage line is skipped, but the run says which line and which item
    (and whether that item will run again), instead of silently paying for it again."""
    import warnings

    from nbbanana import connect
    from nbbanana.batch import run_batch
    from nbbanana.emulator import Emulator

    out = tmp_path / "out"
    items = [{"id": "a", "prompt": "x"}, {"id": "b", "prompt": "y"}]
    with Emulator() as emu:
        session = connect(base_url=emu.base_url)
        run_batch(items, out, session=session, progress=False)
        journal = out / JOURNAL_NAME
        lines = journal.read_bytes().splitlines(keepends=True)
        done_b = next(i for i, line in enumerate(lines) if b'"id": "b"' in line)
        lines[done_b] = lines[done_b][:60] + b"\n"  # b's "done" record, cut short
        lines.insert(1, b"\xff\xfe\x00 not a record \x80\n")  # garbage, not even UTF-8
        journal.write_bytes(b"".join(lines))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = run_batch(items, out, session=session, resume=True, progress=False)
    messages = [str(w.message) for w in caught if "damaged" in str(w.message)]
    assert len(messages) == 1, [str(w.message) for w in caught]
    assert "line 2 (no item id readable)" in messages[0]
    assert f"line {done_b + 2} (item 'b', which will run again)" in messages[0]
    assert report.ok and report.done == 1 and report.skipped == 1  # b ran again, a did not
