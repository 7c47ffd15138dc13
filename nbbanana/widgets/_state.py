"""What the studio is working on, without any widget: inputs, the chat, the current turn.

A run continues the current chat (multi-turn editing keeps the model's context, including
Gemini 3's thought signatures); branching from an earlier turn starts a new chat from that
turn's history. New uploads, or a change of model, aspect ratio or image size, start a new
chat from the latest image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from ..chat import Chat
    from ..fit import FittedImage
    from ..result import Result
    from ..session import Session
    from ._prompt import RunRequest

__all__ = ["StudioState"]


class StudioState:
    """The studio's state machine, driven by the widgets and tested on its own."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.inputs: list[FittedImage] = []
        self.chat: Chat | None = None
        self._settings: tuple[str, str | None, str | None] | None = None
        #: The images a new chat starts from when there are no uploads (after a settings change).
        self._seed: list[Any] = []

    @property
    def turns(self) -> list[Result]:
        """The results of the current chat, oldest first."""
        return list(self.chat.history) if self.chat is not None else []

    def set_inputs(self, images: Sequence[FittedImage]) -> bool:
        """Use these uploaded images from now on; returns whether anything changed.

        A different set of inputs starts a new chat (the old turns no longer apply).
        """
        new = [image.sent_sha256 for image in images]
        if new == [image.sent_sha256 for image in self.inputs]:
            return False
        self.inputs = list(images)
        self.chat, self._settings, self._seed = None, None, []
        return True

    def before_image(self) -> Image.Image | None:
        """What the next run starts from: the latest turn's image, else the first upload."""
        for result in reversed(self.turns):
            if result.image is not None:
                return result.image
        if self._seed:
            seed = self._seed[0]
            return seed.image if hasattr(seed, "image") else None
        return self.inputs[0].to_pil() if self.inputs else None

    def reference_images(self) -> list[Any]:
        """The images the next message carries (only the first message of a chat has any)."""
        if self.chat is not None and self.turns:
            return []
        return list(self._seed or self.inputs)

    def branch(self, turn: int) -> None:
        """Continue from turn ``turn`` (from 1, as :meth:`Chat.branch` counts): later
        turns are dropped from the current chat."""
        if self.chat is None or not 1 <= turn <= len(self.turns):
            raise IndexError(f"there is no turn {turn} to branch from")
        self.chat = self.chat.branch(turn)

    async def run(self, request: RunRequest) -> Result:
        """Send ``request`` as the next turn. Awaited on the kernel's event loop:
        :meth:`Chat.send_async` keeps the blocking work off the loop, so the kernel stays free."""
        settings = (request.model, request.aspect_ratio, request.image_size)
        if self.chat is not None and settings != self._settings:
            # New settings need a new chat: it starts from the latest result.
            latest = next((r for r in reversed(self.turns) if r.image is not None), None)
            self._seed = [latest] if latest is not None else self._seed
            self.chat = None
        if self.chat is None:
            self.chat = self.session.chat(
                model=request.model,
                aspect_ratio=request.aspect_ratio,
                image_size=request.image_size,
            )
            self._settings = settings
        return await self.chat.send_async(request.prompt, self.reference_images())
