"""nbbanana — a Jupyter-native toolkit for Google's Gemini image models ("Nano Banana").

The public surface is small and lives here; everything else is private or reached
through the submodules named below. Submodules load on first use, so ``import
nbbanana`` stays fast and does not import the SDK or the widget stack until needed.

Data flows one way::

    load_image → fit_image → RequestBudget → Session.generate/edit → Result → display/save
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import errors, models
from .models import EndpointProfile, ModelInfo, get_model, get_profile

__version__ = "0.1.0"

# name → submodule that defines it (loaded on first attribute access)
_LAZY: dict[str, str] = {
    "load_image": "images",
    "LoadedImage": "images",
    "RequestBudget": "budget",
    "fit_image": "fit",
    "check_image": "fit",
    "FittedImage": "fit",
    "FitReport": "fit",
    "connect": "session",
    "Session": "session",
    "Result": "result",
    "Chat": "chat",
    "Emulator": "emulator",
    "run_batch": "batch",
    "submit_batch": "batch",
    "prompt_grid": "batch",
    "studio": "widgets",
    "gallery": "relay",
}

__all__ = [
    "Chat",
    "Emulator",
    "EndpointProfile",
    "FitReport",
    "FittedImage",
    "LoadedImage",
    "ModelInfo",
    "RequestBudget",
    "Result",
    "Session",
    "__version__",
    "check_image",
    "connect",
    "errors",
    "fit_image",
    "gallery",
    "get_model",
    "get_profile",
    "load_image",
    "models",
    "prompt_grid",
    "run_batch",
    "studio",
    "submit_batch",
]

if TYPE_CHECKING:
    from .batch import prompt_grid, run_batch, submit_batch
    from .budget import RequestBudget
    from .chat import Chat
    from .emulator import Emulator
    from .fit import FitReport, FittedImage, check_image, fit_image
    from .images import LoadedImage, load_image
    from .relay import gallery
    from .result import Result
    from .session import Session, connect
    from .widgets import studio


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbbanana' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
