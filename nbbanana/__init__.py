"""nbbanana — a Jupyter-native toolkit for Google's Gemini image models ("Nano Banana").

The public surface is what ``__all__`` lists: every function users call and every type
a public call returns. Names load on first use, so ``import nbbanana`` stays fast and
does not import the SDK or the widget stack until needed.

Public modules (:data:`PUBLIC_MODULES`) may be imported directly
(``from nbbanana.batch import load_manifest``); every other module is private, whether
or not its name starts with ``_``, and may change without notice.

Data flows one way::

    load_image → fit_image → RequestBudget → Session.generate/edit → Result → display/save

(``docs/architecture.md`` explains the modules behind it.)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import errors, models
from ._version import __version__
from .models import EndpointProfile, ModelInfo, get_model, get_profile

#: The modules whose public names (their ``__all__``) are part of the API.
PUBLIC_MODULES = (
    "nbbanana",
    "nbbanana.batch",
    "nbbanana.emulator",
    "nbbanana.errors",
    "nbbanana.models",
    "nbbanana.relay",
    "nbbanana.samples",
    "nbbanana.widgets",
)

# name → submodule that defines it (loaded on first attribute access)
_LAZY: dict[str, str] = {
    "load_image": "images",
    "LoadedImage": "images",
    "RequestBudget": "budget",
    "fit_image": "fit",
    "check_image": "fit",
    "FittedImage": "fit",
    "FitReport": "fit",
    "ImageCheck": "fit",
    "connect": "_connect",
    "Session": "session",
    "CostEstimate": "session",
    "Result": "result",
    "InputRef": "result",
    "Usage": "result",
    "Chat": "chat",
    "Emulator": "emulator",
    "run_batch": "batch",
    "run_batch_async": "batch",
    "submit_batch": "batch",
    "prompt_grid": "batch",
    "prompt_grid_async": "batch",
    "load_manifest": "batch",
    "BatchItem": "batch",
    "BatchReport": "batch",
    "BatchJob": "batch",
    "GridResult": "batch",
    "studio": "widgets",
    "Studio": "widgets",
    "gallery": "relay",
}

__all__ = [
    "PUBLIC_MODULES",
    "BatchItem",
    "BatchJob",
    "BatchReport",
    "Chat",
    "CostEstimate",
    "Emulator",
    "EndpointProfile",
    "FitReport",
    "FittedImage",
    "GridResult",
    "ImageCheck",
    "InputRef",
    "LoadedImage",
    "ModelInfo",
    "RequestBudget",
    "Result",
    "Session",
    "Studio",
    "Usage",
    "__version__",
    "check_image",
    "connect",
    "errors",
    "fit_image",
    "gallery",
    "get_model",
    "get_profile",
    "load_image",
    "load_manifest",
    "models",
    "prompt_grid",
    "prompt_grid_async",
    "run_batch",
    "run_batch_async",
    "studio",
    "submit_batch",
]

if TYPE_CHECKING:
    from ._connect import connect
    from .batch import (
        BatchItem,
        BatchJob,
        BatchReport,
        GridResult,
        load_manifest,
        prompt_grid,
        prompt_grid_async,
        run_batch,
        run_batch_async,
        submit_batch,
    )
    from .budget import RequestBudget
    from .chat import Chat
    from .emulator import Emulator
    from .fit import FitReport, FittedImage, ImageCheck, check_image, fit_image
    from .images import LoadedImage, load_image
    from .relay import gallery
    from .result import InputRef, Result, Usage
    from .session import CostEstimate, Session
    from .widgets import Studio, studio


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbbanana' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
