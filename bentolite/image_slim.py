"""Trim and precompile an image's installed packages (runs inside the image, standard library only).

The build context carries this file as ``env/slim.py``; the Dockerfile runs it right after each
``pip install`` so the removed files never reach a layer:

- a folder named ``tests`` or ``test`` inside a package is removed only when no module outside
  it imports it, by its dotted name (``sklearn.utils.tests``, also in a string, as
  ``importlib.import_module`` takes it) or relatively from its parent package
  (``from .tests import x``, ``from . import tests``). A test suite the library imports at run
  time stays;
- files only a compiler or a browser's debugger reads go: source maps (``*.map``), type stubs
  (``*.pyi``), Cython sources (``*.pyx``, ``*.pxd``);
- ``--compile`` then writes bytecode for what is left (hash-based ``.pyc``: the same bytes for
  the same source, and no source timestamp to check at import), so a container does not compile
  every module it imports each time it starts.

    python slim.py [--compile] [--package NAME ...]

With ``--package`` only those top-level packages are handled (a later layer's own packages).
"""

from __future__ import annotations

import argparse
import compileall
import os
import py_compile
import re
import shutil
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from pathlib import Path

TEST_DIRS = ("tests", "test")
JUNK_SUFFIXES = (".map", ".pyi", ".pyx", ".pxd")


def site_packages() -> list[Path]:
    """Where pip installs: the purelib and platlib folders (once each)."""
    paths = {sysconfig.get_path(p) for p in ("purelib", "platlib")}
    return sorted(Path(p) for p in paths if p and Path(p).is_dir())


def _python_files(root: Path, skip: Path | None = None) -> Iterator[Path]:
    for directory, folders, files in os.walk(root):
        here = Path(directory)
        if skip is not None:
            folders[:] = [f for f in folders if here / f != skip]
        folders[:] = [f for f in folders if f != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                yield here / name


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def test_dirs(root: Path, site: Path) -> list[Path]:
    """Folders named ``tests``/``test`` inside packages under ``root`` (outermost ones only; a
    top-level ``tests`` package in ``site`` is left alone, as any distribution may import it)."""
    found = []
    for directory, folders, _ in os.walk(root):
        here = Path(directory)
        keep = []
        for name in folders:
            path = here / name
            if name in TEST_DIRS and here != site and any(path.rglob("*.py")):
                found.append(path)
            elif not name.endswith((".dist-info", ".egg-info")) and name != "__pycache__":
                keep.append(name)
        folders[:] = keep
    return sorted(found)


_RELATIVE_IMPORT = re.compile(r"^[ \t]*from[ \t]+(\.+)([\w.]*)[ \t]+import[ \t]+\(?([\w, \t]*)", re.MULTILINE)


def _referenced_names(path: Path, text: str, site: Path) -> set[str]:
    """Dotted names the module at ``path`` mentions: absolute ones starting with its top-level
    package, and the targets of its relative imports made absolute."""
    parts = path.relative_to(site).with_suffix("").parts
    top = parts[0]
    names = set()
    for match in re.finditer(rf"(?<![\w.]){re.escape(top)}(?:\.\w+)+", text):
        pieces = match.group(0).split(".")
        names.update(".".join(pieces[:i]) for i in range(2, len(pieces) + 1))
    package = list(parts[:-1])  # a module's package; __init__.py is in its own folder too
    for dots, module, imported in _RELATIVE_IMPORT.findall(text):
        base = package[: len(package) - (len(dots) - 1)] if len(dots) > 1 else package
        target = [*base, *(m for m in module.split(".") if m)]
        names.add(".".join(target))
        names.update(".".join([*target, n.strip()]) for n in imported.split(",") if n.strip())
    return names


def used_test_dirs(candidates: list[Path], site: Path) -> set[Path]:
    """The ``candidates`` that a module outside every unused test folder imports.

    A test folder imported only by other test folders is unused; one imported by the library
    is used, and so is whatever that one imports (repeated until nothing changes).
    """
    by_name = {".".join(d.relative_to(site).parts): d for d in candidates}
    tops = sorted({site / d.relative_to(site).parts[0] for d in candidates})
    candidate_set = set(candidates)
    edges: list[tuple[Path | None, set[Path]]] = []  # (the test folder holding a module, what it imports)
    for top in tops:
        for path in _python_files(top):
            owner = next((d for d in path.parents if d in candidate_set), None)
            names = _referenced_names(path, _read(path), site)
            targets = {by_name[n] for n in names if n in by_name} - {owner}
            if targets:
                edges.append((owner, targets))
    used: set[Path] = set()
    while True:
        grown = set().union(*(t for owner, t in edges if owner is None or owner in used)) - used
        if not grown:
            return used
        used |= grown


def unused_test_dirs(site: Path, packages: Iterable[str] | None = None) -> list[Path]:
    """The test folders under ``site`` (or its ``packages``) that nothing else imports."""
    roots = [site / p for p in packages] if packages else [site]
    candidates = [d for root in roots if root.is_dir() for d in test_dirs(root, site)]
    used = used_test_dirs(candidates, site)
    return [d for d in candidates if d not in used]


def junk_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.suffix in JUNK_SUFFIXES and p.is_file()]


def compile_tree(root: Path) -> bool:
    """Write hash-based bytecode for every module under ``root``; whether all compiled."""
    return bool(
        compileall.compile_dir(
            str(root),
            quiet=1,
            workers=0,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    )


def slim(site: Path, packages: list[str] | None = None, compile_bytecode: bool = False) -> dict[str, int]:
    """Remove unused test folders and junk files under ``site``; compile if asked."""
    removed_dirs = unused_test_dirs(site, packages)
    for directory in removed_dirs:
        shutil.rmtree(directory, ignore_errors=True)
    roots = [site / p for p in packages] if packages else [site]
    removed_files = 0
    for root in roots:
        if not root.exists():
            continue
        for path in junk_files(root) if root.is_dir() else []:
            path.unlink()
            removed_files += 1
        if compile_bytecode and root.is_dir():
            compile_tree(root)
    return {"test_dirs": len(removed_dirs), "files": removed_files}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compile", action="store_true", help="write bytecode for what is left")
    parser.add_argument("--package", action="append", help="only this top-level package (repeatable)")
    args = parser.parse_args(argv)
    for site in site_packages():
        packages = None
        if args.package:
            packages = [p for p in args.package if (site / p).exists()]
            if not packages:
                continue
        done = slim(site, packages, args.compile)
        print(f"{site}: removed {done['test_dirs']} unused test folders and {done['files']} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
