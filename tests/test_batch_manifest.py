"""Manifests are checked completely, with line numbers, before anything is sent."""

from __future__ import annotations

import json
import uuid
import warnings
from pathlib import Path

import pytest
from PIL import Image

from nbbanana.batch import BatchItem, ManifestError, load_manifest
from nbbanana.batch._manifest import normalise_items, output_stem
from nbbanana.models import get_model


def _png(path: Path) -> Path:
    Image.new("RGB", (8, 8), "red").save(path)
    return path


def _jsonl(path: Path, lines: list[object | str]) -> Path:
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n",
        encoding="utf-8",
    )
    return path


def test_jsonl_items_with_defaults(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    manifest = _jsonl(
        tmp_path / "m.jsonl",
        [
            {"id": "item07", "prompt": "violet sky", "images": ["a.png"], "aspect_ratio": "16:9"},
            "",
            "# a comment",
            {"prompt": "a banana"},
        ],
    )
    items = load_manifest(manifest)
    assert [i.id for i in items] == ["item07", "4"]  # id defaults to the line number
    assert items[0].images == (tmp_path / "a.png",)
    assert items[0].aspect_ratio == "16:9"
    assert items[1].images == () and items[1].line == 4


def test_every_problem_reported_with_its_line(tmp_path: Path) -> None:
    manifest = _jsonl(
        tmp_path / "m.jsonl",
        [
            {"id": "a", "prompt": "ok"},
            '{"id": "b", "prompt": ',  # malformed
            {"id": "a", "prompt": "again"},  # duplicate
            {"id": "c", "prompt": "edit", "images": ["missing.jpg"]},
            {"id": "d", "prompt": "x", "aspect": "16:9"},  # typo'd key
            {"id": "e"},  # no prompt
            {"id": "f", "prompt": "x", "aspect_ratio": "7:3"},
            [1, 2],
        ],
    )
    with pytest.raises(ManifestError) as info:
        load_manifest(manifest)
    lines = [line for line, _ in info.value.problems]
    assert lines == [2, 3, 4, 5, 6, 7, 8]
    text = str(info.value)
    assert "line 2: not valid JSON" in text
    assert "line 3: duplicate id 'a' (first used on line 1)" in text
    assert "line 4: image not found: 'missing.jpg'" in text
    assert "did you mean 'aspect_ratio'?" in text
    assert "line 6: 'prompt' is missing" in text
    assert "7:3" in text


def test_a_duplicate_of_an_id_whose_first_line_is_wrong_is_reported(tmp_path: Path) -> None:
    manifest = _jsonl(
        tmp_path / "m.jsonl",
        [{"id": "a", "prompt": ""}, {"id": "a", "prompt": "fine"}],
    )
    with pytest.raises(ManifestError) as info:
        load_manifest(manifest)
    text = str(info.value)
    assert "line 1: 'prompt' is missing" in text
    assert "line 2: duplicate id 'a' (first used on line 1)" in text


def test_ids_that_collide_as_file_names_are_duplicates(tmp_path: Path) -> None:
    manifest = _jsonl(
        tmp_path / "m.jsonl", [{"id": "Cat/1", "prompt": "x"}, {"id": "cat_1", "prompt": "y"}]
    )
    with pytest.raises(ManifestError, match="line 2: id 'cat_1' gives the same output file name"):
        load_manifest(manifest)


@pytest.mark.parametrize(
    ("item_id", "stem"),
    [
        ("item07", "item07"),
        ("../../etc/passwd", "_.._.._etc_passwd"),
        (".hidden", "_.hidden"),
        ("CON", "_CON"),
        ("a b/c", "a_b_c"),
        ("x" * 300, "x" * 120),
    ],
)
def test_output_stem_is_a_safe_file_name(item_id: str, stem: str) -> None:
    assert output_stem(item_id) == stem
    assert "/" not in stem and "\\" not in stem and not stem.startswith(".")


def test_csv_manifest(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png")
    (tmp_path / "m.csv").write_text(
        "id,prompt,images,aspect_ratio\n"
        'one,"make it, blue",a.png;b.png,4:3\n'
        "\n"
        'two,"multi\nline",,\n'
        "three,x,nope.png,\n",
        encoding="utf-8",
    )
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path / "m.csv")
    assert info.value.problems == [(6, "image not found: 'nope.png'")]
    (tmp_path / "m.csv").write_text(
        'id,prompt,images,aspect_ratio\none,"make it, blue",a.png;b.png,4:3\n,"multi\nline",,\n',
        encoding="utf-8",
    )
    items = load_manifest(tmp_path / "m.csv")
    assert items[0] == BatchItem(
        id="one",
        prompt="make it, blue",
        images=(tmp_path / "a.png", tmp_path / "b.png"),
        aspect_ratio="4:3",
        line=2,
    )
    assert items[1].id == "3" and items[1].prompt == "multi\nline"


def test_csv_unknown_column(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("id,promt\na,b\n", encoding="utf-8")
    with pytest.raises(
        ManifestError, match=r"line 1: unknown column 'promt' \(did you mean 'prompt'\?\)"
    ):
        load_manifest(tmp_path / "m.csv")


def test_python_items_are_checked_the_same_way(tmp_path: Path) -> None:
    items = normalise_items([{"prompt": "a"}, BatchItem(id="x", prompt="b")], base=tmp_path)
    assert [(i.id, i.line) for i in items] == [("1", 1), ("x", 2)]
    with pytest.raises(ManifestError, match="line 3: duplicate id 'x'"):
        normalise_items(
            [{"prompt": "a"}, BatchItem(id="x", prompt="b"), {"id": "x", "prompt": "c"}],
            base=tmp_path,
        )


def test_unknown_manifest_type(tmp_path: Path) -> None:
    (tmp_path / "m.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"use a \.jsonl or \.csv"):
        load_manifest(tmp_path / "m.txt")


def test_wording_of_whole_file_and_json_problems(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as missing:
        load_manifest(tmp_path / "nope.jsonl")
    assert "line 0" not in str(missing.value) and "no such file" in str(missing.value)
    assert "\n" not in str(missing.value)  # one problem, one line

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "unterminated\n{"prompt": "ok", "id": [1]}\n', encoding="utf-8")
    with pytest.raises(ManifestError) as info:
        load_manifest(bad)
    text = str(info.value)
    assert "at at" not in text and "(Unterminated string starting at column 12)" in text
    assert "line 0" not in text


def test_allowed_values_are_a_plain_list(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"prompt": "x", "aspect_ratio": "5:1", "colour": "red"}\n', "utf-8")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    text = str(info.value)
    assert "use one of 1:1, 2:3, 3:2" in text and "keys are id, prompt, images" in text
    assert "[" not in text


def test_a_folder_given_as_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="is not a regular file"):
        load_manifest(tmp_path)


@pytest.mark.filterwarnings("error")  # the check itself warns about nothing
def test_the_check_leaves_the_unknown_model_warning_to_the_users_own_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest check warns about nothing (an unknown model: the server decides; more
    references than a model handles best: advice, not a problem), without switching the
    process's warning filters — and without using up the one warning a user's own
    ``get_model`` of that id gets."""
    unknown = f"gemini-9-flash-image-{uuid.uuid4().hex[:8]}"  # never looked up before
    refs = [str(_png(tmp_path / f"r{n}.png")) for n in range(12)]

    def process_wide(*args: object, **kwargs: object) -> None:
        raise AssertionError("the manifest check switched the process's warning filters")

    with monkeypatch.context() as patch:
        patch.setattr(warnings, "catch_warnings", process_wide)
        items = normalise_items(
            [
                {"id": "new", "prompt": "a banana", "model": unknown},
                {
                    "id": "many",
                    "prompt": "all of these",
                    "model": "gemini-3-pro-image",
                    "images": refs,
                },
            ]
        )
    assert [i.id for i in items] == ["new", "many"]
    with pytest.warns(UserWarning, match=f"does not know the model '{unknown}'"):
        get_model(unknown)
