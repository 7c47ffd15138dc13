"""The benchmarks name models that are still served.

Benchmarks are not run by the test suite (they take minutes), so a model id in one can go
stale unnoticed: when the "-preview" ids were shut down, the relay benchmark answered
0 of 180 requests. Every model id a benchmark names must resolve in the model table.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from nbbanana.errors import ModelUnavailable
from nbbanana.models import get_model

BENCHMARKS = sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py"))
_MODEL_ID = re.compile(r"^gemini-[0-9][\w.-]*$")


def _model_ids(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return sorted(
        {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _MODEL_ID.match(node.value)
        }
    )


def test_the_benchmarks_are_found() -> None:
    assert len(BENCHMARKS) >= 5


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_models_are_not_retired(path: Path) -> None:
    for model_id in _model_ids(path):
        try:
            get_model(model_id)
        except ModelUnavailable as exc:
            pytest.fail(f"{path.name} names {model_id}: {exc}")
