"""The bundle's lock: every distribution its service needs at run time, at exact versions.

The versions are read from the distributions installed where the bundle is saved
(``importlib.metadata``): the service's requirements and bentolite's own run-time dependencies,
followed through each installed distribution's ``Requires-Dist`` (markers evaluated for this
Python, extras honoured). Those are the versions that pickled the artifacts, so the image gets
them and nothing newer. Reading metadata takes milliseconds and needs no network; resolving
again against an index (``uv pip compile``, ``pip install --dry-run --report``) would pick the
index's newest versions instead, unless given these very pins.

Hashes come from the index, through ``uv pip compile --no-deps --generate-hashes`` over the
exact pins (one call, every file of each version, so the image's platform finds its own). When
uv is missing or the index does not answer, the lock has versions only and a warning says so;
``pip`` then installs without hash checking.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata

import attrs
from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from bentolite.requirements import Line, installed_distributions

logger = logging.getLogger(__name__)

HEADER = (
    "# Every distribution the service needs at run time, at the versions installed where the\n"
    "# bundle was saved (written by bentolite; images install exactly these, with --no-deps).\n"
)
#: seconds the index may take to give the hashes before the lock goes without them
HASH_TIMEOUT = 60.0
#: never locked: installed from the bundle's own wheel
SELF = "bentolite"


@attrs.frozen
class Pin:
    """One locked distribution: ``name==version``, its hashes and what needs it."""

    name: str
    version: str
    via: tuple[str, ...] = ()
    hashes: tuple[str, ...] = ()
    url: str | None = None

    @property
    def requirement(self) -> str:
        return f"{self.name} @ {self.url}" if self.url else f"{self.name}=={self.version}"

    def render(self) -> str:
        lines = [self.requirement]
        lines += [f"--hash={h}" for h in self.hashes]
        text = " \\\n    ".join(lines)
        if self.via:
            text += f"\n    # via {', '.join(self.via)}"
        return text


@attrs.frozen
class Lock:
    """The locked distributions (sorted by name), the pip options and what could not be pinned."""

    pins: tuple[Pin, ...]
    options: tuple[str, ...] = ()
    unpinned: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Whether every requirement is pinned, so installing with ``--no-deps`` is safe."""
        return not self.unpinned

    @property
    def hashed(self) -> bool:
        return bool(self.pins) and all(p.hashes for p in self.pins)

    def render(self) -> str:
        body = [*self.options, *self.unpinned, *(p.render() for p in self.pins)]
        return HEADER + "".join(f"{line}\n" for line in body)

    def versions(self) -> dict[str, str]:
        return {p.name: p.version for p in self.pins}


def _evaluate(requirement: Requirement, extras: Iterable[str]) -> bool:
    if requirement.marker is None:
        return True
    environment = default_environment()
    return any(requirement.marker.evaluate({**environment, "extra": e}) for e in ("", *extras))


def _direct_url(dist: metadata.Distribution) -> str | None:
    """The URL a distribution was installed from when it came from a VCS or an archive URL."""
    import json

    text = dist.read_text("direct_url.json")
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    url = str(data.get("url", ""))
    if "vcs_info" in data:
        info = data["vcs_info"]
        return f"{info.get('vcs', 'git')}+{url}@{info.get('commit_id', '')}"
    if url.startswith(("http://", "https://")):
        return url
    return None  # a local file or folder: the image takes the version from the index


def closure(
    roots: Sequence[Requirement],
    self_roots: Sequence[Requirement] = (),
    *,
    exclude: Iterable[str] = (SELF,),
) -> tuple[list[Pin], list[str]]:
    """The installed distributions ``roots`` (and bentolite's ``self_roots``) need, transitively:
    (pins sorted by name, names of requirements that are not installed)."""
    installed = installed_distributions()
    skip = {canonicalize_name(n) for n in exclude}
    via: dict[str, list[str]] = {}
    walked: set[tuple[str, frozenset[str]]] = set()
    missing: list[str] = []
    queue: list[tuple[Requirement, str]] = [(r, "") for r in roots]
    queue += [(r, SELF) for r in self_roots]
    while queue:
        requirement, parent = queue.pop(0)
        name = canonicalize_name(requirement.name)
        if name in skip:
            continue
        dist = installed.get(name)
        if dist is None:
            if name not in missing:
                missing.append(name)
            continue
        if parent and parent not in via.setdefault(name, []):
            via[name].append(parent)
        via.setdefault(name, [])
        key = (name, frozenset(requirement.extras))
        if key in walked:
            continue
        walked.add(key)
        for text in dist.requires or []:
            try:
                child = Requirement(text)
            except InvalidRequirement:
                logger.warning("%s declares an unreadable requirement %r; not locked", name, text)
                continue
            if _evaluate(child, requirement.extras):
                queue.append((child, name))
    pins = [
        Pin(name, installed[name].version, tuple(sorted(parents)), url=_direct_url(installed[name]))
        for name, parents in sorted(via.items())
    ]
    return pins, missing


def self_requirements() -> list[Requirement]:
    """bentolite's own run-time requirements, as the bundled wheel declares them."""
    from bentolite.self_wheel import runtime_requirements

    return [Requirement(r) for r in runtime_requirements()]


