"""A service's declared Python requirements: parsed (PEP 508), checked and pinned.

Requirement lines come from ``@env(pip_packages=...)``, the bentofile's ``python.packages`` and a
requirements file. Each is parsed with ``packaging``, so ``scikit-learn=1.0`` or ``numpy>=`` is an
error naming where it was written (``requirements.txt:3``), and names are compared normalised
(``scikit_learn`` and ``Scikit-Learn`` are one package). :func:`resolve` pins each line to the
version installed here, the one that pickled the artifacts; :mod:`bentolite.lock` then adds every
distribution those need.
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import attrs
from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from bentolite.exceptions import ConfigError, InvalidArgument

logger = logging.getLogger(__name__)

_REQUIREMENT_URL = re.compile(r"^(git\+|hg\+|svn\+|bzr\+|https?://|file:)\S+$")
#: pip options a requirements file may hold, passed on to the bundle's requirements file
PASSED_OPTIONS = frozenset(
    {
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "--trusted-host",
        "--pre",
        "--prefer-binary",
        "--only-binary",
        "--no-binary",
        "--no-index",
    }
)
_FLAG_OPTIONS = frozenset({"--pre", "--prefer-binary", "--no-index"})
_INCLUDE_OPTIONS = frozenset({"-r", "--requirement"})


def parse(line: str) -> Requirement:
    """``line`` as a PEP 508 requirement; :class:`InvalidArgument` saying why it is not one."""
    text = line.strip()
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0]
        if re.match(r"^[A-Za-z0-9][A-Za-z0-9._\-]*\s*=[^=]", text):
            reason = "'=' is not a version operator; write '==' to pin a version"
        message = f"{text!r} is not a pip requirement such as 'scikit-learn>=1.0' ({reason})"
        raise InvalidArgument(message) from None
    return requirement


def is_requirement(line: str) -> bool:
    """Whether ``line`` is a pip requirement: ``name[extras] <spec>; marker``, or a URL."""
    if _REQUIREMENT_URL.fullmatch(line.strip()):
        return True
    try:
        parse(line)
    except InvalidArgument:
        return False
    return True


def installed_version(name: str) -> str | None:
    """The installed version of the distribution ``name`` (any spelling), or None."""
    dist = installed_distributions().get(canonicalize_name(name))
    return dist.version if dist is not None else None


def installed_distributions() -> dict[str, metadata.Distribution]:
    """Installed distributions by normalised name; the first on ``sys.path`` wins, as for import."""
    found: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist)
    return found


def _module_owner(name: str) -> str | None:
    """The distribution that provides the importable module ``name`` (``sklearn`` ->
    ``scikit-learn``), for a hint when a requirement names a module instead of a package."""
    module = name.replace("-", "_")
    packages_distributions = getattr(metadata, "packages_distributions", None)  # Python 3.10+
    if packages_distributions is not None:
        owners = packages_distributions().get(module, [])
        return owners[0] if owners else None
    for dist in metadata.distributions():  # Python 3.9: read each top_level.txt
        if module in (dist.read_text("top_level.txt") or "").split():
            return dist.metadata["Name"]
    return None


@attrs.frozen
class Line:
    """One entry of a requirements list: a requirement or a pip option, and where it was written."""

    text: str
    where: str = ""
    requirement: Requirement | None = attrs.field(default=None, eq=False)

    @property
    def is_option(self) -> bool:
        return self.requirement is None and self.text.startswith("-")


def check_line(text: str, where: str) -> Line:
    """Parse one line; a :class:`ConfigError` starting with ``where`` (``file:line``) if invalid."""
    stripped = text.strip()
    prefix = f"{where}: " if where else ""
    if stripped.startswith("-"):
        option = stripped.split("=", 1)[0].split(None, 1)[0]
        if option not in PASSED_OPTIONS:
            hint = {
                "-e": "an editable install cannot go into a bundle; build a wheel and list it",
                "--editable": "an editable install cannot go into a bundle; build a wheel and list it",
                "-c": "constraints files are not supported; write the pins as requirements",
                "--constraint": "constraints files are not supported; write the pins as requirements",
            }.get(option, f"use requirements or one of {', '.join(sorted(PASSED_OPTIONS))}")
            raise ConfigError(f"{prefix}unsupported pip option {option!r}: {hint}")
        if option not in _FLAG_OPTIONS and len(shlex.split(stripped.replace("=", " ", 1))) < 2:
            raise ConfigError(f"{prefix}pip option {option!r} needs a value")
        return Line(stripped, where)
    if _REQUIREMENT_URL.fullmatch(stripped):
        return Line(stripped, where)
    try:
        requirement = parse(stripped)
    except InvalidArgument as exc:
        raise ConfigError(f"{prefix}{exc}") from None
    return Line(stripped, where, requirement)


def read_requirements_file(path: str | Path, _seen: frozenset[Path] = frozenset()) -> list[Line]:
    """The lines of a pip requirements file (``-r`` files included), each checked.

    A line that is neither a requirement nor a supported option is a :class:`ConfigError`
    naming the file and the line, so a file that is not a requirements file fails at once.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"requirements file {file} does not exist")
    if file.resolve() in _seen:
        raise ConfigError(f"requirements file {file} includes itself")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not a requirements file (not UTF-8 text: {exc.reason})") from None
    lines: list[Line] = []
    for start, line in _logical_lines(text):
        where = f"{file}:{start}"
        option, _, rest = line.partition(" ")
        if option in _INCLUDE_OPTIONS or option.startswith("--requirement="):
            target = rest.strip() or option.partition("=")[2]
            if not target:
                raise ConfigError(f"{where}: {option} needs the file to include")
            if not (file.parent / target).is_file():
                raise ConfigError(f"{where}: requirements file {target} does not exist")
            lines += read_requirements_file(file.parent / target, _seen | {file.resolve()})
            continue
        if " --hash" in f" {line}":
            line = re.sub(r"\s--hash[= ]\S+", "", f" {line}").strip()  # hashes come from the lock
        lines.append(check_line(line, where))
    return lines


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each logical line: comments dropped, continuations joined."""
    found: list[tuple[int, str]] = []
    logical, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        content = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not logical:
            start = number
        if content.endswith("\\"):
            logical += content[:-1] + " "
            continue
        logical += content
        if logical.strip():
            found.append((start, logical.strip()))
        logical = ""
    if logical.strip():
        found.append((start, logical.strip()))
    return found


def _pinned(line: Line) -> tuple[str, str | None]:
    """(line pinned to the installed version, or as written; a warning, or None)."""
    requirement = line.requirement
    assert requirement is not None
    name = canonicalize_name(requirement.name)
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    marker = f"; {requirement.marker}" if requirement.marker else ""
    if requirement.url:
        return f"{name}{extras} @ {requirement.url}{marker}", None
    if requirement.marker and not requirement.marker.evaluate({**default_environment(), "extra": ""}):
        return f"{name}{extras}{requirement.specifier}{marker}", None  # not for this Python
    version = installed_version(name)
    where = f" ({line.where})" if line.where else ""
    if version is None:
        owner = _module_owner(requirement.name)
        hint = (
            f"; the module {requirement.name} comes from {owner!r}: require that instead"
            if owner and canonicalize_name(owner) != name
            else ""
        )
        return str(requirement), (
            f"cannot pin {requirement.name!r}{where}: it is not installed here, so its version "
            f"and its dependencies are left to pip at image build time{hint}"
        )
    if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
        return str(requirement), (
            f"cannot pin {requirement.name!r}{where}: the installed {version} is outside "
            f"{requirement.specifier}, so the artifacts were made with another version"
        )
    return f"{name}{extras}=={version}{marker}", None


def resolve(
    packages: Iterable[str],
    requirements_txt_file: str | Path | None = None,
    lock: bool = True,
) -> list[str]:
    """Requirement lines from ``packages`` and a requirements file, each pinned if ``lock``.

    pip options come first. Requirements of one (normalised) name are merged into the first
    one. A requirement that cannot be pinned is kept as written, with a warning naming it.
    """
    return [line.text for line in resolve_lines(packages, requirements_txt_file, lock)]


def resolve_lines(
    packages: Iterable[str],
    requirements_txt_file: str | Path | None = None,
    lock: bool = True,
) -> list[Line]:
    """Like :func:`resolve`, keeping each line's parsed requirement (None for options)."""
    lines = [check_line(p, "") if not p.strip().startswith("-") else Line(p.strip()) for p in packages]
    if requirements_txt_file:
        lines += read_requirements_file(requirements_txt_file)
    options = list(dict.fromkeys(line.text for line in lines if line.requirement is None and line.is_option))
    seen: dict[str, int] = {}
    out: list[Line] = []
    for line in lines:
        if line.is_option:
            continue
        requirement = line.requirement
        if requirement is None:  # a URL without a name: nothing to merge or pin
            out.append(line)
            continue
        key = canonicalize_name(requirement.name)
        if key in seen:
            first = out[seen[key]]
            assert first.requirement is not None
            if str(first.requirement.specifier) != str(requirement.specifier):
                merged = _merge(first.requirement, requirement)
                out[seen[key]] = Line(str(merged), first.where, merged)
            continue
        seen[key] = len(out)
        out.append(line)
    result = [Line(text) for text in options]
    for line in out:
        if line.requirement is None or not lock:
            result.append(Line(_normalised(line), line.where, line.requirement))
            continue
        text, warning = _pinned(line)
        if warning:
            logger.warning(warning)
        result.append(Line(text, line.where, Requirement(text) if "@" not in text else line.requirement))
    return result


def _normalised(line: Line) -> str:
    requirement = line.requirement
    if requirement is None:
        return line.text
    name = canonicalize_name(requirement.name)
    return line.text if requirement.url else str(requirement).replace(requirement.name, name, 1)


def _merge(first: Requirement, second: Requirement) -> Requirement:
    merged = Requirement(str(first))
    merged.specifier = SpecifierSet(f"{first.specifier},{second.specifier}".strip(","))
    merged.extras = first.extras | second.extras
    return merged


__all__ = [
    "Line",
    "check_line",
    "installed_distributions",
    "installed_version",
    "is_requirement",
    "parse",
    "read_requirements_file",
    "resolve",
    "resolve_lines",
]
