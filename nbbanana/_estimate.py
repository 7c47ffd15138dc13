"""Cost estimates made before sending: :class:`CostEstimate`.

Input images use the model's token rule on the size they are (or would be) sent at;
text uses :func:`nbbanana.models.text_tokens`; output uses the model's tokens per image
plus a small text allowance. The response's ``usageMetadata`` decides what is spent.

How many images an answer holds is not known before it comes: these models have no
image-count parameter, and a prompt may ask for several ("four variations of …"). An
estimate for an unknown count is for one image and says so ("per image"); the answer is
then recorded at what all its images cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._format import format_usd
from .models import ModelInfo, text_tokens

__all__ = ["CostEstimate", "estimate"]

#: Output-text allowance in estimates: the short sentence image models add to an image,
#: a describe() answer, or a thinking model's thoughts.
_TEXT_OUTPUT_ALLOWANCE = 300
_THOUGHT_ALLOWANCE = 600


@dataclass(frozen=True)
class CostEstimate:
    """Tokens and USD a call is expected to use, computed before sending.

    Input images use the model's token rule on the fitted size; output uses the model's
    tokens per image plus a small text allowance. It is an estimate: the response's
    ``usageMetadata`` decides what :attr:`Session.spent` records.
    """

    model: str
    input_tokens: int
    output_image_tokens: int
    output_text_tokens: int
    #: ``None`` when the model's price is unknown (never a made-up number).
    usd: float | None
    #: Output images counted; ``None``: not known (a prompt may ask for several), so the
    #: estimate is for one image, and each further image adds :attr:`usd_per_image`.
    output_images: int | None = 1
    #: USD of one more output image (``None`` when the price is unknown).
    usd_per_image: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_image_tokens + self.output_text_tokens

    def __str__(self) -> str:
        cost = format_usd(self.usd)
        if self.output_images is None:
            cost += " per image"  # input counted with each: n × this is an upper bound
        elif self.output_images > 1:
            cost += f" for {self.output_images} images"
        return f"≈ {cost} ({self.total_tokens:,} tokens on {self.model})"


def estimate(
    info: ModelInfo,
    prompt: str,
    image_tokens: Sequence[int],
    *,
    image_size: str | None,
    output_images: int | None,
    extra_input_tokens: int = 0,
) -> CostEstimate:
    """The estimate for ``prompt`` with images of ``image_tokens`` (plus
    ``extra_input_tokens``, e.g. a chat's history) and ``output_images`` images out
    (``None``: not known; the estimate is then for one image, per image)."""
    input_tokens = text_tokens(prompt) + sum(image_tokens) + extra_input_tokens
    per_image = info.output_image_tokens(image_size)
    out_image = per_image * (1 if output_images is None else output_images)
    out_text = _TEXT_OUTPUT_ALLOWANCE + (_THOUGHT_ALLOWANCE if info.thinking else 0)
    usd = info.cost_usd(
        input_tokens=input_tokens, output_image_tokens=out_image, output_text_tokens=out_text
    )
    return CostEstimate(
        model=info.id,
        input_tokens=input_tokens,
        output_image_tokens=out_image,
        output_text_tokens=out_text,
        usd=usd,
        output_images=output_images,
        usd_per_image=info.cost_usd(output_image_tokens=per_image),
    )
