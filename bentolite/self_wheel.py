"""Build a wheel of the running bentolite, so an image installs exactly the code that saved a
bundle, even when that code is an unreleased checkout not on any package index."""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import re
import zipfile
from importlib import metadata
from pathlib import Path

import bentolite

_EPOCH = (1980, 1, 1, 0, 0, 0)


def wheel_name() -> str:
    return f"bentolite-{bentolite.__version__}-py3-none-any.whl"


def _package_files() -> list[tuple[str, Path]]:
    """(archive name, file) for every source file and template of the package."""
    package_dir = Path(bentolite.__file__).parent
    files = [
        (f"bentolite/{p.relative_to(package_dir).as_posix()}", p)
        for p in sorted(package_dir.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    ]
    if not (package_dir / "templates").is_dir():
        checkout_templates = package_dir.parent / "templates"
        files += [
            (f"bentolite/templates/{p.relative_to(checkout_templates).as_posix()}", p)
            for p in sorted(checkout_templates.rglob("*"))
            if p.is_file()
        ]
    return files


#: what only the machine that builds images needs; a bundle's image runs without them, so the
#: bundled wheel moves them to the extra ``build`` (no docker SDK, rich or uv in an image)
BUILD_ONLY = frozenset({"docker", "rich", "uv"})


def _requirements() -> list[str]:
    try:
        requires = metadata.requires("bentolite") or []
    except metadata.PackageNotFoundError:
        return []
    lines = []
    for requirement in requires:
        if "extra ==" in requirement:
            continue
        name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower()
        if name in BUILD_ONLY:
            base, _, marker = requirement.partition(";")
            extra = 'extra == "build"'
            requirement = f"{base.strip()}; ({marker.strip()}) and {extra}" if marker else f"{base}; {extra}"
        lines.append(requirement)
    return lines


def runtime_requirements() -> list[str]:
    """What the bundled wheel needs to run: its requirements less the build-only extra."""
    return [r for r in _requirements() if "extra ==" not in r]


def _metadata_text() -> str:
    lines = [
        "Metadata-Version: 2.1",
        "Name: bentolite",
        f"Version: {bentolite.__version__}",
        "Summary: bentolite, as it was when this bundle was saved",
        "Requires-Python: >=3.9",
    ]
    lines.append("Provides-Extra: build")
    lines += [f"Requires-Dist: {r}" for r in _requirements()]
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=1)
def wheel_bytes() -> bytes:
    """The wheel's content (built once per process, deterministic)."""
    dist_info = f"bentolite-{bentolite.__version__}.dist-info"
    entries = [(name, path.read_bytes()) for name, path in _package_files()]
    entries += [
        (f"{dist_info}/METADATA", _metadata_text().encode()),
        (
            f"{dist_info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: bentolite\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        ),
        (f"{dist_info}/entry_points.txt", b"[console_scripts]\nbentolite = bentolite.cli:main\n"),
    ]
    record = []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(zipfile.ZipInfo(name, _EPOCH), data, zipfile.ZIP_DEFLATED)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{name},sha256={digest.decode()},{len(data)}")
        record.append(f"{dist_info}/RECORD,,")
        zf.writestr(
            zipfile.ZipInfo(f"{dist_info}/RECORD", _EPOCH),
            "\n".join(record) + "\n",
            zipfile.ZIP_DEFLATED,
        )
    return buffer.getvalue()


def write_wheel(directory: Path) -> Path:
    """Write the wheel into ``directory``; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / wheel_name()
    path.write_bytes(wheel_bytes())
    return path
