"""``Service.save()`` of a service in a package folder copies symbolic links as a build does:
content when they stay inside the folder, an error when they lead outside (bentolite/bundle.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import bentolite
from bentolite import store
from bentolite.exceptions import ConfigError

SECRET = "aws_secret_access_key = hunter2\n"


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
    """A package ``<name>/`` holding a service module, a data file, a link to it and a linked
    folder, all inside; and a fake credentials file outside it. Returns (package dir, secret)."""
    name = "linked_pkg_" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")
    root = tmp_path / "code"
    pkg = root / name
    (pkg / "conf").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data.txt").write_text("inside data\n")
    (pkg / "conf" / "app.ini").write_text("[app]\n")
    (pkg / "alias.txt").symlink_to("data.txt")
    (pkg / "settings").symlink_to("conf", target_is_directory=True)
    (pkg / "svc.py").write_text(
        "from pathlib import Path\n"
        "from bentolite import Service, api\n"
        "from bentolite.adapters import JsonInput\n\n\n"
        "class Linked(Service):\n"
        "    @api(input=JsonInput())\n"
        "    def read(self, name):\n"
        "        return (Path(__file__).parent / name).read_text()\n"
    )
    secret = tmp_path / "home" / ".aws" / "credentials"
    secret.parent.mkdir(parents=True)
    secret.write_text(SECRET)
    monkeypatch.syspath_prepend(str(root))
    yield pkg, secret
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def service_of(pkg: Path):
    module = __import__(f"{pkg.name}.svc", fromlist=["Linked"])
    return module.Linked()


def every_file_text(folder: Path) -> list[str]:
    texts = []
    for dirpath, _, names in os.walk(folder):
        for file in names:
            try:
                texts.append((Path(dirpath) / file).read_text())
            except (UnicodeDecodeError, OSError):
                continue
    return texts


def test_links_inside_the_package_are_saved_as_their_content(package):
    pkg, _ = package
    path = Path(service_of(pkg).save())
    src = path / "src" / pkg.name
    for rel, text in (("alias.txt", "inside data\n"), ("settings/app.ini", "[app]\n")):
        assert not (src / rel).is_symlink() and not (src / rel).parent.is_symlink()
        assert (src / rel).read_text() == text
    loaded = bentolite.load(path)
    assert loaded.read("alias.txt") == "inside data\n"


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_link_leading_outside_the_package_is_refused(package, store_home, kind):
    pkg, secret = package
    if kind == "file":
        (pkg / "creds.txt").symlink_to(secret)
        named = "creds.txt"
    else:
        (pkg / "aws").symlink_to(secret.parent, target_is_directory=True)
        named = "aws"
    svc = service_of(pkg)
    with pytest.raises(ConfigError) as caught:
        svc.save()
    message = str(caught.value)
    assert "\n" not in message and caught.value.exit_code == 2
    target = secret.resolve() if kind == "file" else secret.resolve().parent
    assert f"{named} in {pkg.resolve()} is a symbolic link to {target}" in message
    assert "allow_external_symlinks=True" in message
    assert store.list_bundles() == []
    assert SECRET not in every_file_text(store_home)
    with pytest.raises(ConfigError, match=named):
        svc.save_to_dir(pkg.parent.parent / "out")
    assert not (pkg.parent.parent / "out").exists()


def test_allow_external_symlinks_copies_what_the_link_points_to(package):
    pkg, secret = package
    (pkg / "creds.txt").symlink_to(secret)
    svc = service_of(pkg)
    saved = Path(svc.save(allow_external_symlinks=True))
    copied = saved / "src" / pkg.name / "creds.txt"
    assert not copied.is_symlink() and copied.read_text() == SECRET
    to_dir = Path(svc.save_to_dir(pkg.parent.parent / "out", allow_external_symlinks=True))
    assert (to_dir / "src" / pkg.name / "creds.txt").read_text() == SECRET


def test_a_loaded_service_saves_again_with_the_same_files(package):
    pkg, _ = package
    first = Path(service_of(pkg).save())
    again = Path(bentolite.load(first).save())

    def files(bundle: Path) -> dict[str, str]:
        src = bundle / "src"
        return {p.relative_to(src).as_posix(): p.read_text() for p in src.rglob("*") if p.is_file()}

    assert files(again) == files(first) and f"{pkg.name}/settings/app.ini" in files(again)
