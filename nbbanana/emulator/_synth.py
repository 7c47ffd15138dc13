"""Deterministic images and descriptions for the emulator's answers.

The images are meant to be looked at: a generated image is soft abstract art whose
colours and shapes are seeded by the request, with the prompt written small in a corner;
an edit is the (first) input image cropped to the output size, posterised and tinted by
the prompt, with the other reference images as insets and a coloured frame — so anyone
can see at a glance that the edit used its inputs. Every image carries a visible
"offline emulator" mark: an emulator image must never pass for a model's.

Speed: the art is computed with numpy on a small canvas and scaled up (a 4K output is
5504×3072 pixels), and PNGs are written with low compression.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import io
import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

__all__ = ["MARK", "describe", "edit", "encode_png", "generate", "interim", "seed_for"]

MARK = "offline emulator"
_CANVAS = 320  # long side of the computed art before scaling up


def seed_for(*parts: object) -> int:
    """A stable 64-bit seed from anything printable (``hash()`` is salted per process)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _palette(rng: random.Random, n: int) -> list[tuple[int, int, int]]:
    base = rng.random()
    colours = []
    for i in range(n):
        hue = (base + i * (0.09 + rng.random() * 0.25)) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, 0.45 + 0.4 * rng.random(), 0.55 + 0.4 * rng.random())
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return colours


