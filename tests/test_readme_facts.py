"""Facts the README states about the code, kept equal to the code."""

from __future__ import annotations

import re
from pathlib import Path

from nbbanana import models

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_fitting_side_the_readme_states_is_every_models() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    stated = re.search(r"overridable choice: ([\d,]+) px on the long side for every model", text)
    assert stated, "the README no longer states the default fitting side"
    side = int(stated.group(1).replace(",", ""))
    assert {info.fit_max_side for info in models.MODELS.values()} == {side}
    # No other fitting side is claimed for a particular model.
    assert not re.search(r"\d+ px for `gemini", text)
