"""The public surface is deliberate: ``nbbanana.__all__`` is exactly what the package
offers, every name in it imports and is documented, and every type a public call returns
is in it (after httpx's tests/test_exported_members.py)."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import typing

import nbbanana
import nbbanana.batch
import nbbanana.chat
import nbbanana.fit
import nbbanana.session


def test_all_is_what_the_package_offers() -> None:
    offered = (
        {
            name
            for name in vars(nbbanana)
            if not name.startswith("_") and not inspect.ismodule(getattr(nbbanana, name))
        }
        | set(nbbanana._LAZY)
        | {"errors", "models", "__version__"}
    )
    offered -= {"annotations", "importlib", "TYPE_CHECKING", "Any"}
    assert sorted(nbbanana.__all__) == sorted(offered)
    assert len(set(nbbanana.__all__)) == len(nbbanana.__all__)


def test_every_exported_name_imports_and_is_documented() -> None:
    for name in nbbanana.__all__:
        value = getattr(nbbanana, name)
        if name in ("__version__", "PUBLIC_MODULES"):
            continue
        assert inspect.getdoc(value), f"nbbanana.{name} has no docstring"


def test_public_modules_import_and_their_all_resolves() -> None:
    for module_name in nbbanana.PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            assert hasattr(module, name), f"{module_name}.{name} is listed but missing"


def _returned_types(function: typing.Any) -> set[type]:
    # Only the return annotation: the parameters use aliases that exist for type checkers.
    annotation = function.__annotations__["return"]
    module = sys.modules[function.__module__]
    # Names a module imports only for type checking must be exported ones.
    names = {name: getattr(nbbanana, name) for name in nbbanana.__all__} | vars(module)
    returned = eval(annotation, names) if isinstance(annotation, str) else annotation
    out: set[type] = set()
    for arg in (returned, *typing.get_args(returned)):
        if isinstance(arg, type) and arg.__module__.startswith("nbbanana"):
            out.add(arg)
    return out


def test_every_type_a_public_call_returns_is_exported() -> None:
    exported = {getattr(nbbanana, name) for name in nbbanana.__all__}
    calls = [
        nbbanana.connect,
        nbbanana.fit_image,
        nbbanana.check_image,
        nbbanana.load_image,
        nbbanana.run_batch,
        nbbanana.submit_batch,
        nbbanana.prompt_grid,
        nbbanana.studio,
        nbbanana.session.Session.estimate,
        nbbanana.session.Session.generate,
        nbbanana.session.Session.chat,
        nbbanana.chat.Chat.send,
        nbbanana.batch.BatchJob.results,
    ]
    for call in calls:
        for returned in _returned_types(call):
            assert returned in exported, f"{call.__qualname__} returns {returned.__name__}"


def test_import_is_fast_and_loads_no_sdk() -> None:
    code = (
        "import sys, nbbanana; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('google', 'PIL', 'numpy', 'httpx2', 'ipywidgets')]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_batch_calls_refuse_a_misspelt_keyword_before_doing_anything() -> None:
    import pytest

    with pytest.raises(TypeError, match="concurency"):
        nbbanana.run_batch([], "out", concurency=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="resum"):
        nbbanana.prompt_grid(None, ["a cat"], resum=True)  # type: ignore[call-arg]
