"""Export a bundle to one archive file, and import an archive into the store.

Formats go by the file's extension on export: ``.bento`` and ``.tar.gz``/``.tgz`` are gzipped
tar, ``.tar`` plain tar, ``.zip`` zip. Import recognises the format from the content.

An archive is untrusted input. Import checks every member before it writes anything
(:mod:`bentolite.archive_members`: paths, links, special files, declared sizes and counts
against limits and free space) and counts the real bytes while it unpacks. It unpacks into a
``.tmp-`` folder inside the store and renames that into place, so a refused or failed import
leaves the store as it was; a tag already in the store is an error unless ``force`` replaces it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import attrs

from bentolite import store
from bentolite.archive_members import Member, copy_member, declared_bytes, open_members
from bentolite.bundle_meta import META_FILE, BundleMeta
from bentolite.exceptions import BentoliteError, BundleError, BundleExists, InvalidArgument

#: the largest ``bentolite.yaml`` import reads (a real one is a few kilobytes)
MAX_META_BYTES = 4 << 20
#: file name ending -> format
EXTENSIONS = {".bento": "tar.gz", ".tar.gz": "tar.gz", ".tgz": "tar.gz", ".tar": "tar", ".zip": "zip"}


def archive_format(path: str | os.PathLike[str]) -> str:
    """``"tar.gz"``, ``"tar"`` or ``"zip"`` from a file name's extension."""
    name = Path(path).name.lower()
    for ending, fmt in EXTENSIONS.items():
        if name.endswith(ending):
            return fmt
    raise InvalidArgument(
        f"{Path(path).name}: unknown archive type; end the file name with one of: {', '.join(EXTENSIONS)}"
    )


# --- export --------------------------------------------------------------------------------------


