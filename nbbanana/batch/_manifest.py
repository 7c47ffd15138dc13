"""Batch job descriptions: the items, read from a JSONL or CSV manifest or given in Python.

A manifest is checked completely before anything is sent: every malformed line, missing
image, duplicate id and unsupported parameter is reported at once, each with its line
number, so a 1 000-item job never fails on item 731 for a typo that was visible at start.
Only paths are checked here (the file exists); images are read later, one item at a time.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._options import RequestOptions, check_reference_count
from ..errors import NbbananaError
from ..models import get_model

__all__ = ["BatchItem", "ManifestError", "load_manifest", "normalise_items", "output_stem"]

#: The keys a manifest line may have. All but ``prompt`` are optional.
FIELDS: tuple[str, ...] = (
    "id",
    "prompt",
    "images",
    "model",
    "aspect_ratio",
    "image_size",
    "thinking_level",  # "minimal" / "high" on models that take one
    "include_thoughts",  # true: the model's thoughts come back (not saved as results)
    "grounding",  # true: Google Search grounding
    "region",  # regional edit: a box "L,T,R,B" (or [L, T, R, B]) of the one image
    "mask",  # regional edit: a mask image path (non-zero = edit here)
)

#: Separator of several image paths in one CSV cell.
CSV_IMAGE_SEPARATOR = ";"

# Output names are the ids themselves when they are already safe file names.
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_WINDOWS_RESERVED = {
    "CON", "PRN", "AUX", "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}  # fmt: skip
_MAX_STEM = 120
_MAX_PROBLEMS_SHOWN = 25


class ManifestError(NbbananaError, ValueError):
    """The batch description has problems; nothing was sent.

    ``problems`` lists ``(line, message)`` pairs, one per problem found, in line order.
    """

    def __init__(self, source: str, problems: Sequence[tuple[int, str]]) -> None:
        self.source = source
        self.problems = list(problems)
        n = len(self.problems)
        if n == 1:  # one line, as every single refusal is
            super().__init__(f"{source}: {_where(*self.problems[0])}. Nothing was sent.")
            return
        shown = [f"  {_where(line, msg)}" for line, msg in self.problems[:_MAX_PROBLEMS_SHOWN]]
        if n > _MAX_PROBLEMS_SHOWN:
            shown.append(f"  … and {n - _MAX_PROBLEMS_SHOWN} more")
        super().__init__(
            f"{source}: {n} problems found before sending anything; "
            "fix them and run again:\n" + "\n".join(shown)
        )


def _where(line: int, message: str) -> str:
    """``line 3: message``; a problem of the whole file (line 0) has no line."""
    return f"line {line}: {message}" if line > 0 else message


@dataclass(frozen=True)
class BatchItem:
    """One unit of work: a prompt, optional input images, and per-item parameters.

    ``line`` is where the item was described (manifest line, or 1-based position in a
    Python list), kept so every later message can point back at it.
    """

    id: str
    prompt: str
    images: tuple[Path, ...] = ()
    model: str | None = None
    aspect_ratio: str | None = None
    image_size: str | None = None
    thinking_level: str | None = None
    include_thoughts: bool | None = None
    grounding: bool = False
    line: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        """The file-name stem of this item's outputs (the id, made safe)."""
        return output_stem(self.id)

    def fingerprint(self) -> str:
        """A short hash of what the item asks for (prompt, image paths, parameters): the
        journal keeps it so a resumed run can tell that a done item was edited since."""
        described = json.dumps(
            [self.prompt, [str(p) for p in self.images], self.params()], sort_keys=True
        )
        return hashlib.sha256(described.encode("utf-8")).hexdigest()[:16]

    def params(self) -> dict[str, Any]:
        """The request parameters that were set (for journals and grids)."""
        out: dict[str, Any] = {}
        for key in ("model", "aspect_ratio", "image_size", "thinking_level", "include_thoughts"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.grounding:
            out["grounding"] = True
        out.update(self.extra)  # region / mask of a regional edit
        return out


def output_stem(item_id: str) -> str:
    """A file-name stem for ``item_id`` that is safe on every common file system.

    Characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``; a leading
    dot (hidden file) and Windows device names get a ``_`` prefix; long ids are cut.
    Two ids mapping to the same stem are reported as duplicates by the manifest check.
    """
    stem = _UNSAFE_CHARS.sub("_", item_id).strip()
    if not stem or stem.startswith(".") or stem.split(".")[0].upper() in _WINDOWS_RESERVED:
        stem = "_" + stem
    return stem[:_MAX_STEM]


# --------------------------------------------------------------------------- reading


def load_manifest(
    path: str | os.PathLike[str], *, default_model: str | None = None
) -> list[BatchItem]:
    """Read and check a ``.jsonl`` or ``.csv`` manifest.

    Image paths are relative to the manifest's folder. Raises :class:`ManifestError`
    listing every problem (with line numbers) when there is any; nothing is sent before.
    """
    path = Path(path)
    problem = _not_a_file(path)
    if problem:
        raise ManifestError(str(path), [(0, problem)])
    suffix = path.suffix.lower()
    if suffix == ".csv":
        raw, problems = _read_csv(path)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        raw, problems = _read_jsonl(path)
    else:
        raise ManifestError(
            str(path),
            [(0, f"unknown manifest type {suffix or '(none)'!r}; use a .jsonl or .csv file")],
        )
    return _check(str(path), raw, problems, base=path.parent, default_model=default_model)


def normalise_items(
    items: str | os.PathLike[str] | Iterable[BatchItem | Mapping[str, Any]],
    *,
    base: str | os.PathLike[str] | None = None,
    default_model: str | None = None,
) -> list[BatchItem]:
    """Items from a manifest path, or a list of :class:`BatchItem` / dicts (checked the same
    way as manifest lines; their "line" is their 1-based position)."""
    if isinstance(items, (str, os.PathLike)):
        return load_manifest(items, default_model=default_model)
    raw: list[tuple[int, Mapping[str, Any]]] = []
    for position, entry in enumerate(items, start=1):
        if isinstance(entry, BatchItem):
            record: dict[str, Any] = {
                "id": entry.id,
                "prompt": entry.prompt,
                "images": [str(p) for p in entry.images],
                **entry.params(),
            }
            raw.append((entry.line or position, record))
        else:
            raw.append((position, entry))
    return _check(
        "items", raw, [], base=Path(base) if base else Path.cwd(), default_model=default_model
    )


def _not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a manifest, or None when it can."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "no such file; check the manifest's path"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc}); check the path"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a folder, pipe or device); give a .jsonl or .csv file"
    return None


def _image_problem(path: Path, name: str) -> str | None:
    """Why an item's image cannot be used, or None (only the path is checked here)."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return f"image not found: {name!r}"
    except OSError as exc:  # a symlink loop, no permission
        return f"image {name!r} cannot be read ({exc.strerror or exc})"
    if not stat.S_ISREG(mode):
        return f"image {name!r} is not a regular file (a folder, pipe or device)"
    return None


def _read_text(path: Path) -> tuple[str | None, list[tuple[int, str]]]:
    """The manifest's text, or the one problem that stops it being read as UTF-8 text
    (with the line of the first byte that is not)."""
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None, [(0, "is a binary file, not a text manifest; give a .jsonl or .csv file")]
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return None, [
            (
                line,
                f"byte 0x{data[exc.start]:02x} is not UTF-8 text; save the manifest as "
                "UTF-8 (e.g. 'Save as… CSV UTF-8' in a spreadsheet)",
            )
        ]


def _read_jsonl(path: Path) -> tuple[list[tuple[int, Mapping[str, Any]]], list[tuple[int, str]]]:
    raw: list[tuple[int, Mapping[str, Any]]] = []
    text_all, problems = _read_text(path)
    if text_all is None:
        return raw, problems
    with io.StringIO(text_all, newline=None) as fh:  # universal newlines, as open() reads
        for line_no, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                # Some messages end in "at" ("Unterminated string starting at"): no "at at".
                what = exc.msg.removesuffix(" at")
                problems.append((line_no, f"not valid JSON ({what} at column {exc.colno})"))
                continue
            if not isinstance(value, dict):
                problems.append(
                    (
                        line_no,
                        f'expected a JSON object like {{"prompt": …}}, got {type(value).__name__}',
                    )
                )
                continue
            raw.append((line_no, value))
    return raw, problems


def _read_csv(path: Path) -> tuple[list[tuple[int, Mapping[str, Any]]], list[tuple[int, str]]]:
    raw: list[tuple[int, Mapping[str, Any]]] = []
    text_all, problems = _read_text(path)
    if text_all is None:
        return raw, problems
    with io.StringIO(text_all, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return raw, [(1, "the CSV file is empty; its first line must name the columns")]
        columns = [c.strip() for c in header]
        for name in columns:
            if name not in FIELDS:
                problems.append(
                    (1, f"unknown column {name!r}{_suggest(name)}; columns are {_plain(FIELDS)}")
                )
        if "prompt" not in columns:
            problems.append((1, "the header has no 'prompt' column"))
        if problems:
            return raw, problems
        start = reader.line_num + 1
        for row in reader:
            line_no, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                problems.append(
                    (line_no, f"{len(row)} cells, but the header names {len(columns)} columns")
                )
                continue
            record: dict[str, Any] = {}
            for name, cell in zip(columns, row, strict=True):
                cell = cell.strip()
                if name == "images":
                    record[name] = [p.strip() for p in cell.split(CSV_IMAGE_SEPARATOR) if p.strip()]
                elif cell:
                    record[name] = cell
            raw.append((line_no, record))
    return raw, problems


# --------------------------------------------------------------------------- checking


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, FIELDS, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check(
    source: str,
    raw: Sequence[tuple[int, Mapping[str, Any]]],
    problems: list[tuple[int, str]],
    *,
    base: Path,
    default_model: str | None,
) -> list[BatchItem]:
    items: list[BatchItem] = []
    seen_ids: dict[str, int] = {}
    seen_stems: dict[str, tuple[str, int]] = {}
    for line_no, record in raw:
        item, item_problems = _parse_record(line_no, record, base=base, default_model=default_model)
        problems.extend((line_no, msg) for msg in item_problems)
        if item is None:
            # Still claim its id, so that a later line reusing it is reported too.
            raw_id = record.get("id", line_no)
            if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool):
                seen_ids.setdefault(str(raw_id).strip(), line_no)
            continue
        if item.id in seen_ids:
            problems.append(
                (line_no, f"duplicate id {item.id!r} (first used on line {seen_ids[item.id]})")
            )
            continue
        # Case-insensitive: macOS and Windows file systems would merge the outputs.
        stem_key = item.stem.lower()
        if stem_key in seen_stems:
            other, other_line = seen_stems[stem_key]
            problems.append(
                (
                    line_no,
                    f"id {item.id!r} gives the same output file name ({item.stem!r}) as id "
                    f"{other!r} on line {other_line}; choose ids that differ in more than "
                    "case or punctuation",
                )
            )
            continue
        seen_ids[item.id] = line_no
        seen_stems[stem_key] = (item.id, line_no)
        items.append(item)
    if not raw and not problems:
        problems.append((0, "no items: the manifest has no lines with a prompt"))
    if problems:
        raise ManifestError(source, sorted(problems, key=lambda p: p[0]))
    return items


def _parse_record(
    line_no: int, record: Mapping[str, Any], *, base: Path, default_model: str | None
) -> tuple[BatchItem | None, list[str]]:
    problems: list[str] = []
    for key in record:
        if key not in FIELDS:
            problems.append(f"unknown key {key!r}{_suggest(str(key))}; keys are {_plain(FIELDS)}")

    prompt = record.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        problems.append("'prompt' is missing or empty")

    raw_id = record.get("id", line_no)
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or str(raw_id).strip() == "":
        problems.append(f"'id' must be a non-empty string or integer, got {raw_id!r}")
        item_id = str(line_no)
    else:
        item_id = str(raw_id).strip()

    images_value = record.get("images", [])
    if isinstance(images_value, str):
        images_value = [images_value]
    images: list[Path] = []
    if not isinstance(images_value, list) or not all(isinstance(p, str) for p in images_value):
        problems.append("'images' must be a list of file paths")
    else:
        for name in images_value:
            path = Path(name).expanduser()
            if not path.is_absolute():
                path = base / path
            problem = _image_problem(path, name)
            if problem:
                problems.append(problem)
            images.append(path)

    params: dict[str, str | None] = {}
    for key in ("model", "aspect_ratio", "image_size"):
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            # CSV cells and JSON numbers like 512 for "512": accept and keep as text.
            value = str(value) if isinstance(value, int) and not isinstance(value, bool) else None
            if value is None:
                problems.append(f"{key!r} must be a string")
        params[key] = value or None
    level = record.get("thinking_level")
    if level is not None and not isinstance(level, str):
        problems.append("'thinking_level' must be a string")
        level = None
    flags = {
        key: _flag(record.get(key), key, problems) for key in ("include_thoughts", "grounding")
    }
    problems.extend(
        check_params(
            params["model"] or default_model,
            params["aspect_ratio"],
            params["image_size"],
            thinking_level=level or None,
            include_thoughts=flags["include_thoughts"],
            grounding=bool(flags["grounding"]),
            images=len(images),
        )
    )
    extra = _region_keys(record, images, base, problems)
    if problems:
        return None, problems
    assert isinstance(prompt, str)
    return (
        BatchItem(
            id=item_id,
            prompt=prompt,
            images=tuple(images),
            model=params["model"],
            aspect_ratio=params["aspect_ratio"],
            image_size=params["image_size"],
            thinking_level=level or None,
            include_thoughts=flags["include_thoughts"],
            grounding=bool(flags["grounding"]),
            line=line_no,
            extra=extra,
        ),
        [],
    )


def _region_keys(
    record: Mapping[str, Any], images: list[Path], base: Path, problems: list[str]
) -> dict[str, Any]:
    """``region`` / ``mask`` of a regional edit (see :mod:`nbbanana.region`), checked as far
    as possible without reading the image: a well-formed box, or a mask file that exists."""
    region, mask = record.get("region"), record.get("mask")
    if region is None and mask is None:
        return {}
    if region is not None and mask is not None:
        problems.append("give 'region' or 'mask', not both")
        return {}
    if len(images) != 1:
        problems.append("a regional edit ('region' or 'mask') needs exactly one image")
    if region is not None:
        parts = region.split(",") if isinstance(region, str) else region
        try:
            box = [int(p) for p in parts]
            if len(box) != 4 or min(box) < 0 or box[0] >= box[2] or box[1] >= box[3]:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(
                f"'region' must be a box \"left,top,right,bottom\" in pixels, got {region!r}"
            )
            return {}
        return {"region": ",".join(map(str, box))}
    if not isinstance(mask, str) or not mask.strip():
        problems.append("'mask' must be the path of a mask image")
        return {}
    path = Path(mask).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        problems.append(f"mask not found: {mask!r}")
    return {"mask": str(path)}


_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0", ""}


def _flag(value: Any, key: str, problems: list[str]) -> bool | None:
    """A yes/no manifest value: JSON ``true``/``false``, or a CSV cell ``true``/``yes``/``1``
    (``false``/``no``/``0``/empty); ``None`` when absent."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE if text else None
    problems.append(f"{key!r} must be true or false, got {value!r}")
    return None


def check_params(
    model: str | None,
    aspect_ratio: str | None,
    image_size: str | None,
    *,
    thinking_level: str | None = None,
    include_thoughts: bool | None = None,
    grounding: bool = False,
    images: int = 0,
) -> list[str]:
    """Problems with a model / aspect ratio / image size / thinking / grounding
    combination and ``images`` reference images, in plain words (the checks every
    request goes through, then the size and ratio pairs the model's table lists).

    An unknown model is not a problem (new ids appear often and the server decides).
    """
    # No warnings.catch_warnings here: it switches process-wide filters (not thread-safe),
    # and it also swallowed the one-time "unknown model" warning for good, so the user's
    # own later get_model() of that id never warned. Nothing here warns instead.
    try:
        info = get_model(model, warn=False)  # an unknown id: the server decides
        RequestOptions(
            kind="generate", aspect_ratio=aspect_ratio, image_size=image_size,
            thinking_level=thinking_level, include_thoughts=include_thoughts,
            grounding=grounding,
        ).checked(info)  # fmt: skip
        # More than the model handles best is advice, not a problem of the manifest:
        # the check is asked only when it refuses, so its "works best with" never fires.
        if images > info.max_reference_images:
            check_reference_count(info, images)
    except NbbananaError as exc:
        return [exc.message.rstrip(".")]
    if aspect_ratio is None and image_size is None:
        return []
    # The model's tables give the allowed values; said as a plain list, as a person
    # would write them in the manifest (not as a Python list).
    size_key = image_size if image_size is not None else info.default_image_size
    if size_key not in info.output_sizes:
        if not info.image_sizes:
            return [f"{info.id} has no image_size option; leave image_size empty"]
        allowed = _plain(info.image_sizes)
        return [f"{info.id} does not support image_size {image_size!r}; use one of {allowed}"]
    ratio = aspect_ratio or "1:1"
    if ratio not in info.output_sizes[size_key]:
        allowed = _plain(info.output_sizes[size_key])
        return [f"{info.id} does not support aspect_ratio {aspect_ratio!r}; use one of {allowed}"]
    return []


def _plain(values: Iterable[Any]) -> str:
    """``1:1, 2:3, 3:2`` — allowed values as a person writes them."""
    return ", ".join(str(v) for v in values)
