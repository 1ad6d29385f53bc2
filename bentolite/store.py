"""The local store of saved bundles: ``$BENTOLITE_HOME/bundles/<Name>/<version>``.

``BENTOLITE_HOME`` defaults to ``~/bentolite``. A tag is ``Name:version``; ``Name:latest`` and a
bare ``Name`` mean the newest bundle of that name (by creation time).

Saves and imports write into a hidden staging folder (``.tmp-<owner>-...``) next to their
destination and rename it into place. The folder's name records its owner (process id and
start time), so a folder whose owner died mid-write (killed, power cut) is recognised as stale
and removed by the next save or import; listings never show staging folders.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import shutil
import time
from pathlib import Path

import attrs

from bentolite.bundle_meta import META_FILE, BundleMeta
from bentolite.exceptions import BundleError, InvalidArgument, NotFound

NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")
VERSION_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")
#: prefix of the temporary directories that make saves and imports atomic
TEMP_PREFIX = ".tmp-"
#: ``.tmp-p<pid>.<start>-...``: the owner of a staging folder, as recorded in its name
_OWNER_RE = re.compile(r"\A\.tmp-p(?P<pid>\d+)\.(?P<start>\d+)-")
#: staging folders without a recorded owner (written by older versions) are stale after this
_UNOWNED_STALE_SECONDS = 3600.0


def home() -> Path:
    """The store's root directory."""
    return Path(os.environ.get("BENTOLITE_HOME") or "~/bentolite").expanduser()


def bundles_root() -> Path:
    return home() / "bundles"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidArgument(
            f"bundle name {name!r} is not valid: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit"
        )
    return name


def check_version(version: str) -> str:
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise InvalidArgument(
            f"version {version!r} is not valid: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit"
        )
    return version


def bundle_dir(name: str, version: str) -> Path:
    return bundles_root() / check_name(name) / check_version(version)


# --- staging folders ------------------------------------------------------------------------------