def export_bundle(tag_or_path: str | os.PathLike[str], file: str | os.PathLike[str]) -> Path:
    """Write the bundle (a store tag or a bundle directory) to ``file``; returns the file's path.

    When ``file`` is an existing folder the archive is ``<folder>/<name>-<version>.bento``. The
    file is written under a temporary name and renamed, so it is either complete or absent.
    """
    bundle = store.resolve(tag_or_path)
    meta = BundleMeta.read(bundle)
    target = Path(file)
    if target.is_dir():
        target = target / f"{meta.name}-{meta.version}.bento"
    fmt = archive_format(target)
    if not target.parent.is_dir():
        raise InvalidArgument(f"cannot write {target}: folder {target.parent} does not exist")
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        if fmt == "zip":
            _write_zip(bundle, temporary)
        else:
            _write_tar(bundle, temporary, "w:gz" if fmt == "tar.gz" else "w")
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def _bundle_paths(bundle: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(bundle.rglob("*")):
        yield path.relative_to(bundle).as_posix(), path


def _write_tar(bundle: Path, target: Path, mode: str) -> None:
    def anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(target, mode) as tar:  # type: ignore[call-overload]
        for name, path in _bundle_paths(bundle):
            tar.add(path, arcname=name, recursive=False, filter=anonymous)


def _write_zip(bundle: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, path in _bundle_paths(bundle):
            zf.write(path, name + "/" if path.is_dir() else name)


# --- import --------------------------------------------------------------------------------------


def import_bundle(file: str | os.PathLike[str], force: bool = False) -> store.BundleInfo:
    """Unpack a bundle archive into the store; returns the imported bundle."""
    archive = Path(file)
    if not archive.is_file():
        raise InvalidArgument(f"{archive}: no such file")
    with open_members(archive, store.bundles_root()) as members:
        members = _strip_wrapper(members)
        meta = _read_meta(archive, members)
        destination = store.bundles_root() / meta.name / meta.version
        if destination.exists() and not force:
            raise BundleExists(f"{meta.tag} is already in the store; pass --force to replace it")
        with _created_dirs(destination.parent) as name_dir:
            store.remove_stale_staging()
            staging = store.staging_path(name_dir, f"import-{meta.version}")
            try:
                staging.mkdir()
                _extract(members, staging)
                if BundleMeta.read(staging) != meta:
                    raise BundleError(
                        f"refusing to import {archive.name}: it holds differing {META_FILE} files"
                    )
                _move_into_place(staging, destination, force)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    return store.BundleInfo(destination, meta)


@contextlib.contextmanager
def _created_dirs(directory: Path) -> Iterator[Path]:
    """Create ``directory`` (and missing parents); on failure remove the ones created if still
    empty, so a refused import leaves the store exactly as it was."""
    missing = []
    probe = directory
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    created = []
    try:
        for path in reversed(missing):
            path.mkdir()
            created.append(path)
        yield directory
    except BaseException:
        for path in reversed(created):
            try:
                path.rmdir()
            except OSError:
                break  # not empty: something else is in it now
        raise


def _move_into_place(staging: Path, destination: Path, force: bool) -> None:
    if not destination.exists():
        try:
            os.rename(staging, destination)
            return
        except OSError:
            if not destination.exists():
                raise
            # another import or save of the same version won the race
    if not force:
        raise BundleExists(f"{destination} appeared during the import; pass --force to replace it")
    replaced = store.staging_path(destination.parent, f"replaced-{destination.name}")
    os.rename(destination, replaced)
    try:
        os.rename(staging, destination)
    except BaseException:
        os.rename(replaced, destination)
        raise
    shutil.rmtree(replaced, ignore_errors=True)


def _strip_wrapper(members: list[Member]) -> list[Member]:
    """Accept an archive whose bundle sits in one top folder (``tar czf x.tgz Name/version``)."""
    if any(m.name == META_FILE and m.kind == "file" for m in members):
        return members
    tops = {m.name.split("/")[0] for m in members if m.name}
    if len(tops) != 1:
        return members
    top = tops.pop()
    if not any(m.name == f"{top}/{META_FILE}" and m.kind == "file" for m in members):
        return members
    stripped = []
    for m in members:
        if m.name in ("", top):
            continue
        link = m.link[len(top) + 1 :] if m.kind == "hardlink" else m.link
        stripped.append(attrs.evolve(m, name=m.name[len(top) + 1 :], link=link))
    return stripped


def _read_meta(archive: Path, members: list[Member]) -> BundleMeta:
    entry = next((m for m in members if m.name == META_FILE and m.kind == "file"), None)
    if entry is None or entry.open is None:
        raise BundleError(f"{archive} is not a bentolite bundle archive: it has no {META_FILE}")
    if entry.size > MAX_META_BYTES:
        raise BundleError(
            f"refusing to import {archive.name}: its {META_FILE} declares {entry.size} bytes, "
            f"more than the {MAX_META_BYTES} a bundle's metadata needs"
        )
    with entry.open() as f:
        text = f.read(MAX_META_BYTES + 1).decode("utf-8", errors="replace")
    meta = BundleMeta.from_yaml(text, source=f"{archive.name}:{META_FILE}")
    try:
        store.check_name(meta.name)
        store.check_version(meta.version)
    except InvalidArgument as exc:
        raise BundleError(f"refusing to import {archive.name}: {exc}") from None
    return meta


def _extract(members: list[Member], staging: Path) -> None:
    """Create the members under ``staging``: folders and files first, then hard links (as
    copies), then symbolic links, so no file is ever written through a link."""
    root = staging.resolve()
    budget = [declared_bytes(members)]  # what may still be written, counted in real bytes

    def place(name: str) -> Path:
        path = staging.joinpath(*name.split("/"))
        if not path.parent.resolve().is_relative_to(root):
            raise BundleError(f"archive member {name!r} would be written outside the bundle")
        return path

    try:
        for m in members:
            if not m.name:
                continue
            if m.kind == "dir":
                place(m.name).mkdir(parents=True, exist_ok=True)
            elif m.kind == "file" and m.open is not None:
                path = place(m.name)
                path.parent.mkdir(parents=True, exist_ok=True)
                copy_member(m, path, budget)
                path.chmod(0o755 if m.executable else 0o644)
        for m in members:
            if m.kind == "hardlink":
                path = place(m.name)
                path.parent.mkdir(parents=True, exist_ok=True)
                source = place(m.link)
                budget[0] -= source.stat().st_size
                if budget[0] < 0:
                    raise BundleError(f"refusing to import: hard link {m.name!r} exceeds the declared size")
                shutil.copyfile(source, path)
        for m in members:
            if m.kind == "symlink":
                path = place(m.name)
                path.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(m.link, path)
    except BentoliteError:
        raise
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise BundleError(f"cannot unpack the archive: {exc}") from exc
    # Links may chain (a -> ".", b -> "a/.."): check where each one really leads.
    for m in members:
        if m.kind == "symlink":
            real = Path(os.path.realpath(staging.joinpath(*m.name.split("/"))))
            if not real.is_relative_to(root):
                raise BundleError(f"refusing to import: link {m.name!r} points outside the bundle")


__all__ = ["EXTENSIONS", "archive_format", "export_bundle", "import_bundle"]