def lock(
    lines: Sequence[Line],
    *,
    python_version: str | None = None,
    index_url: str | None = None,
    extra_index_urls: Sequence[str] = (),
    hashes: bool = True,
) -> Lock:
    """The lock of a service whose requirement lines (:func:`bentolite.requirements.resolve_lines`)
    are ``lines``; ``python_version`` is the image's (for the index's hashes)."""
    options = tuple(line.text for line in lines if line.is_option)
    environment = {**default_environment(), "extra": ""}
    roots: list[Requirement] = []
    unpinned: list[str] = []
    for line in lines:
        if line.is_option:
            continue
        requirement = line.requirement
        if requirement is None:
            unpinned.append(line.text)  # a bare URL: pip resolves it in the image
            continue
        if requirement.marker and not requirement.marker.evaluate(environment):
            unpinned.append(line.text)  # not needed on this Python; left to the image's pip
            continue
        roots.append(requirement)
    pins, missing = closure(roots, self_requirements())
    declared = {canonicalize_name(r.name): str(r) for r in roots}
    unpinned += [declared.get(name, name) for name in missing]
    if hashes and pins and not unpinned:
        found = index_hashes(
            tuple(p.requirement for p in pins if not p.url),
            python_version=python_version,
            index_url=index_url,
            extra_index_urls=tuple(extra_index_urls),
        )
        if found is not None and all(p.name in found for p in pins if not p.url):
            pins = [attrs.evolve(p, hashes=tuple(found.get(p.name, ()))) for p in pins]
            if any(p.url for p in pins):
                pins = [attrs.evolve(p, hashes=()) for p in pins]  # pip hashes all or none
    return Lock(tuple(pins), options, tuple(unpinned))


def _uv() -> str | None:
    try:
        from uv import find_uv_bin
    except ImportError:
        return shutil.which("uv")
    try:
        return find_uv_bin()
    except FileNotFoundError:
        return shutil.which("uv")


@functools.lru_cache(maxsize=32)
def index_hashes(
    pins: tuple[str, ...],
    *,
    python_version: str | None = None,
    index_url: str | None = None,
    extra_index_urls: tuple[str, ...] = (),
) -> dict[str, list[str]] | None:
    """``{name: ["sha256:...", ...]}`` for exact ``pins`` from the package index, or None (with a
    warning) when uv is not installed or the index cannot say."""
    uv = _uv()
    if uv is None:
        logger.warning("the lock has no hashes: uv is not installed (pip install uv)")
        return None
    command = [uv, "pip", "compile", "-", "--no-deps", "--generate-hashes", "--no-header"]
    command += ["--no-annotate", "--quiet", "--no-config", "--no-progress"]
    if python_version:
        command += ["--python-version", ".".join(python_version.split(".")[:2])]
    # pip expands ${VARIABLE} in requirements files; give uv the same URLs
    if index_url:
        command += ["--index-url", os.path.expandvars(index_url)]
    for url in extra_index_urls:
        command += ["--extra-index-url", os.path.expandvars(url)]
    environment = {**os.environ, "UV_HTTP_TIMEOUT": str(int(HASH_TIMEOUT))}
    try:
        done = subprocess.run(
            command,
            input="\n".join(pins) + "\n",
            capture_output=True,
            text=True,
            timeout=HASH_TIMEOUT,
            env=environment,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("the lock has no hashes: the package index did not answer (%s)", exc)
        return None
    if done.returncode != 0:
        reason = next((x for x in done.stderr.splitlines() if x.strip()), f"exit code {done.returncode}")
        logger.warning("the lock has no hashes: uv pip compile failed: %s", reason.strip())
        return None
    return parse_hashes(done.stdout)


def parse_hashes(text: str) -> dict[str, list[str]]:
    """``{name: hashes}`` from requirements text with ``--hash`` options."""
    found: dict[str, list[str]] = {}
    for entry in logical_lines(text):
        head = entry.split(" --hash", 1)[0].strip()
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)", head)
        if match and "==" in head:
            found[canonicalize_name(match.group(1))] = re.findall(r"--hash[= ](\S+)", entry)
    return found


def logical_lines(text: str) -> list[str]:
    """Requirements text as logical lines: continuations joined, comments and blanks dropped."""
    out, current = [], ""
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current = (current + line).strip()
        if current:
            out.append(" ".join(current.split()))
        current = ""
    if current.strip():
        out.append(" ".join(current.split()))
    return out


def read_pins(text: str) -> dict[str, str]:
    """``{name: version}`` of the ``name==version`` lines of requirements text (a lock, or
    ``pip freeze`` output)."""
    pins = {}
    for entry in logical_lines(text):
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)(\[[^\]]*\])?\s*==\s*([^\s;]+)", entry)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(3)
    return pins


def runtime_versions(names: Iterable[str] = ("cloudpickle", "numpy")) -> Mapping[str, str]:
    """Installed versions of the packages whose major version decides whether pickles load."""
    installed = installed_distributions()
    return {n: installed[n].version for n in names if n in installed}


__all__ = ["Lock", "Pin", "closure", "index_hashes", "lock", "read_pins", "runtime_versions"]
