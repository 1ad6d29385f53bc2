"""The rules a ``bentofile.yaml`` value must follow: one validator per kind of value, shared by
the reader (which adds the file and line) and direct construction of
:class:`~bentolite.bentofile.BuildConfig`, plus the converters its fields use."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Any

import attrs
import pathspec

from bentolite import store
from bentolite.env_spec import PYTHON_VERSION_RE
from bentolite.exceptions import ConfigError, InvalidArgument
from bentolite.requirements import is_requirement
from bentolite.requirements import parse as parse_requirement

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_SERVICE_RE = re.compile(rf"\A(?P<module>[^:\s]+):(?P<attr>{_IDENTIFIER}(\.{_IDENTIFIER})*)\Z")
_MODULE_RE = re.compile(rf"\A{_IDENTIFIER}(\.{_IDENTIFIER})*\Z")
_ENV_VAR_RE = re.compile(rf"\A{_IDENTIFIER}\Z")
_LABEL_KEY_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.\-/]*\Z")
# Debian package names, optionally with "=version" or ":arch"; no shell metacharacters.
_SYSTEM_PACKAGE_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9+.\-:=~]*\Z")
_URL_RE = re.compile(r"\A(https?|file)://\S+\Z")
# a browser's Origin header: scheme://host[:port], nothing after it
_ORIGIN_RE = re.compile(r"\A[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@]+\Z")


def did_you_mean(word: str, choices: Iterable[str], prefix: str = "") -> str:
    """``"; did you mean 'labels'?"`` for the closest choice (shown after ``prefix``), or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {prefix + close[0]!r}?" if close else ""


class _FieldError(ConfigError):
    """An invalid value found by a validator; the reader adds the file and line.

    ``key`` is the field name, optionally followed by ``[index]`` or ``.key`` of the bad item.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.reason = message


# --- validators (one rule per kind of value, shared by the reader and direct construction) ------


def _relative_path(key: str, value: str, what: str) -> None:
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or re.match(r"^[A-Za-z]:", value):
        raise _FieldError(key, f"{what} {value!r} must be relative to the build directory")
    if ".." in path.parts:
        raise _FieldError(key, f"{what} {value!r} must stay inside the build directory (no '..')")


def _check_service(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    match = _SERVICE_RE.match(value) if isinstance(value, str) else None
    if not match:
        raise _FieldError(
            "service",
            f"expected 'path/to/module.py:attr' or 'package.module:attr', got {value!r}",
        )
    module = match.group("module")
    if module.endswith(".py"):
        _relative_path("service", module, "module file")
        parts = PurePosixPath(module.replace("\\", "/")).with_suffix("").parts
        if not all(re.match(rf"\A{_IDENTIFIER}\Z", part) for part in parts):
            raise _FieldError(
                "service", f"{module!r}: each folder name and the file stem must be a Python identifier"
            )
    elif not _MODULE_RE.match(module):
        raise _FieldError(
            "service", f"{module!r} is neither a .py file nor a dotted module name such as 'pkg.service'"
        )


def _check_name(instance: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not store.NAME_RE.match(value):
        raise _FieldError(
            "name", f"{value!r} is not a valid bundle name: use letters, digits, '_', '.' and '-'"
        )


def _check_version(instance: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not store.VERSION_RE.match(value):
        raise _FieldError(
            "version", f"{value!r} is not a valid version: use letters, digits, '_', '.' and '-'"
        )


def _check_labels(instance: Any, attribute: attrs.Attribute, value: Mapping[str, str]) -> None:
    for key in value:
        if not _LABEL_KEY_RE.match(key):
            raise _FieldError(
                f"labels.{key}",
                "label keys use letters, digits, '_', '.', '-' and '/', starting with a letter or digit",
            )


def _check_patterns(instance: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    for i, pattern in enumerate(value):
        key = f"{attribute.name}[{i}]"
        body = pattern.strip()[1:] if pattern.strip().startswith("!") else pattern
        if not body.strip():
            raise _FieldError(key, "a pattern cannot be empty")
        _relative_path(key, body, "pattern")
        try:
            pathspec.GitIgnoreSpec.from_lines([pattern])
        except (ValueError, re.error) as exc:
            raise _FieldError(key, f"{pattern!r} is not a valid pattern ({exc})") from None


def _check_artifacts(instance: Any, attribute: attrs.Attribute, value: Mapping[str, str]) -> None:
    for name, path in value.items():
        if not re.match(rf"\A{_IDENTIFIER}\Z", name):
            raise _FieldError(f"artifacts.{name}", "an artifact name is a Python identifier such as 'model'")
        if not path.strip():
            raise _FieldError(f"artifacts.{name}", "give the path of the file to load")


def _check_copied(config: Any, names: tuple[str, ...]) -> None:
    for name in names:
        if name not in config.artifacts:
            raise _FieldError("artifacts", f"{name!r} is to be copied but names no file under artifacts:")


def _check_packages(instance: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    for i, package in enumerate(value):
        if not is_requirement(package):
            try:
                parse_requirement(package)
                reason = f"{package!r} is not a pip requirement such as 'scikit-learn>=1.0'"
            except InvalidArgument as exc:
                reason = str(exc)
            raise _FieldError(f"packages[{i}]", reason)


def _check_url(instance: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not _URL_RE.match(value):
        raise _FieldError(attribute.name, f"{value!r} is not an http(s):// or file:// URL")


def _check_urls(instance: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    for i, url in enumerate(value):
        if not _URL_RE.match(url):
            raise _FieldError(f"{attribute.name}[{i}]", f"{url!r} is not an http(s):// or file:// URL")


def _check_origins(instance: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    for i, origin in enumerate(value):
        if origin != "*" and not _ORIGIN_RE.match(origin):
            raise _FieldError(
                f"{attribute.name}[{i}]",
                f"{origin!r} is not an origin such as 'https://app.example.com' (no path), nor '*'",
            )


def _check_python_version(instance: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not PYTHON_VERSION_RE.match(value):
        raise _FieldError("python_version", f"{value!r} is not a Python version such as '3.11'")


def _check_base_image(instance: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and (not value.strip() or re.search(r"\s", value)):
        raise _FieldError("base_image", f"{value!r} is not an image reference such as 'python:3.11-slim'")


def _check_system_packages(instance: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    for i, package in enumerate(value):
        if not _SYSTEM_PACKAGE_RE.match(package):
            raise _FieldError(f"system_packages[{i}]", f"{package!r} is not a system package name")


def _check_env_vars(instance: Any, attribute: attrs.Attribute, value: Mapping[str, str]) -> None:
    for key in value:
        if not _ENV_VAR_RE.match(key):
            raise _FieldError(f"env.{key}", "an environment variable name uses letters, digits and '_'")


def _check_file_key(instance: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not value.strip():
        raise _FieldError(attribute.name, "give the path of a file")


def _strings(value: Iterable[str] | None) -> tuple[str, ...]:
    return tuple(value or ())


def _text_map(value: Mapping[str, str] | None) -> dict[str, str]:
    return dict(value or {})