def _art(width: int, height: int, rng: random.Random) -> Image.Image:
    scale = _CANVAS / max(width, height)
    w, h = max(8, round(width * scale)), max(8, round(height * scale))
    colours = np.array(_palette(rng, 7), dtype=np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs /= max(w, h)
    ys /= max(w, h)
    angle = rng.random() * math.tau
    t = np.clip((xs * math.cos(angle) + ys * math.sin(angle)) * 0.9 + 0.3, 0, 1)[..., None]
    img = colours[0] * (1 - t) + colours[1] * t
    for colour in colours[2:]:
        cx, cy = rng.random() * w / max(w, h), rng.random() * h / max(w, h)
        radius = 0.08 + rng.random() * 0.25
        d2 = (xs - cx) ** 2 + (ys - cy) ** 2
        alpha = (np.exp(-d2 / (radius * radius)) * 0.85)[..., None]
        img = img * (1 - alpha) + colour * alpha
    # gentle ripples so the image does not look like a flat gradient
    ripples = np.sin((xs * rng.uniform(8, 20) + ys * rng.uniform(8, 20)) * math.pi) * 4
    img = np.clip(img + ripples[..., None], 0, 255).astype(np.uint8)
    small = Image.fromarray(img, "RGB")
    big = small.resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(big)
    unit = max(width, height)
    for _ in range(3):  # a few crisp outlines on top of the soft colour field
        x, y = rng.random() * width, rng.random() * height
        r = unit * (0.04 + rng.random() * 0.12)
        outline = tuple(int(c) for c in colours[rng.randrange(len(colours))] // 2)
        line = max(2, unit // 300)
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), outline=outline, width=line)
        else:
            draw.rectangle((x - r, y - r * 0.6, x + r, y + r * 0.6), outline=outline, width=line)
    return big


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _label(img: Image.Image, text: str, *, corner: str, max_width: int) -> None:
    """Write ``text`` small on a dark band in a bottom corner (shortened to fit)."""
    draw = ImageDraw.Draw(img)
    size = max(11, min(img.width, img.height) // 48)
    font = _font(size)
    pad = max(3, size // 3)
    while text and draw.textlength(text, font=font) > max_width - 2 * pad:
        text = text[: max(0, len(text) - max(1, len(text) // 8) - 1)].rstrip() + "…"
        if text == "…":
            break
    width = int(draw.textlength(text, font=font)) + 2 * pad
    height = size + 2 * pad
    x = pad if corner == "left" else img.width - width - pad
    y = img.height - height - pad
    draw.rectangle((x, y, x + width, y + height), fill=(20, 20, 24))
    draw.text((x + pad, y + pad - size // 8), text, fill=(250, 250, 250), font=font)


def _marks(img: Image.Image, prompt: str) -> Image.Image:
    _label(img, MARK, corner="right", max_width=img.width // 2)
    mark_width = int(ImageDraw.Draw(img).textlength(MARK, font=_font(max(11, min(img.size) // 48))))
    if prompt.strip():
        _label(img, " ".join(prompt.split()), corner="left", max_width=img.width - mark_width - 60)
    return img


def generate(prompt: str, size: tuple[int, int], seed: int) -> Image.Image:
    """Abstract art of exactly ``size`` seeded by ``seed``, with the prompt and the mark."""
    rng = random.Random(seed)
    return _marks(_art(size[0], size[1], rng), prompt)


def _tint(prompt: str, seed: int) -> tuple[int, int, int]:
    """The colour a prompt names ("make the sky violet"), else one seeded by it."""
    words = {w.strip(".,;:!?\"'").lower() for w in prompt.split()}
    named = [name for name in (*_NAMED, "violet", "gold", "cyan") if name in words]
    if named:
        return {**_NAMED, "violet": (150, 60, 220), "gold": (230, 180, 40), "cyan": (40, 210, 230)}[
            named[0]
        ]
    (colour,) = _palette(random.Random(seed_for("tint", prompt, seed)), 1)
    return colour


def edit(inputs: list[Image.Image], prompt: str, size: tuple[int, int], seed: int) -> Image.Image:
    """The first input cropped to ``size``, posterised and tinted by the prompt, framed,
    with the other inputs as insets along the top edge."""
    width, height = size
    first = inputs[0].convert("RGB")
    if first.width > 2 * width and first.height > 2 * height:
        first = first.reduce(min(first.width // width, first.height // height))
    base = ImageOps.fit(first, size, Image.Resampling.BILINEAR)
    tint = _tint(prompt, seed)
    bits = 3 + seed % 2
    styled = Image.blend(ImageOps.posterize(base, bits), Image.new("RGB", size, tint), 0.28)
    unit = min(width, height)
    inset = max(24, unit // 6)
    border = max(2, unit // 200)
    for i, extra in enumerate(inputs[1:6]):
        thumb = ImageOps.fit(extra.convert("RGB"), (inset, inset), Image.Resampling.BILINEAR)
        x = border * 6 + i * (inset + border * 5)
        framed = ImageOps.expand(thumb, border=border, fill=(250, 250, 250))
        styled.paste(framed, (x, border * 6))
    frame = max(4, unit // 40)
    draw = ImageDraw.Draw(styled)
    for k in range(frame):
        draw.rectangle((k, k, width - 1 - k, height - 1 - k), outline=tint)
    return _marks(styled, prompt)


def interim(image: Image.Image) -> Image.Image:
    """A small, blurry draft of ``image``: the "thought image" a thinking model shows."""
    draft = image.copy()
    draft.thumbnail((256, 256))
    return ImageOps.posterize(draft, 2)


def encode_png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


_NAMED = {
    "black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128),
    "red": (200, 30, 30), "orange": (240, 140, 20), "yellow": (235, 220, 40),
    "green": (40, 160, 60), "teal": (30, 150, 150), "blue": (40, 80, 200),
    "purple": (130, 50, 170), "pink": (240, 130, 180), "brown": (120, 75, 40),
}  # fmt: skip


def _colour_name(rgb: tuple[int, int, int]) -> str:
    def dist(name: str) -> int:
        return sum((a - b) ** 2 for a, b in zip(_NAMED[name], rgb, strict=True))

    return min(_NAMED, key=dist)


def _ratio_words(width: int, height: int) -> str:
    if abs(width - height) <= max(width, height) * 0.02:
        return "square"
    return "landscape" if width > height else "portrait"


def describe(images: list[Image.Image], question: str) -> str:
    """A deterministic description: size, orientation and dominant colours of each image."""
    if not images:
        words = len(question.split())
        return f"(offline emulator) You sent {words} words and no image, so there is nothing to describe."
    sentences = []
    for index, image in enumerate(images, start=1):
        small = image.convert("RGB").resize((48, 48), Image.Resampling.BILINEAR)
        quantised = small.quantize(colors=4, method=Image.Quantize.MEDIANCUT)
        palette = quantised.getpalette() or []
        counts = sorted(quantised.getcolors() or [], reverse=True)
        shares: dict[str, int] = {}
        for count, idx in counts:
            i = int(idx) if isinstance(idx, int) else 0
            name = _colour_name((palette[i * 3], palette[i * 3 + 1], palette[i * 3 + 2]))
            shares[name] = shares.get(name, 0) + count
        ranked = sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        parts = [f"{name} ({round(100 * n / (48 * 48))}%)" for name, n in ranked]
        label = f"Image {index}" if len(images) > 1 else "The image"
        sentences.append(
            f"{label} is {image.width}×{image.height} pixels ({_ratio_words(image.width, image.height)}); "
            f"its dominant colours are {', '.join(parts)}."
        )
    return "(offline emulator) " + " ".join(sentences)
