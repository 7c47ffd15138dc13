"""Small real sample images shipped with nbbanana (see ``CREDITS.md`` next to them).

They let ``make demo``, the notebooks and the tests run on real pictures without a
network: a JPEG photo, a PNG with a real alpha channel, a screenshot-like chart and a
grayscale photo of handwriting. Each is under 150 KB.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SAMPLE_NAMES", "sample_path", "sample_paths"]

_DIR = Path(__file__).resolve().parent

#: The bundled samples, in a stable order: photo, alpha cut-out, chart, grayscale.
SAMPLE_NAMES: tuple[str, ...] = (
    "coffee.jpg",
    "astronaut_cutout.png",
    "chart.png",
    "text.png",
)


def sample_paths() -> list[Path]:
    """Return the paths of all bundled sample images, in :data:`SAMPLE_NAMES` order."""
    return [_DIR / name for name in SAMPLE_NAMES]


def sample_path(name: str) -> Path:
    """Return the path of one bundled sample, e.g. ``sample_path("coffee.jpg")``.

    Raises ``KeyError`` naming the available samples when ``name`` is not one of them.
    """
    if name not in SAMPLE_NAMES:
        raise KeyError(f"no sample named {name!r}; the samples are: {', '.join(SAMPLE_NAMES)}")
    return _DIR / name
