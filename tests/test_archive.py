"""Exporting and importing bundle archives (bentolite/archive.py), hostile archives included."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from sample_services import Greeter

import bentolite
from bentolite import store
from bentolite.archive import archive_format, export_bundle, import_bundle
from bentolite.exceptions import BundleError, InvalidArgument


def save(greeting: str = "Hello", version: str = "v1") -> Path:
    return Path(Greeter().pack("greeting", greeting).save(version=version))


def snapshot(root: Path) -> list[tuple[str, int]]:
    """Every path under ``root`` with its size, to tell whether anything changed."""
    return sorted(
        (p.relative_to(root).as_posix(), p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")
    )


@pytest.mark.parametrize("suffix", [".bento", ".tar.gz", ".tgz", ".tar", ".zip"])
def test_round_trip_in_every_format(tmp_path, suffix):
    save("Hola")
    file = export_bundle("Greeter:v1", tmp_path / f"greeter{suffix}")
    assert file.is_file() and not list(tmp_path.glob(".*part"))
    store.delete("Greeter:v1")
    info = import_bundle(file)
    assert info.tag == "Greeter:v1" and info.path == store.bundles_root() / "Greeter" / "v1"
    assert bentolite.load("Greeter:v1").greet(["Ann"]) == ["Hola, Ann"]


def test_formats_follow_the_extension(tmp_path):
    save()
    assert archive_format("x.bento") == archive_format("x.TAR.GZ") == "tar.gz"
    with tarfile.open(export_bundle("Greeter:v1", tmp_path / "a.bento"), "r:gz") as tar:
        assert "bentolite.yaml" in tar.getnames()
    with tarfile.open(export_bundle("Greeter:v1", tmp_path / "a.tar"), "r:") as tar:
        assert "src/sample_services.py" in tar.getnames()
    with zipfile.ZipFile(export_bundle("Greeter:v1", tmp_path / "a.zip")) as zf:
        assert "artifacts/greeting.txt" in zf.namelist()
    with pytest.raises(InvalidArgument, match="unknown archive type"):
        export_bundle("Greeter:v1", tmp_path / "a.rar")


def test_export_to_a_folder_names_the_file(tmp_path):
    save()
    assert export_bundle("Greeter", tmp_path) == tmp_path / "Greeter-v1.bento"


def test_importing_an_existing_tag_needs_force(tmp_path):
    save("Old")
    file = export_bundle("Greeter:v1", tmp_path / "old.bento")
    store.delete("Greeter:v1")
    save("New")
    before = snapshot(store.home())
    with pytest.raises(BundleError, match=r"Greeter:v1 is already in the store; pass --force"):
        import_bundle(file)
    assert snapshot(store.home()) == before
    import_bundle(file, force=True)
    assert bentolite.load("Greeter:v1").greet(["x"]) == ["Old, x"]
    assert [p.name for p in (store.bundles_root() / "Greeter").iterdir()] == ["v1"]


def test_an_archive_wrapped_in_one_folder_imports(tmp_path):
    path = save()
    file = tmp_path / "wrapped.tar.gz"
    with tarfile.open(file, "w:gz") as tar:
        tar.add(path, arcname="Greeter-v1")
    store.delete("Greeter:v1")
    assert import_bundle(file).tag == "Greeter:v1"
    assert bentolite.load("Greeter:v1").greet(["x"]) == ["Hello, x"]


def test_not_an_archive_or_not_a_bundle(tmp_path):
    junk = tmp_path / "junk.bento"
    junk.write_bytes(b"not an archive at all")
    with pytest.raises(BundleError, match="not a readable tar or zip archive"):
        import_bundle(junk)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(BundleError, match="has no bentolite.yaml"):
        import_bundle(empty)


# --- hostile archives ----------------------------------------------------------------------------


def tar_with(tmp_path: Path, add) -> Path:  # noqa: ANN001 - a callback adding members
    """A genuine exported bundle (name Greeter, version evil) plus whatever ``add`` puts in."""
    good = export_bundle(save(version="evil"), tmp_path / "good.tar")
    store.delete("Greeter:evil")
    file = tmp_path / "hostile.tar"
    with tarfile.open(good) as source, tarfile.open(file, "w") as tar:
        for member in source.getmembers():
            tar.addfile(member, source.extractfile(member) if member.isfile() else None)
        add(tar)
    return file


def regular(name: str, data: bytes = b"pwned") -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, io.BytesIO(data)


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


HOSTILE_TAR = {
    "absolute path": (lambda tar: tar.addfile(*regular("/tmp/bentolite-evil")), "has an absolute path"),
    "dot-dot member": (lambda tar: tar.addfile(*regular("src/../../evil")), "has a '..' path component"),
    "symlink to an absolute path": (
        lambda tar: tar.addfile(special("src/passwd", tarfile.SYMTYPE, "/etc/passwd")),
        "is a link pointing outside the bundle",
    ),
    "symlink climbing out": (
        lambda tar: tar.addfile(special("src/up", tarfile.SYMTYPE, "../../../..")),
        "is a link pointing outside the bundle",
    ),
    "symlinks chaining out": (
        lambda tar: (
            tar.addfile(special("src/here", tarfile.SYMTYPE, ".")),
            tar.addfile(special("src/out", tarfile.SYMTYPE, "here/../..")),
        ),
        "points outside the bundle",
    ),
    "hard link outside": (
        lambda tar: tar.addfile(special("src/shadow", tarfile.LNKTYPE, "../../../etc/shadow")),
        "has a '..' path component",
    ),
    "hard link to a non-member": (
        lambda tar: tar.addfile(special("src/hosts", tarfile.LNKTYPE, "etc/hosts")),
        "not a file in the bundle",
    ),
    "character device": (
        lambda tar: tar.addfile(special("src/null", tarfile.CHRTYPE)),
        "is a device file",
    ),
    "block device": (lambda tar: tar.addfile(special("src/sda", tarfile.BLKTYPE)), "is a device file"),
    "fifo": (lambda tar: tar.addfile(special("src/pipe", tarfile.FIFOTYPE)), "is a device file, FIFO"),
}


@pytest.mark.parametrize("case", list(HOSTILE_TAR), ids=list(HOSTILE_TAR))
def test_hostile_tar_is_refused_and_the_store_is_unchanged(tmp_path, case):
    add, reason = HOSTILE_TAR[case]
    file = tar_with(tmp_path, add)
    save("Kept", "v1")  # the store holds a bundle of the same name, which must survive untouched
    before = snapshot(store.home())
    with pytest.raises(BundleError, match=reason):
        import_bundle(file)
    assert snapshot(store.home()) == before
    assert not Path("/tmp/bentolite-evil").exists() and not (tmp_path.parent / "evil").exists()


def test_hostile_archive_into_an_empty_store_creates_nothing(tmp_path):
    file = tar_with(tmp_path, lambda tar: tar.addfile(special("src/null", tarfile.CHRTYPE)))
    before = snapshot(store.home())
    with pytest.raises(BundleError, match="device file"):
        import_bundle(file)
    assert snapshot(store.home()) == before


def zip_with(tmp_path: Path, name: str, data: bytes, mode: int) -> Path:
    good = export_bundle(save(version="evil"), tmp_path / "good.zip")
    store.delete("Greeter:evil")
    file = tmp_path / "hostile.zip"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(file, "w") as zf:
        for item in source.infolist():
            zf.writestr(item, source.read(item))
        info = zipfile.ZipInfo(name)
        info.external_attr = mode << 16
        zf.writestr(info, data)
    return file


HOSTILE_ZIP = {
    "absolute path": ("/tmp/bentolite-evil", b"x", stat.S_IFREG | 0o644, "has an absolute path"),
    "dot-dot member": ("../evil", b"x", stat.S_IFREG | 0o644, "has a '..' path component"),
    "backslash dot-dot": ("..\\evil", b"x", stat.S_IFREG | 0o644, "has a '..' path component"),
    "symlink outside": ("src/link", b"/etc/passwd", stat.S_IFLNK | 0o777, "link pointing outside"),
    "symlink climbing out": ("src/link", b"../../x", stat.S_IFLNK | 0o777, "link pointing outside"),
    "fifo": ("src/pipe", b"", stat.S_IFIFO | 0o644, "device file, FIFO"),
    "character device": ("src/null", b"", stat.S_IFCHR | 0o644, "device file"),
}


@pytest.mark.parametrize("case", list(HOSTILE_ZIP), ids=list(HOSTILE_ZIP))
def test_hostile_zip_is_refused_and_the_store_is_unchanged(tmp_path, case):
    name, data, mode, reason = HOSTILE_ZIP[case]
    file = zip_with(tmp_path, name, data, mode)
    save("Kept", "v1")
    before = snapshot(store.home())
    with pytest.raises(BundleError, match=reason):
        import_bundle(file)
    assert snapshot(store.home()) == before
    assert not (tmp_path.parent / "evil").exists()


def test_a_symlink_inside_the_bundle_is_kept(tmp_path):
    def add(tar: tarfile.TarFile) -> None:
        tar.addfile(special("src/alias.py", tarfile.SYMTYPE, "sample_services.py"))
        tar.addfile(special("src/copy.py", tarfile.LNKTYPE, "src/sample_services.py"))

    info = import_bundle(tar_with(tmp_path, add))
    alias, copy = info.path / "src/alias.py", info.path / "src/copy.py"
    assert alias.is_symlink() and alias.read_text() == (info.path / "src/sample_services.py").read_text()
    assert not copy.is_symlink() and copy.read_text() == alias.read_text()


def test_a_bad_bundle_name_inside_the_archive_is_refused(tmp_path):
    file = tmp_path / "bad.zip"
    meta = (save().joinpath("bentolite.yaml")).read_text().replace("name: Greeter", "name: ../../etc")
    with zipfile.ZipFile(file, "w") as zf:
        zf.writestr("bentolite.yaml", meta)
    before = snapshot(store.home())
    with pytest.raises(BundleError, match="refusing to import bad.zip: bundle name"):
        import_bundle(file)
    assert snapshot(store.home()) == before


def test_a_name_ending_in_a_newline_inside_the_archive_is_refused(tmp_path):
    file = tmp_path / "newline.zip"
    meta = save().joinpath("bentolite.yaml").read_text().replace("name: Greeter", 'name: "Greeter\\n"')
    with zipfile.ZipFile(file, "w") as zf:
        zf.writestr("bentolite.yaml", meta)
    store.delete("Greeter:v1")
    with pytest.raises(BundleError, match="bundle name 'Greeter\\\\n' is not valid"):
        import_bundle(file)
    assert store.list_bundles() == [] and list(store.bundles_root().iterdir()) == []


# --- a YAML alias bomb ---------------------------------------------------------------------------


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The "billion laughs": ``width ** levels`` strings from a few kilobytes of anchors and aliases."""
    lines = ['  l0: &l0 ["' + "lol" * 1000 + '"]']
    for level in range(1, levels + 1):
        lines.append(f"  l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    return "\n".join(lines) + f"\n  bomb: *l{levels}\n"


def test_an_alias_bomb_in_an_archive_is_refused_without_growing_memory(tmp_path, store_home):
    """A real crafted archive, imported by a real `bentolite import` under a 1 GiB address space."""
    meta = save().joinpath("bentolite.yaml").read_text()
    store.delete("Greeter:v1")
    bomb = meta.replace("labels: {}\n", "labels:\n" + alias_bomb())
    assert bomb != meta and len(bomb) > 3_000
    file = tmp_path / "bomb.tar"
    with tarfile.open(file, "w") as tar:
        tar.addfile(*regular("bentolite.yaml", bomb.encode()))
    limit = 1 << 30
    script = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
        "from bentolite.cli import main\n"
        f"sys.argv = ['bentolite', 'import', {str(file)!r}]\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "    print(f'peak_kib={peak}')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "BENTOLITE_HOME": str(store_home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "aliases (*name) are not accepted" in done.stderr, done.stderr
    peak_kib = int(done.stdout.rsplit("peak_kib=", 1)[1])
    assert peak_kib < 300 * 1024, peak_kib
    assert store.list_bundles() == []
