"""Which files of a build directory go into a bundle's ``src/``: :func:`collect_files`.

Patterns follow .gitignore (through ``pathspec``), a ``.bentoignore`` file adds its own, and
symbolic links are followed only while they stay inside the build directory: a link leading
outside is an error naming it unless the bentofile allows it, so ``creds.txt ->
~/.aws/credentials`` never reaches a bundle, an image or an export by accident.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

import pathspec

from bentolite import store
from bentolite.exceptions import ConfigError

logger = logging.getLogger(__name__)

#: folders never collected, whatever the patterns say (version control, caches, virtualenvs)
ALWAYS_EXCLUDED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".ipynb_checkpoints",
    }
)
#: file name patterns never collected
ALWAYS_EXCLUDED_FILES = ("*.pyc", "*.pyo", ".DS_Store")
#: how to fix a link leading outside the build directory of a bentofile
BUILD_REMEDY = "remove it, exclude it, or set 'allow_external_symlinks: true' in the bentofile"


def collect_files(
    build_dir: Path,
    include: Iterable[str],
    exclude: Iterable[str] = (),
    skip: Iterable[Path] = (),
    allow_external_symlinks: bool = False,
    remedy: str = BUILD_REMEDY,
) -> list[tuple[str, Path]]:
    """Files under ``build_dir`` matching ``include`` and not ``exclude``, as (relative POSIX
    path, file) pairs in sorted order.

    Both pattern lists follow .gitignore (see :func:`path_spec`); the lines of a
    ``.bentoignore`` file in ``build_dir`` come before ``exclude``. A folder that ``exclude``
    matches is not entered, as git does. Version control folders, caches, virtualenvs (any
    folder holding ``pyvenv.cfg``), ``skip`` and the store itself are always left out.

    A symbolic link is followed when it resolves inside ``build_dir`` (the bundle gets the
    content); one resolving outside is a :class:`ConfigError` naming it and saying how to fix
    it (``remedy``), unless ``allow_external_symlinks``. Dangling links, and links back to a
    folder being walked, are skipped.
    """
    build_dir = build_dir.resolve()
    includes = path_spec(include)
    excludes = path_spec([*_bentoignore(build_dir), *exclude, *ALWAYS_EXCLUDED_FILES])
    skipped = {Path(p).resolve() for p in skip}
    store_home = store.home().resolve()
    found: list[tuple[str, Path]] = []

    def outside(rel: str, target: Path) -> ConfigError:
        return ConfigError(
            f"{rel} in {build_dir} is a symbolic link to {target}, outside that folder; {remedy}"
        )

    def left_out(target: Path) -> bool:
        """Whether a path inside the build directory is one the walk leaves out (a link to
        ``.git/config`` must not smuggle it in)."""
        parts = target.relative_to(build_dir).parts
        for depth in range(1, len(parts) + 1):
            folder = build_dir.joinpath(*parts[:depth])
            rel = "/".join(parts[:depth])
            if depth < len(parts) or target.is_dir():
                if (
                    parts[depth - 1] in ALWAYS_EXCLUDED_DIRS
                    or (folder / "pyvenv.cfg").is_file()
                    or folder == store_home
                    or excludes.match_file(rel + "/")
                ):
                    return True
        return target.is_file() and (target in skipped or excludes.match_file("/".join(parts)))

    def walk(here: Path, rel_dir: str, ancestors: frozenset[Path], external: str | None) -> None:
        for entry in sorted(os.scandir(here), key=lambda e: e.name):
            rel = rel_dir + entry.name
            path = Path(entry.path)
            link_target = Path(os.path.realpath(path)) if entry.is_symlink() else None
            if link_target is not None and not link_target.exists():
                logger.warning("%s: skipping a symbolic link to %s, which does not exist", rel, link_target)
                continue
            leaves = external
            if link_target is not None and not link_target.is_relative_to(build_dir):
                leaves = leaves or rel
            elif link_target is not None and left_out(link_target):
                logger.warning("%s: skipping a symbolic link to %s, which is left out", rel, link_target)
                continue
            if entry.is_dir():
                real = link_target or path
                if (
                    entry.name in ALWAYS_EXCLUDED_DIRS
                    or (path / "pyvenv.cfg").is_file()
                    or real.resolve() == store_home
                    or excludes.match_file(rel + "/")
                ):
                    continue
                if real in ancestors:
                    logger.warning("%s: skipping a symbolic link to the folder %s, which holds it", rel, real)
                    continue
                walk(path, rel + "/", ancestors | {real}, leaves)
            elif entry.is_file() and path.resolve() not in skipped:
                if includes.match_file(rel) and not excludes.match_file(rel):
                    if leaves is not None and not allow_external_symlinks:
                        raise outside(leaves, Path(os.path.realpath(build_dir / leaves)))
                    found.append((rel, path))

    walk(build_dir, "", frozenset({build_dir}), None)
    return sorted(found)


IGNORE_FILE = ".bentoignore"


def _bentoignore(build_dir: Path) -> list[str]:
    file = build_dir / IGNORE_FILE
    if not file.is_file():
        return []
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text ({exc.reason})") from None
    patterns = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    for number, line in enumerate(lines, 1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                path_spec([line])
            except (ValueError, re.error) as exc:
                message = f"{line.strip()!r} is not a valid pattern ({exc})"
                raise ConfigError(f"{file}:{number}: {message}") from None
    return patterns


def path_spec(patterns: Iterable[str]) -> pathspec.GitIgnoreSpec:
    """The matcher of .gitignore-style ``patterns``: one without a ``/`` matches a name at any
    depth (``*.py``), one with a ``/`` matches from the build directory (``data/*.csv``, and
    ``./train.py`` only at the top); ``**`` spans folders; a trailing ``/`` matches folders
    only, and a folder's match covers everything in it; ``!pattern`` takes back what an earlier
    pattern matched, and the last matching pattern wins."""
    lines = []
    for pattern in patterns:
        text = pattern.strip()
        negated = text.startswith("!")
        body = text[1:] if negated else text
        if body.startswith("./"):
            while body.startswith("./"):
                body = body[2:]
            body = "/" + body
        lines.append(("!" if negated else "") + body)
    return pathspec.GitIgnoreSpec.from_lines(lines)
