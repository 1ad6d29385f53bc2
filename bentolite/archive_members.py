"""The members of an untrusted bundle archive (tar or zip), each checked before anything is written.

:func:`open_members` refuses absolute paths, ``..`` components, links that point outside the
bundle, device files, FIFOs and sockets, and archives that declare more than :class:`Limits`
allow: more members than ``max_members``, more bytes than ``max_bytes``, or more bytes than the
store's disk has free. Declared sizes are checked while the member list is read, before the
next member's data is even skipped, so a small archive declaring a huge member costs nothing.
:func:`copy_member` then counts the real bytes while it extracts, so a member producing more
than it declared is refused too.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import stat
import struct
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Callable

import attrs

from bentolite.exceptions import BundleError, ConfigError

#: environment variables overriding :class:`Limits`' defaults
MAX_BYTES_ENV = "BENTOLITE_IMPORT_MAX_BYTES"
MAX_MEMBERS_ENV = "BENTOLITE_IMPORT_MAX_MEMBERS"
#: space left free on the store's disk after an import, beyond what the archive declares
FREE_SPACE_MARGIN = 64 << 20

_SIZE_RE = re.compile(r"\A\s*(\d+)\s*([KMGT]i?B?|B)?\s*\Z", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_CHUNK = 1 << 20


def parse_size(text: str, source: str) -> int:
    """``"2GiB"``, ``"512M"``, ``"1000"`` -> bytes (binary units)."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ConfigError(f"{source}={text!r}: expected a size such as 10GiB, 512MiB or 1000000")
    unit = (match[2] or "").upper()[:1] if (match[2] or "").upper() != "B" else ""
    return int(match[1]) * _UNITS[unit]


