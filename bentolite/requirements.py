"""Turn a service's declared packages into a ``requirements.txt`` pinned to what is installed."""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from bentolite.exceptions import ConfigError

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)(\[[^\]]*\])?(.*)$")
# A PEP 508 line: name, optional extras, then a version specifier, a marker or "@ url".
_REQUIREMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*\s*(\[[A-Za-z0-9,._\- ]*\])?\s*([<>=!~;@(][^\n]*)?$")
_REQUIREMENT_URL = re.compile(r"^(git\+|https?://|file:)\S+$")


def is_requirement(line: str) -> bool:
    """Whether ``line`` is a pip requirement: ``name[extras] <spec>; marker``, or a URL."""
    return bool(_REQUIREMENT.fullmatch(line) or _REQUIREMENT_URL.fullmatch(line))


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def pin(line: str) -> str:
    """``'scikit-learn'`` -> ``'scikit-learn==1.9.1'`` when installed; anything else unchanged."""
    stripped = line.strip()
    match = _NAME.match(stripped)
    if not match or match.group(3).strip():
        return stripped  # already constrained, an option, a URL or a path
    version = installed_version(match.group(1))
    return f"{stripped}=={version}" if version else stripped


def read_requirements_file(path: str | Path) -> list[str]:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"requirements file {file} does not exist")
    lines = []
    for raw in file.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def resolve(
    packages: Iterable[str],
    requirements_txt_file: str | Path | None = None,
    lock: bool = True,
) -> list[str]:
    """Requirement lines from ``packages`` and a requirements file, each pinned if ``lock``."""
    lines = list(packages)
    if requirements_txt_file:
        lines += read_requirements_file(requirements_txt_file)
    seen, out = set(), []
    for line in lines:
        pinned = pin(line) if lock else line.strip()
        if pinned not in seen:
            seen.add(pinned)
            out.append(pinned)
    return out
