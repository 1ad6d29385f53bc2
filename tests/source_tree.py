"""``write(directory, files)``: a tree of small text files for a test, from a name -> text mapping."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write(directory: Path, files: dict[str, str]) -> Path:
    """Write each file (its text dedented) under ``directory``, creating folders; returns it."""
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return directory
