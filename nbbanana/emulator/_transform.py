"""The known-transform mode: an edit answer whose geometry is known exactly.

Real image models redraw the whole frame and may zoom or shift it a little, so a client
that puts an answer back into a larger photo (:mod:`nbbanana.region`) has to register it
first. To test that against ground truth, the emulator can answer an edit like this:

* the first input image, tinted towards the prompt's colour (a pixel-wise change, so the
  expected result of the edit is easy to compute: :meth:`KnownTransform.expected`);
* mapped onto the output size the way the model frames an input (scaled to cover, centred),
  then zoomed by ``scale`` (≥ 1) and shifted by ``dx``, ``dy`` output pixels;
* with the usual "offline emulator" mark and prompt label in the bottom corners.

It is asked for like a content fault, through the SDK: the header
``x-emulator-fault: transform;scale=1.03;dx=4.5;dy=-2`` or
``Emulator.inject("transform", scale=1.03)``. Parameters left out are drawn from an RNG
seeded by the request (scale 1.01–1.05, a shift within the room the zoom leaves), so the
same request gets the same answer. The exact mapping of each answer is kept, by response
id, in a small log that tests read with :func:`known_transform`.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image

from . import _synth

__all__ = ["TINT_STRENGTH", "KnownTransform", "edit", "known_transform"]

#: How far the answer is blended towards the prompt's colour.
TINT_STRENGTH = 0.3
_LOG_SIZE = 256

_log: OrderedDict[str, KnownTransform] = OrderedDict()
_log_lock = threading.Lock()


@dataclass(frozen=True)
class KnownTransform:
    """Where each pixel of one known-transform answer came from.

    Coordinates are continuous, with pixel ``i`` spanning ``[i, i + 1)``: the answer's
    point ``(x, y)`` shows the input's point ``offset + (x, y) / factor``.
    """

    response_id: str
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    #: Answer pixels per input pixel.
    factor: float
    #: The input point shown at the answer's top-left corner.
    offset: tuple[float, float]
    #: The zoom on top of the cover fit, and the shift in answer pixels.
    scale: float
    dx: float
    dy: float
    tint: tuple[int, int, int]
    strength: float = TINT_STRENGTH

    def to_input(self, x: float, y: float) -> tuple[float, float]:
        """The input point that the answer's point ``(x, y)`` shows."""
        return self.offset[0] + x / self.factor, self.offset[1] + y / self.factor

    def expected(self, image: Image.Image) -> Image.Image:
        """The edit this mode performs, applied to ``image`` (ground truth at any size)."""
        rgb = image.convert("RGB")
        return Image.blend(rgb, Image.new("RGB", rgb.size, self.tint), self.strength)

    def to_json(self) -> dict[str, Any]:
        return {
            "response_id": self.response_id,
            "input_size": list(self.input_size),
            "output_size": list(self.output_size),
            "factor": self.factor,
            "offset": list(self.offset),
            "scale": self.scale,
            "dx": self.dx,
            "dy": self.dy,
            "tint": list(self.tint),
            "strength": self.strength,
        }


def known_transform(response_id: str) -> KnownTransform | None:
    """The transform of a recent known-transform answer (``Result.response_id``)."""
    with _log_lock:
        return _log.get(response_id)


def _number(params: Mapping[str, str], key: str, default: float) -> float:
    try:
        return float(params[key])
    except (KeyError, ValueError):
        return default


def edit(
    source: Image.Image,
    prompt: str,
    size: tuple[int, int],
    seed: int,
    params: Mapping[str, str],
    response_id: str,
) -> Image.Image:
    """The answer to an edit of ``source`` in known-transform mode (see the module doc)."""
    rng = random.Random(_synth.seed_for("transform", seed, params.get("seed", "")))
    in_w, in_h = source.size
    out_w, out_h = size
    # A zoom below 1 would need pixels outside the input: the mode only zooms in.
    scale = max(1.0, _number(params, "scale", rng.uniform(1.01, 1.05)))
    factor = max(out_w / in_w, out_h / in_h) * scale
    box_w, box_h = out_w / factor, out_h / factor
    room_x, room_y = (in_w - box_w) / 2, (in_h - box_h) / 2  # input pixels on each side
    dx = _number(params, "dx", rng.uniform(-0.8, 0.8) * room_x * factor)
    dy = _number(params, "dy", rng.uniform(-0.8, 0.8) * room_y * factor)
    dx = max(-room_x * factor, min(room_x * factor, dx))
    dy = max(-room_y * factor, min(room_y * factor, dy))
    x0, y0 = room_x - dx / factor, room_y - dy / factor
    tint = _synth._tint(prompt, seed)
    transform = KnownTransform(
        response_id=response_id,
        input_size=(in_w, in_h),
        output_size=(out_w, out_h),
        factor=factor,
        offset=(x0, y0),
        scale=scale,
        dx=dx,
        dy=dy,
        tint=tint,
    )
    # resize(box=...) filters properly whether the box is larger or smaller than the
    # output, and maps continuous coordinates exactly as KnownTransform describes.
    image = transform.expected(source).resize(
        size, Image.Resampling.BICUBIC, box=(x0, y0, x0 + box_w, y0 + box_h)
    )
    with _log_lock:
        _log[response_id] = transform
        while len(_log) > _LOG_SIZE:
            _log.popitem(last=False)
    return _synth._marks(image, prompt)
