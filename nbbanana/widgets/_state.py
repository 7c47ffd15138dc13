"""What the studio is working on, without any widget: inputs, the chat, the current turn.

A run continues the current chat (multi-turn editing keeps the model's context, including
Gemini 3's thought signatures); branching from any earlier turn starts a new chat from that
turn's history. Every turn stays in a :class:`~._tree.TurnTree`, so a branch never deletes
the turns it leaves: they can be returned to. New uploads start a new tree; a change of
model, aspect ratio or image size starts a new chat from the latest image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PIL import Image

from ._gauge import TurnGauge, turn_gauge
from ._tree import TurnTree

if TYPE_CHECKING:
    from ..chat import Chat
    from ..fit import FittedImage
    from ..result import Result
    from ..session import Session
    from ._prompt import RunRequest
    from ._tree import Turn

__all__ = ["StudioState"]


class StudioState:
    """The studio's state machine, driven by the widgets and tested on its own."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.inputs: list[FittedImage] = []
        self.chat: Chat | None = None
        #: Every turn made from the current inputs, branches included.
        self.tree = TurnTree()
        self._settings: tuple[str | bool | None, ...] | None = None
        #: The images a new chat starts from when there are no uploads (after a settings change).
        self._seed: list[Any] = []
        #: Which image of the current turn's answer is the After image and the next
        #: run's input (an answer may hold several); ``None``: the first, chat continues.
        self.picked: int | None = None

    @property
    def turns(self) -> list[Result]:
        """The results from the first turn to the current one, oldest first."""
        return [turn.result for turn in self.tree.path()]

    def set_inputs(self, images: Sequence[FittedImage]) -> bool:
        """Use these uploaded images from now on; returns whether anything changed.

        A different set of inputs starts a new chat and a new tree (the old turns were
        made from other images).
        """
        new = [image.sent_sha256 for image in images]
        if new == [image.sent_sha256 for image in self.inputs]:
            return False
        self.inputs = list(images)
        self.chat, self._settings, self._seed, self.picked = None, None, [], None
        self.tree = TurnTree()
        return True

    def before_image(self) -> Image.Image | None:
        """What the next run starts from: the latest turn's image (the one picked, when
        its answer held several), else the first upload."""
        if self.picked is not None:
            return self.turns[-1].images[self.picked]
        for result in reversed(self.turns):
            if result.image is not None:
                return result.image
        if self._seed:
            seed = self._seed[0]
            return seed if isinstance(seed, Image.Image) else getattr(seed, "image", None)
        return self.inputs[0].to_pil() if self.inputs else None

    def reference_images(self) -> list[Any]:
        """The images the next message carries (only the first message of a chat has any)."""
        return self._references(self.chat, self._seed)

    def _references(self, chat: Chat | None, seed: list[Any]) -> list[Any]:
        if chat is not None and len(chat):
            return []
        return list(seed or self.inputs)

    def branch(self, turn: int) -> Turn:
        """Continue from turn ``turn`` (numbered from 1 in the order turns were made;
        any turn, on any branch). Nothing is dropped: the turns after it stay in
        :attr:`tree`."""
        chosen = self.tree.select(turn)
        self.chat = chosen.chat.branch(chosen.depth)
        self._settings, self._seed, self.picked = chosen.settings, [], None
        return chosen

    def pick(self, index: int) -> Image.Image:
        """Make image ``index`` (from 0) of the current turn's answer the After image and
        the next run's input. The chat's history holds every image of the answer, so
        which one to edit would be the model's guess: the next run starts a new chat
        from the picked image instead (the turns stay in the history)."""
        turns = self.turns
        if not turns or not 0 <= index < len(turns[-1].images):
            count = len(turns[-1].images) if turns else 0
            raise IndexError(f"there is no image {index + 1} in the current answer ({count})")
        self.picked = index
        image = turns[-1].images[index]
        self._seed, self.chat = [image], None
        return image

    def next_gauge(self, request: RunRequest) -> TurnGauge | None:
        """What the next run sends when it continues a turn (that turn's image, in the
        chat history); ``None`` when it sends the uploads."""
        current = self.tree.current
        # The session's facts: a price set with connect(price_per_image=...) counts.
        info = self.session.pipeline.model_info(request.model, warn=False)  # the picker says so
        if current is not None and self.picked is not None:
            # A picked image starts a new chat: it is the one image sent. (The budget
            # module loads the SDK's types: imported once there is a turn to measure.)
            from ..budget import base64_size

            result = self.turns[-1]
            picked = result.images[self.picked]
            data = (
                result.image_data[self.picked][0] if self.picked < len(result.image_data) else b""
            )
            return turn_gauge(
                current,
                size=picked.size,
                history_bytes=base64_size(len(data)),
                history_tokens=info.input_image_tokens(*picked.size),
                model=info,
                limit=self.session.pipeline.budget(request.model).limit,
                prompt=request.prompt,
                image_size=request.image_size,
                picked=(self.picked, len(result.images)),
            )
        if current is None or self.chat is None or not len(self.chat):
            return None
        image = self.turns[-1].image
        if image is None:
            return None
        return turn_gauge(
            current,
            size=image.size,
            history_bytes=self.chat._history_bytes(),
            history_tokens=self.chat._history_tokens(),
            model=info,
            limit=self.session.pipeline.budget(request.model).limit,
            prompt=request.prompt,
            image_size=request.image_size,
        )

    async def run(self, request: RunRequest, *, region: dict[str, Any] | None = None) -> Result:
        """Send ``request`` as the next turn. Awaited on the kernel's event loop:
        :meth:`Chat.send_async` keeps the blocking work off the loop, so the kernel stays free.

        ``region``: ``{"source": image, "region": box}`` or ``{..., "mask": mask}`` makes the
        turn a regional edit of ``source`` (see :meth:`Chat.send`)."""
        settings = request.settings
        # Everything is worked out on locals and kept only once the turn is made: a run
        # that fails or is cancelled leaves the chat, the pick and the tree as they were.
        chat, seed = self.chat, self._seed
        if chat is not None and settings != self._settings:
            # New settings need a new chat: it starts from the latest result.
            latest = next((r for r in reversed(self.turns) if r.image is not None), None)
            seed = [latest] if latest is not None else seed
            chat = None
        if chat is None:
            chat = self.session.chat(
                model=request.model,
                aspect_ratio=request.aspect_ratio,
                image_size=request.image_size,
                thinking_level=request.thinking_level,
                include_thoughts=request.include_thoughts,
                grounding=request.grounding,
            )
        else:
            # Sent on a copy: a cancelled send goes on in its worker thread, and its
            # answer would join the chat the next run continues, behind the tree's back.
            chat = chat.branch(len(chat))
        if region:
            region = dict(region)
            images = [region.pop("source")]
            result = await chat.send_async(request.prompt, images, **region)
        else:
            result = await chat.send_async(request.prompt, self._references(chat, seed))
        self.chat, self._settings, self._seed, self.picked = chat, settings, seed, None
        self.tree.add(result, chat, settings=settings)
        return result
