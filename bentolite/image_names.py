"""Names that must satisfy both Docker and Clipper: image names, model names and versions.

Clipper accepts a model name or version only if it matches ``[a-z0-9]([-a-z0-9]*[a-z0-9])?``
(lowercase letters, digits and '-', starting and ending with a letter or digit). Every such
string is also a valid Docker repository component and image tag, so bentolite converts bundle
names, API names and versions to that form wherever it makes one up.
"""

from __future__ import annotations

import re

from bentolite.exceptions import InvalidArgument

#: Clipper's rule for model names and versions (clipper_admin's ``deploy_regex_str``)
CLIPPER_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
#: a Docker image tag (the part after ':')
_DOCKER_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
#: one path component of a Docker repository name
_DOCKER_COMPONENT_RE = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*\Z")
#: a registry host with an optional port (``localhost:5000``, ``registry.example.com``)
_REGISTRY_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]+)?\Z")
_INVALID_RUN = re.compile(r"[^a-z0-9]+")

MAX_TAG_LENGTH = 128


def to_clipper_name(text: str, what: str = "name") -> str:
    """``text`` lowercased, every run of other characters turned into one '-', trimmed.

    ``'IrisClassifier'`` -> ``'irisclassifier'``, ``'predict_clipper'`` -> ``'predict-clipper'``,
    ``'1.0.20240101_AB12'`` -> ``'1-0-20240101-ab12'``. Raises :class:`InvalidArgument` (naming
    ``what``) when no letter or digit is left.
    """
    converted = _INVALID_RUN.sub("-", str(text).lower()).strip("-")
    if not converted:
        raise InvalidArgument(
            f"{what} {text!r} cannot be made a valid Clipper and Docker name: it needs at least "
            "one ASCII letter or digit (allowed: a-z, 0-9 and '-')"
        )
    return converted


def is_clipper_name(text: str) -> bool:
    return bool(CLIPPER_NAME_RE.match(text))


def default_image_name(bundle_name: str, version: str, target: str = "http", api: str | None = None) -> str:
    """``<name>:<version>`` for HTTP images, ``clipper-<name>-<api>:<version>`` for Clipper ones,
    every part converted by :func:`to_clipper_name`."""
    name = to_clipper_name(bundle_name, "bundle name")
    if target == "clipper":
        if not api:
            raise InvalidArgument("a Clipper image serves one API: give its name")
        name = f"clipper-{name}-{to_clipper_name(api, 'API name')}"
    tag = to_clipper_name(version, "version")[:MAX_TAG_LENGTH].rstrip("-")
    return f"{name}:{tag}"


def split_image_name(image: str) -> tuple[str, str | None]:
    """``'host:5000/a/b:v1'`` -> ``('host:5000/a/b', 'v1')``; no tag -> ``(image, None)``."""
    head, sep, last = image.rpartition("/")
    name, colon, tag = last.partition(":")
    repository = f"{head}{sep}{name}"
    return repository, (tag if colon else None)


def check_image_name(image: str) -> str:
    """Raise :class:`InvalidArgument` unless ``image`` is a valid ``[REGISTRY/]PATH[:TAG]``."""
    if "@" in image:
        raise InvalidArgument(f"image name {image!r}: a digest (@sha256:...) cannot be built; give a tag")
    repository, tag = split_image_name(image)
    parts = repository.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, parts = parts[0], parts[1:]
        if not _REGISTRY_RE.match(registry):
            raise InvalidArgument(f"image name {image!r}: {registry!r} is not a registry host[:port]")
    bad = [p for p in parts if not _DOCKER_COMPONENT_RE.match(p)]
    if bad or not parts:
        raise InvalidArgument(
            f"image name {image!r}: {bad[0] if bad else repository!r} is not a valid repository name "
            "(lowercase letters, digits, and '.', '_' or '-' between them)"
        )
    if tag is not None and not _DOCKER_TAG_RE.match(tag):
        raise InvalidArgument(
            f"image name {image!r}: tag {tag!r} is not valid (letters, digits, '_', '.' and '-', "
            f"at most {MAX_TAG_LENGTH} characters, not starting with '.' or '-')"
        )
    return image


def with_registry(image: str, registry: str | None) -> str:
    """``image`` under ``registry`` (``localhost:5000``, ``registry.example.com/team``)."""
    if not registry:
        return image
    return f"{registry.rstrip('/')}/{image}"
