"""The local store (bentolite/store.py)."""

from __future__ import annotations

import pytest
from sample_services import Greeter

from bentolite import store
from bentolite.exceptions import InvalidArgument, NotFound


def save(greeting: str, version: str) -> str:
    return Greeter().pack("greeting", greeting).save(version=version)


def test_list_get_latest_delete(store_home):
    assert store.list_bundles() == []
    save("a", "v1")
    save("b", "v2")
    tags = [b.tag for b in store.list_bundles()]
    assert tags == ["Greeter:v1", "Greeter:v2"]
    assert store.latest("Greeter").version == "v2"
    assert store.get("Greeter:latest").version == "v2"
    assert store.get("Greeter").version == "v2"
    assert store.get("Greeter:v1").path == store_home / "bundles/Greeter/v1"
    info = store.get("Greeter:v1").to_dict()
    assert {"tag", "name", "version", "created_at", "path", "size_bytes", "apis"} <= set(info)
    assert info["size_bytes"] > 0
    assert info["apis"] == [
        {"name": "greet", "route": "greet", "input": "ClipperStringsInput", "clipper_input_type": "strings"}
    ]
    assert store.delete("Greeter:v2").version == "v2"
    assert store.latest("Greeter").version == "v1"
    store.delete("Greeter:v1")
    assert not (store_home / "bundles/Greeter").exists()


def test_latest_is_by_creation_time_not_version_text():
    save("a", "zzz")
    save("b", "aaa")
    assert store.latest("Greeter").version == "aaa"


def test_missing_and_invalid_tags():
    with pytest.raises(NotFound, match="no bundle named 'Nope'"):
        store.get("Nope:latest")
    save("a", "v1")
    with pytest.raises(NotFound, match="no bundle Greeter:v9"):
        store.get("Greeter:v9")
    with pytest.raises(InvalidArgument, match="bundle name"):
        store.get("../etc:v1")
    with pytest.raises(InvalidArgument, match="version"):
        store.get("Greeter:../../x")


def test_resolve_paths_and_tags(tmp_path):
    path = save("a", "v1")
    assert str(store.resolve("Greeter:v1")) == path
    assert str(store.resolve(path)) == path
    with pytest.raises(NotFound, match="not a bundle directory"):
        store.resolve(str(tmp_path))


def test_unfinished_temp_dirs_are_invisible(store_home):
    save("a", "v1")
    (store_home / "bundles/Greeter/.tmp-v2-abcd").mkdir()
    assert [b.version for b in store.list_bundles("Greeter")] == ["v1"]


@pytest.mark.parametrize("bad", ["Greeter\n", "Greeter\n:v1", "Greeter:v1\n", "Gr\neeter:v1", "\nGreeter"])
def test_tags_are_matched_in_full(bad):
    save("a", "v1")
    with pytest.raises(InvalidArgument):
        store.get(bad)


def test_a_name_ending_in_a_newline_is_never_saved(store_home):
    svc = Greeter().pack("greeting", "a")
    svc._name = "Greeter\n"
    with pytest.raises(InvalidArgument, match="bundle name"):
        svc.save(version="v1")
    with pytest.raises(InvalidArgument, match="version"):
        Greeter().pack("greeting", "a").save(version="v1\n")
    assert not (store_home / "bundles").exists() or store.list_bundles() == []


# --- staging folders left by killed writers ------------------------------------------------------


def _save_and_import_forever(archive: str) -> None:
    """A writer to be killed: saves and imports in a loop, never stopping by itself."""
    from bentolite.archive import import_bundle

    while True:
        Greeter().pack("greeting", "x" * 2_000_000).save()
        import_bundle(archive, force=True)


def test_writers_killed_mid_write_leave_nothing_the_next_write_keeps(store_home, tmp_path):
    """Real processes SIGKILLed at random points; the store removes their staging folders on its
    next write, and listings never show them."""
    import multiprocessing
    import random
    import time

    from bentolite.archive import export_bundle

    archive = str(export_bundle(save("a", "v1"), tmp_path / "g.bento"))
    root = store.bundles_root()
    rng = random.Random(1234)
    left_behind = 0
    for _ in range(20):
        writer = multiprocessing.get_context("fork").Process(target=_save_and_import_forever, args=(archive,))
        writer.start()
        time.sleep(rng.uniform(0.03, 0.25))
        writer.kill()
        writer.join(10)
        assert writer.exitcode == -9
        staged = list(root.glob("*/.tmp-*"))
        left_behind += len(staged)
        listed = store.list_bundles()
        assert all(not b.path.name.startswith(".tmp-") for b in listed)
        assert all((b.path / "bentolite.yaml").is_file() for b in listed)
        if staged:
            assert all(store.is_stale(p) for p in staged)
            save("b", f"after{_}")  # the next write of the store
            assert not list(root.glob("*/.tmp-*")), list(root.glob("*/.tmp-*"))
    assert left_behind >= 5, left_behind  # the kills did land mid-write


def test_a_live_writers_staging_folder_is_kept(store_home):
    save("a", "v1")
    mine = store.staging_path(store.bundles_root() / "Greeter", "v2")
    mine.mkdir()
    unowned_new = store.bundles_root() / "Greeter" / ".tmp-v3-abcd"
    unowned_new.mkdir()
    assert not store.is_stale(mine) and not store.is_stale(unowned_new)
    save("b", "v4")
    assert mine.is_dir() and unowned_new.is_dir()
    assert [b.version for b in store.list_bundles()] == ["v1", "v4"]
    import os

    os.utime(unowned_new, (0, 0))  # written long ago by a writer that recorded no owner
    save("c", "v5")
    assert mine.is_dir() and not unowned_new.exists()
