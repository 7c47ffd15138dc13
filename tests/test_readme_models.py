"""The README's model table is generated from the model table and must stay equal to it."""

from __future__ import annotations

import re
from pathlib import Path

from nbbanana.models import markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_model_table_is_generated_from_the_table() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(
        r"<!-- model-table:start[^>]*-->\n(.*?)\n<!-- model-table:end -->", text, re.S
    )
    assert match is not None, "README.md lost its model-table markers"
    assert match.group(1) == markdown_table(), (
        "README.md's model table is stale; replace it with nbbanana.models.markdown_table():\n"
        + markdown_table()
    )
