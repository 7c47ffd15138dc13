"""The types users hand to nbbanana, in one place (as httpx keeps its ``_types.py``).

Only names for type checkers and readers: nothing here is needed at run time, so the
heavy modules they mention (Pillow, numpy, the result and fitting modules) are imported
for type checking only, and ``import nbbanana`` stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TypeAlias

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from .batch._manifest import BatchItem
    from .fit import FittedImage
    from .result import Result

__all__ = [
    "ImageInput",
    "ImageSource",
    "InputSpec",
    "ItemsLike",
    "PromptsSpec",
    "RequestKind",
]

#: Everything :func:`~nbbanana.load_image` accepts. The mapping is one item of an
#: ipywidgets 8 ``FileUpload.value`` (keys ``name``, ``type``, ``size``,
#: ``last_modified``, ``content``).
ImageSource: TypeAlias = (
    "str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO"
    " | Image.Image | np.ndarray[Any, Any] | Mapping[str, Any]"
)

#: A reference image for a request: anything :func:`~nbbanana.load_image` reads, a
#: :class:`~nbbanana.FittedImage` (sent as is) or a previous :class:`~nbbanana.Result`
#: (its first image, as the server sent it).
ImageInput: TypeAlias = "ImageSource | FittedImage | Result"

#: What a request asks for. ``"chat"`` is a turn of a :class:`~nbbanana.Chat`.
RequestKind: TypeAlias = Literal["generate", "edit", "describe", "chat"]

#: A batch: a manifest path (JSONL or CSV), or the items themselves.
ItemsLike: TypeAlias = "str | os.PathLike[str] | Iterable[BatchItem | Mapping[str, Any]]"

#: One row of a :func:`~nbbanana.prompt_grid`: an image path, several, or ``None``.
InputSpec: TypeAlias = "str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None"

#: The prompts of a grid: a list, or a mapping from column label to prompt.
PromptsSpec: TypeAlias = "Sequence[str] | Mapping[str, str]"