def _start_time(pid: int) -> int:
    """When process ``pid`` started, in clock ticks since boot (0 where /proc does not say), so
    a process id reused by a later process is not taken for the owner."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[19])  # field 22 of stat(5), counted after the command name
    except (OSError, IndexError, ValueError):
        return 0


def _alive(pid: int, start: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    return not (start and _start_time(pid) not in (0, start))


def staging_path(parent: Path, label: str) -> Path:
    """A fresh staging folder name in ``parent`` (not created), recording this process as owner."""
    pid = os.getpid()
    return Path(parent) / f"{TEMP_PREFIX}p{pid}.{_start_time(pid)}-{label}-{secrets.token_hex(4)}"


def is_stale(staging: Path, unowned: bool = True) -> bool:
    """Whether a staging folder's owner is gone. One naming no owner is stale when it is old,
    if ``unowned`` allows (inside the store, where only bentolite writes such names)."""
    match = _OWNER_RE.match(staging.name)
    if match is None:
        if not unowned:
            return False
        try:
            return time.time() - staging.lstat().st_mtime > _UNOWNED_STALE_SECONDS
        except FileNotFoundError:
            return False
    return not _alive(int(match["pid"]), int(match["start"]))


def remove_stale_staging(directory: Path | None = None) -> list[Path]:
    """Remove the stale staging folders in ``directory`` (default: every name folder of the
    store); returns what was removed. Folders of live writers are left alone, and outside the
    store so is every folder whose name records no owner."""
    if directory is not None:
        parents = [Path(directory)]
    else:
        root = bundles_root()
        parents = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    removed = []
    for parent in parents:
        try:
            entries = [p for p in parent.iterdir() if p.name.startswith(TEMP_PREFIX)]
        except FileNotFoundError:
            continue
        for entry in entries:
            if is_stale(entry, unowned=directory is None):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    # Name folders left empty stay: removing one could race with a writer about to stage in it.
    return removed


@attrs.frozen
class BundleInfo:
    """A bundle in the store, described by its ``bentolite.yaml``."""

    path: Path
    meta: BundleMeta

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def version(self) -> str:
        return self.meta.version

    @property
    def tag(self) -> str:
        return self.meta.tag

    @property
    def created_at(self) -> str:
        return self.meta.created_at

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def to_dict(self) -> dict[str, object]:
        """The stable, machine-readable description used by ``-o json``."""
        return {
            "tag": self.tag,
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at,
            "path": str(self.path),
            "size_bytes": self.size_bytes(),
            "apis": [
                {
                    "name": a.name,
                    "route": a.route,
                    "input": a.adapter.get("type"),
                    **({"clipper_input_type": a.clipper_input_type} if a.clipper_input_type else {}),
                }
                for a in self.meta.apis
            ],
            "labels": dict(self.meta.labels),
            "description": self.meta.description,
            "bentolite_version": self.meta.bentolite_version,
            "python_version": self.meta.python_version,
        }


def parse_tag(tag: str) -> tuple[str, str | None]:
    """``'Name:version'`` -> ``('Name', 'version')``; ``'Name'`` or ``'Name:latest'`` -> ``(Name, None)``."""
    name, sep, version = tag.partition(":")
    check_name(name)
    if not sep or version == "latest":
        return name, None
    return name, check_version(version)


def list_bundles(name: str | None = None) -> list[BundleInfo]:
    """Bundles in the store (of one name, if given), oldest first within each name."""
    root = bundles_root()
    if name is not None:
        names = [root / check_name(name)]
    else:
        names = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    found = []
    for name_dir in names:
        if name_dir.name.startswith(TEMP_PREFIX):
            continue
        if not name_dir.is_dir():
            continue
        for version_dir in name_dir.iterdir():
            if version_dir.name.startswith(TEMP_PREFIX) or not (version_dir / META_FILE).is_file():
                continue
            try:
                found.append(BundleInfo(version_dir, BundleMeta.read(version_dir)))
            except BundleError:
                continue  # a damaged bundle must not hide the others; `get` reports it
    return sorted(found, key=lambda b: (b.name, b.created_at, b.version))


def latest(name: str) -> BundleInfo:
    bundles = list_bundles(name)
    if not bundles:
        raise NotFound(f"no bundle named {name!r} in the store ({bundles_root()})")
    return bundles[-1]


def get(tag: str) -> BundleInfo:
    """The bundle a tag names."""
    name, version = parse_tag(tag)
    if version is None:
        return latest(name)
    path = bundle_dir(name, version)
    if not (path / META_FILE).is_file():
        raise NotFound(f"no bundle {name}:{version} in the store ({bundles_root()})")
    return BundleInfo(path, BundleMeta.read(path))


# --- bundles being served -------------------------------------------------------------------------


def _serving_dir() -> Path:
    return home() / "serving"


def mark_serving(bundle_path: Path | None) -> Path | None:
    """Record, until this process exits, that it serves the bundle at ``bundle_path`` (a service
    not loaded from a bundle records nothing). ``bentolite delete`` asks before removing a bundle
    a live process has marked; a marker whose process died is ignored and removed."""
    if bundle_path is None:
        return None
    directory = _serving_dir()
    directory.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    marker = directory / f"{pid}.{_start_time(pid)}.{secrets.token_hex(4)}"
    marker.write_text(str(Path(bundle_path).resolve()), encoding="utf-8")
    atexit.register(marker.unlink, missing_ok=True)
    return marker


def servers_of(bundle_path: Path) -> list[int]:
    """Process ids of the live processes that marked the bundle at ``bundle_path`` as served."""
    directory = _serving_dir()
    if not directory.is_dir():
        return []
    wanted = str(Path(bundle_path).resolve())
    pids = []
    for marker in directory.iterdir():
        pid_text, _, rest = marker.name.partition(".")
        start_text = rest.partition(".")[0]
        if not (pid_text.isdigit() and start_text.isdigit()):
            continue
        if not _alive(int(pid_text), int(start_text)):
            marker.unlink(missing_ok=True)
            continue
        try:
            served = marker.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue  # its server just exited
        if served == wanted:
            pids.append(int(pid_text))
    return sorted(set(pids))


def delete(tag: str) -> BundleInfo:
    """Remove the bundle a tag names; returns what was removed."""
    info = get(tag)
    shutil.rmtree(info.path)
    try:
        info.path.parent.rmdir()
    except OSError:
        pass  # other versions remain
    return info


def resolve(path_or_tag: str | os.PathLike[str]) -> Path:
    """A bundle directory from a path to one, or from a tag in the store."""
    path = Path(path_or_tag)
    if (path / META_FILE).is_file():
        return path.resolve()
    text = str(path_or_tag)
    if os.sep in text or text.startswith("."):
        raise NotFound(f"{text} is not a bundle directory ({META_FILE} not found)")
    return get(text).path
