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
