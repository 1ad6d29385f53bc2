"""``EnvSpec``: what a bundle needs from its environment (Python and system packages, the Python
version, a base image, a setup script), as ``@env`` records it on a service class and a
bentofile's ``env`` section gives it; checked when it is made."""

from __future__ import annotations

import re
import sys
from typing import Any, Callable

import attrs

from bentolite.exceptions import InvalidArgument
from bentolite.requirements import is_requirement

#: a Python version a bundle can ask for: "3.11" or "3.11.7"
PYTHON_VERSION_RE = re.compile(r"^3\.\d+(\.\d+)?$")


def _strings(field: str) -> Callable[[Any], tuple[str, ...]]:
    def convert(value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        items = tuple(value)
        for item in items:
            if not isinstance(item, str) or not item.strip():
                raise InvalidArgument(f"@env({field}=...) must be a list of strings, got {item!r}")
        return items

    return convert


def _python_version(value: Any) -> str:
    if value is None:
        return f"{sys.version_info.major}.{sys.version_info.minor}"
    text = str(value)
    if not PYTHON_VERSION_RE.match(text):
        raise InvalidArgument(f"@env(python_version={value!r}) must look like '3.11'")
    return text


@attrs.frozen
class EnvSpec:
    """What a bundle needs from its environment: Python packages, system packages, base image."""

    pip_packages: tuple[str, ...] = attrs.field(default=(), converter=_strings("pip_packages"))
    requirements_txt_file: str | None = None
    python_version: str = attrs.field(default=None, converter=_python_version)
    docker_base_image: str | None = None
    system_packages: tuple[str, ...] = attrs.field(default=(), converter=_strings("system_packages"))
    setup_sh: str | None = None

    def __attrs_post_init__(self) -> None:
        for item in self.pip_packages:
            if not (is_requirement(item.strip()) or item.startswith("-")):
                raise InvalidArgument(f"@env(pip_packages=...): {item!r} is not a requirement")

    def to_dict(self) -> dict[str, Any]:
        return {
            "pip_packages": list(self.pip_packages),
            "requirements_txt_file": self.requirements_txt_file,
            "python_version": self.python_version,
            "docker_base_image": self.docker_base_image,
            "system_packages": list(self.system_packages),
            "setup_sh": self.setup_sh,
        }
