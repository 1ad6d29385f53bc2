"""Archives that declare too much (bentolite/archive_members.py): crafted tar and zip bombs."""

from __future__ import annotations

import io
import struct
import tarfile
import time
import zipfile
import zlib
from pathlib import Path

import pytest
from sample_services import Greeter

from bentolite import store
from bentolite.archive import export_bundle, import_bundle
from bentolite.archive_members import MAX_BYTES_ENV, MAX_MEMBERS_ENV, Limits, human, parse_size
from bentolite.exceptions import BundleError, ConfigError

MIB = 1 << 20
GIB = 1 << 30


def snapshot(root: Path) -> list[tuple[str, int]]:
    return sorted(
        (p.relative_to(root).as_posix(), p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")
    )


def bundle_tar_members(tmp_path: Path) -> bytes:
    """The members of a genuine exported bundle, as tar bytes without the end-of-archive blocks."""
    Greeter().pack("greeting", "Hi").save(version="v1")
    good = export_bundle("Greeter:v1", tmp_path / "good.tar")
    store.delete("Greeter:v1")
    out = io.BytesIO()
    with tarfile.open(good) as source, tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for member in source.getmembers():
            tar.addfile(member, source.extractfile(member) if member.isfile() else None)
        end = tar.offset
    return out.getvalue()[:end]


def gzip_tar_bomb(tmp_path: Path, big_size: int = 2 * GIB) -> Path:
    """A real, valid .tar.gz holding a bundle plus ``artifacts/huge.pkl`` of ``big_size`` zeros,
    about 2 MB on disk: the zeros' deflate block is made once and repeated."""
    info = tarfile.TarInfo("artifacts/huge.pkl")
    info.size = big_size
    head = bundle_tar_members(tmp_path) + info.tobuf(format=tarfile.GNU_FORMAT)
    tail = bytes(1024)  # the end-of-archive blocks (big_size is a multiple of 512)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(MIB)
    zeros_block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(head)
    for _ in range(big_size // MIB):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(tail, crc)
    file = tmp_path / "bomb.tar.gz"
    with open(file, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")  # gzip header, no name, no time
        f.write(deflate.compress(head) + deflate.flush(zlib.Z_FULL_FLUSH))
        for _ in range(big_size // MIB):
            f.write(zeros_block)
        f.write(deflate.compress(tail) + deflate.flush())
        f.write(struct.pack("<II", crc, (len(head) + big_size + len(tail)) & 0xFFFFFFFF))
    return file


@pytest.fixture(scope="module")
def tar_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import os

    home = tmp_path_factory.mktemp("bomb_home")
    old = os.environ.get("BENTOLITE_HOME")
    os.environ["BENTOLITE_HOME"] = str(home)
    try:
        return gzip_tar_bomb(tmp_path_factory.mktemp("bomb"))
    finally:
        if old is not None:
            os.environ["BENTOLITE_HOME"] = old


def test_the_crafted_bomb_is_a_real_archive_declaring_2_gib(tar_bomb):
    assert tar_bomb.stat().st_size < 3 * MIB
    with tarfile.open(tar_bomb, "r:gz") as tar:
        names = []
        for info in tar:
            names.append(info.name)
            if info.name == "artifacts/huge.pkl":
                assert info.size == 2 * GIB
                assert tar.extractfile(info).read(MIB) == bytes(MIB)
                break
    assert "bentolite.yaml" in names


def test_a_member_declaring_more_than_the_limit_is_refused_before_any_write(tar_bomb, monkeypatch):
    monkeypatch.setenv(MAX_BYTES_ENV, "1GiB")
    Greeter().pack("greeting", "kept").save(version="kept")
    before = snapshot(store.home())
    started = time.monotonic()
    with pytest.raises(
        BundleError, match=r"declare more than 1\.0 GiB \(member 'artifacts/huge.pkl' declares 2\.0 GiB"
    ):
        import_bundle(tar_bomb)
    assert time.monotonic() - started < 10  # refused from the header, not after inflating 2 GiB
    assert snapshot(store.home()) == before


def test_a_member_declaring_more_than_the_free_space_is_refused(tmp_path, monkeypatch):
    """A plain tar whose header declares 1 PiB (GNU base-256 size field); no limit stops it but
    the disk's free space."""
    monkeypatch.setenv(MAX_BYTES_ENV, "4096TiB")
    info = tarfile.TarInfo("artifacts/huge.pkl")
    info.size = 1 << 50
    file = tmp_path / "petabyte.tar"
    file.write_bytes(bundle_tar_members(tmp_path) + info.tobuf(format=tarfile.GNU_FORMAT) + bytes(4096))
    before = snapshot(store.home())
    with pytest.raises(BundleError, match=r"it declares 1024\.0 TiB so far .* free where the store is"):
        import_bundle(file)
    assert snapshot(store.home()) == before


def test_more_members_than_allowed_are_refused(tmp_path, monkeypatch):
    tar_file = tmp_path / "many.tar"
    with tarfile.open(tar_file, "w") as tar:
        for i in range(2000):
            tar.addfile(tarfile.TarInfo(f"src/f{i}"), io.BytesIO())
    zip_file = tmp_path / "many.zip"
    with zipfile.ZipFile(zip_file, "w") as zf:
        for i in range(2000):
            zf.writestr(f"src/f{i}", b"")
    monkeypatch.setenv(MAX_MEMBERS_ENV, "1000")
    for file in (tar_file, zip_file):
        with pytest.raises(
            BundleError, match=rf"{file.name}: it (has more than|declares 2000 members, more than) 1000"
        ):
            import_bundle(file)
    assert not store.bundles_root().exists() or list(store.bundles_root().rglob("*")) == []


def zip_declaring(tmp_path: Path, declared: int, real: int) -> Path:
    """A genuine bundle zip plus ``artifacts/huge.pkl``: ``real`` deflated zeros whose headers
    (local and central) are patched to declare ``declared`` bytes."""
    Greeter().pack("greeting", "Hi").save(version="v1")
    good = export_bundle("Greeter:v1", tmp_path / "good.zip")
    store.delete("Greeter:v1")
    file = tmp_path / "lying.zip"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED) as zf:
        for item in source.infolist():
            zf.writestr(item, source.read(item))
        zf.writestr("artifacts/huge.pkl", bytes(real))
    data = bytearray(file.read_bytes())
    with zipfile.ZipFile(file) as zf:
        info = zf.getinfo("artifacts/huge.pkl")
        local = info.header_offset
        # the central entry repeats the local header's fields from "version needed" to the sizes
        central = data.index(bytes(data[local + 4 : local + 26]), zf.start_dir) - 6
    assert data[central : central + 4] == b"PK\x01\x02"
    assert (
        struct.unpack_from("<I", data, local + 22)[0]
        == real
        == struct.unpack_from("<I", data, central + 24)[0]
    )
    struct.pack_into("<I", data, local + 22, declared)
    struct.pack_into("<I", data, central + 24, declared)
    file.write_bytes(bytes(data))
    return file


def test_a_zip_member_declaring_2_gib_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(MAX_BYTES_ENV, "1GiB")
    file = zip_declaring(tmp_path, declared=2 * GIB, real=MIB)
    before = snapshot(store.home())
    with pytest.raises(BundleError, match=r"member 'artifacts/huge.pkl' declares 2\.0 GiB"):
        import_bundle(file)
    assert snapshot(store.home()) == before


def test_a_zip_member_holding_more_than_it_declares_is_refused(tmp_path):
    file = zip_declaring(tmp_path, declared=1000, real=8 * MIB)
    with zipfile.ZipFile(file) as zf:
        assert zf.getinfo("artifacts/huge.pkl").file_size == 1000
    before = snapshot(store.home())
    with pytest.raises(BundleError, match="huge.pkl"):
        import_bundle(file)
    assert snapshot(store.home()) == before


def test_sizes_and_limits_from_the_environment(monkeypatch):
    assert parse_size("2GiB", "X") == parse_size("2G", "X") == 2 * GIB
    assert parse_size("512 MiB", "X") == 512 * MIB and parse_size("1000", "X") == 1000
    assert human(2 * GIB) == "2.0 GiB" and human(10) == "10 B"
    with pytest.raises(ConfigError, match="BENTOLITE_IMPORT_MAX_BYTES='lots'"):
        parse_size("lots", MAX_BYTES_ENV)
    monkeypatch.setenv(MAX_BYTES_ENV, "3GiB")
    monkeypatch.setenv(MAX_MEMBERS_ENV, "7")
    assert Limits.from_environment() == Limits(max_bytes=3 * GIB, max_members=7)
    monkeypatch.setenv(MAX_MEMBERS_ENV, "many")
    with pytest.raises(ConfigError, match="BENTOLITE_IMPORT_MAX_MEMBERS='many'"):
        Limits.from_environment()


def test_a_bundle_within_the_limits_imports(tmp_path, monkeypatch):
    Greeter().pack("greeting", "Hola").save(version="v1")
    file = export_bundle("Greeter:v1", tmp_path / "g.zip")
    store.delete("Greeter:v1")
    monkeypatch.setenv(MAX_MEMBERS_ENV, "200")
    assert import_bundle(file).tag == "Greeter:v1"


def test_an_oversized_bentolite_yaml_is_refused_unread(tmp_path):
    info = tarfile.TarInfo("bentolite.yaml")
    info.size = 5 * MIB
    file = tmp_path / "fat.tar"
    file.write_bytes(info.tobuf(format=tarfile.GNU_FORMAT) + bytes(info.size) + bytes(1024))
    with pytest.raises(BundleError, match="its bentolite.yaml declares 5242880 bytes"):
        import_bundle(file)


def test_a_zip_declaring_a_huge_member_count_is_refused_before_its_directory_is_read(tmp_path, monkeypatch):
    """The end record claims 65,000 members (zip64: a billion); zipfile would build an object per
    member before bentolite saw one, so the count is read from the record first."""
    file = tmp_path / "count.zip"
    with zipfile.ZipFile(file, "w") as zf:
        for i in range(3):
            zf.writestr(f"src/f{i}", b"")
    data = bytearray(file.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 65000, 65000)
    file.write_bytes(bytes(data))
    monkeypatch.setenv(MAX_MEMBERS_ENV, "1000")
    with pytest.raises(BundleError, match="count.zip: it declares 65000 members, more than 1000"):
        import_bundle(file)

    big = tmp_path / "zip64.zip"
    with zipfile.ZipFile(big, "w", allowZip64=True) as zf:
        zf.writestr("a", b"")
    data = bytearray(big.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 0xFFFF, 0xFFFF)  # "see the zip64 record"
    cd_size, cd_offset = struct.unpack_from("<II", data, end + 12)
    zip64 = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, 10**9, 10**9, cd_size, cd_offset)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, end, 1)
    big.write_bytes(bytes(data[:end]) + zip64 + locator + bytes(data[end:]))
    with pytest.raises(BundleError, match="it declares 1000000000 members"):
        import_bundle(big)
