"""Render the Jinja2 templates in ``templates/`` (Dockerfiles, entrypoints, bundle README)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jinja2


def templates_dir() -> Path:
    """``bentolite/templates`` in an installed wheel, ``templates/`` in a source checkout."""
    package_dir = Path(__file__).parent
    for candidate in (package_dir / "templates", package_dir.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("bentolite's templates directory is missing from this installation")


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context``."""
    return _environment().get_template(template).render(**context)