def human(size: int) -> str:
    """``2147483648`` -> ``"2.0 GiB"``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@attrs.frozen
class Limits:
    """What an imported archive may declare at most."""

    max_bytes: int = 64 << 30
    max_members: int = 100_000

    @classmethod
    def from_environment(cls) -> Limits:
        """The defaults, with ``BENTOLITE_IMPORT_MAX_BYTES``/``_MAX_MEMBERS`` on top."""
        limits = cls()
        size = os.environ.get(MAX_BYTES_ENV)
        count = os.environ.get(MAX_MEMBERS_ENV)
        if size:
            limits = attrs.evolve(limits, max_bytes=parse_size(size, MAX_BYTES_ENV))
        if count:
            if not count.strip().isdigit():
                raise ConfigError(f"{MAX_MEMBERS_ENV}={count!r}: expected a whole number")
            limits = attrs.evolve(limits, max_members=int(count))
        return limits


@attrs.frozen
class Member:
    """One archive member, checked: a relative path inside the bundle and what to create there."""

    name: str
    kind: str  # "dir", "file", "symlink" or "hardlink"
    executable: bool = False
    link: str = ""  # symlink: the target as written; hardlink: the member it repeats
    size: int = 0  # file: the size the archive declares
    open: Callable[[], IO[bytes]] | None = attrs.field(default=None, eq=False, repr=False)


class _Budget:
    """Adds up what an archive declares, refusing it as soon as it declares too much."""

    def __init__(self, archive: Path, limits: Limits, free_bytes: int) -> None:
        self.archive, self.limits, self.free_bytes = archive, limits, free_bytes
        self.members = 0
        self.bytes = 0

    def check_count(self, count: int) -> None:
        if count > self.limits.max_members:
            raise BundleError(
                f"refusing to import {self.archive.name}: it declares {count} members, more than "
                f"{self.limits.max_members} (raise {MAX_MEMBERS_ENV} to allow more)"
            )

    def add(self, raw_name: str, size: int = 0, member: bool = True) -> None:
        self.members += member
        if self.members > self.limits.max_members:
            raise BundleError(
                f"refusing to import {self.archive.name}: it has more than "
                f"{self.limits.max_members} members (raise {MAX_MEMBERS_ENV} to allow more)"
            )
        self.bytes += max(size, 0)
        if self.bytes > self.limits.max_bytes:
            raise BundleError(
                f"refusing to import {self.archive.name}: its members declare more than "
                f"{human(self.limits.max_bytes)} (member {raw_name!r} declares {human(size)}; "
                f"raise {MAX_BYTES_ENV} to allow more)"
            )
        if self.bytes + FREE_SPACE_MARGIN > self.free_bytes:
            raise BundleError(
                f"refusing to import {self.archive.name}: it declares {human(self.bytes)} so far "
                f"(member {raw_name!r}: {human(size)}), more than the {human(self.free_bytes)} "
                "free where the store is"
            )


@contextlib.contextmanager
def open_members(archive: Path, store_root: Path, limits: Limits | None = None) -> Iterator[list[Member]]:
    """The checked members of a tar or zip archive (a hostile one is refused before any write).

    ``store_root`` is where the members will be written: its free space bounds what they may
    declare.
    """
    limits = limits or Limits.from_environment()
    probe = store_root
    while not probe.exists():
        probe = probe.parent
    budget = _Budget(archive, limits, shutil.disk_usage(probe).free)
    handle: tarfile.TarFile | zipfile.ZipFile
    try:
        # By the leading magic number: zipfile.is_zipfile() also says yes to a plain tar that
        # merely holds a zip (the bundle's wheel) near its end.
        with open(archive, "rb") as f:
            is_zip = f.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
        if is_zip:
            # zipfile reads the whole central directory at once: check its count first.
            budget.check_count(_zip_declared_count(archive))
            handle = zipfile.ZipFile(archive)
            read: Callable[[], list[Member]] = lambda: _zip_members(handle, archive, budget)  # noqa: E731
        else:
            handle = tarfile.open(archive, "r:*")
            read = lambda: _tar_members(handle, archive, budget)  # noqa: E731
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise BundleError(f"{archive} is not a readable tar or zip archive: {exc}") from exc
    with handle:
        try:
            members = read()
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
            raise BundleError(f"{archive} is not a readable tar or zip archive: {exc}") from exc
        yield members


def copy_member(member: Member, path: Path, budget: list[int]) -> None:
    """Write a file member to ``path``, counting its real bytes: more than it declared, or more
    than ``budget[0]`` (what the whole archive declared, less what is written), is refused."""
    assert member.open is not None
    written = 0
    with member.open() as source, open(path, "wb") as sink:
        while True:
            chunk = source.read(_CHUNK)
            if not chunk:
                break
            written += len(chunk)
            if written > member.size or written > budget[0]:
                raise BundleError(
                    f"refusing to import: member {member.name!r} holds more than the "
                    f"{human(member.size)} it declares"
                )
            sink.write(chunk)
    budget[0] -= written


def _zip_declared_count(archive: Path) -> int:
    """The member count a zip's end-of-central-directory record declares (0 if none is found;
    zipfile then reports the damage)."""
    with open(archive, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - (22 + 0xFFFF)))  # the record, after at most a 64 KiB comment
        tail = f.read()
        end = tail.rfind(b"PK\x05\x06")
        if end < 0 or len(tail) < end + 22:
            return 0
        count = struct.unpack_from("<H", tail, end + 10)[0]
        locator = end - 20
        if count == 0xFFFF and locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
            offset = struct.unpack_from("<Q", tail, locator + 8)[0]
            f.seek(offset)
            record = f.read(40)
            if len(record) == 40 and record[:4] == b"PK\x06\x06":
                count = struct.unpack_from("<Q", record, 32)[0]
        return count


def _refuse(archive: Path, member: str, reason: str) -> BundleError:
    return BundleError(f"refusing to import {archive.name}: member {member!r} {reason}")


def _checked_name(archive: Path, raw: str) -> str:
    """A member name as a normalised relative POSIX path ("" for the archive root)."""
    if "\x00" in raw:
        raise _refuse(archive, raw, "has a NUL byte in its name")
    name = raw.replace("\\", "/")
    if name.startswith("/") or re.match(r"\A[A-Za-z]:", name):
        raise _refuse(archive, raw, "has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(archive, raw, "has a '..' path component")
    return "/".join(parts)


def _checked_symlink(archive: Path, name: str, target: str) -> str:
    if not target or target.startswith("/") or re.match(r"\A[A-Za-z]:", target) or "\\" in target:
        raise _refuse(archive, name, f"is a link pointing outside the bundle ({target!r})")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if resolved == ".." or resolved.startswith("../"):
        raise _refuse(archive, name, f"is a link pointing outside the bundle ({target!r})")
    return target


def _tar_members(tar: tarfile.TarFile, archive: Path, budget: _Budget) -> list[Member]:
    members: list[Member] = []
    files: set[str] = set()
    # Iterating reads one header at a time: a member declaring too much is refused before the
    # archive's reader skips (decompresses) its data to find the next header.
    for info in tar:
        budget.add(info.name, info.size if info.isreg() else 0)
        name = _checked_name(archive, info.name)
        if info.isdir():
            members.append(Member(name, "dir"))
        elif info.isreg():
            if not name:
                raise _refuse(archive, info.name, "is a file with no name")
            files.add(name)
            members.append(
                Member(
                    name,
                    "file",
                    executable=bool(info.mode & 0o111),
                    size=info.size,
                    open=lambda info=info: tar.extractfile(info),  # type: ignore[misc]
                )
            )
        elif info.issym():
            members.append(Member(name, "symlink", link=_checked_symlink(archive, name, info.linkname)))
        elif info.islnk():
            target = _checked_name(archive, info.linkname)
            if target not in files:
                raise _refuse(
                    archive,
                    info.name,
                    f"is a hard link to {info.linkname!r}, which is not a file in the bundle",
                )
            target_size = next(m.size for m in reversed(members) if m.name == target and m.kind == "file")
            budget.add(info.name, target_size, member=False)  # written out as a copy
            members.append(Member(name, "hardlink", link=target))
        else:
            raise _refuse(archive, info.name, "is a device file, FIFO or other special file")
    return members


def _zip_members(zf: zipfile.ZipFile, archive: Path, budget: _Budget) -> list[Member]:
    members: list[Member] = []
    for info in zf.infolist():
        budget.add(info.filename, info.file_size)
        name = _checked_name(archive, info.filename)
        mode = info.external_attr >> 16
        file_type = stat.S_IFMT(mode)
        if stat.S_ISLNK(mode):
            if info.file_size > 4096:
                raise _refuse(archive, info.filename, "is a link with an over-long target")
            target = zf.read(info).decode("utf-8", errors="replace")
            members.append(Member(name, "symlink", link=_checked_symlink(archive, name, target)))
        elif file_type and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise _refuse(archive, info.filename, "is a device file, FIFO or other special file")
        elif info.is_dir():
            members.append(Member(name, "dir"))
        else:
            members.append(
                Member(
                    name,
                    "file",
                    executable=bool(mode & 0o111),
                    size=info.file_size,
                    open=lambda info=info: zf.open(info),  # type: ignore[misc]
                )
            )
    return members


def declared_bytes(members: Iterable[Member]) -> int:
    """What the file members declare, hard links counted as the copies they become."""
    sizes = {m.name: m.size for m in members if m.kind == "file"}
    return sum(m.size for m in members if m.kind == "file") + sum(
        sizes.get(m.link, 0) for m in members if m.kind == "hardlink"
    )
