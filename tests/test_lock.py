"""The bundle's lock and the version checks around it (bentolite/lock.py, bentolite/bundle.py)."""

from __future__ import annotations

import logging
import platform
from importlib.metadata import distributions, version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sample_services import IrisClassifier

import bentolite
from bentolite import lock
from bentolite.bentofile import BuildConfig
from bentolite.exceptions import ConfigError
from bentolite.image_build import write_build_context
from bentolite.requirements import resolve_lines
from bentolite.self_wheel import runtime_requirements


def test_the_closure_is_every_installed_dependency_at_its_installed_version() -> None:
    pins, missing = lock.closure([Requirement("scikit-learn")], lock.self_requirements())
    assert missing == []
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
    found = {p.name: p.version for p in pins}
    assert all(installed[name] == v for name, v in found.items())
    # everything each pinned distribution requires (for this Python) is pinned too
    for pin in pins:
        dist = next(d for d in distributions() if canonicalize_name(d.metadata["Name"]) == pin.name)
        for text in dist.requires or []:
            child = Requirement(text)
            if child.marker is None or child.marker.evaluate({"extra": ""}):
                assert canonicalize_name(child.name) in found, f"{pin.name} needs {child.name}"
    by_name = {p.name: p for p in pins}
    assert "scikit-learn" in by_name["numpy"].via and "bentolite" in by_name["starlette"].via
    assert {canonicalize_name(Requirement(r).name) for r in runtime_requirements()} <= set(found)
    assert not {"bentolite", "docker", "rich", "uv"} & set(found)


def test_lock_has_the_index_hashes_and_renders_for_pip(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        locked = lock.lock(resolve_lines(["scikit-learn"]), python_version="3.11")
    assert locked.complete
    assert locked.hashed, caplog.text  # uv is a dependency and the index is reachable here
    text = locked.render()
    assert lock.read_pins(text) == locked.versions()
    assert all(h.startswith("sha256:") for p in locked.pins for h in p.hashes)
    assert lock.parse_hashes(text) == {p.name: list(p.hashes) for p in locked.pins}


def test_without_uv_or_index_the_lock_has_no_hashes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    lock.index_hashes.cache_clear()
    monkeypatch.setattr(lock, "_uv", lambda: None)
    with caplog.at_level(logging.WARNING):
        locked = lock.lock(resolve_lines(["click"]))
    assert locked.complete and not locked.hashed and locked.pins
    assert "the lock has no hashes: uv is not installed" in caplog.text
    lock.index_hashes.cache_clear()


def test_an_unpinnable_requirement_makes_the_lock_incomplete() -> None:
    locked = lock.lock(resolve_lines(["no-such-package-bentolite-test", "click"]), hashes=False)
    assert not locked.complete and locked.unpinned == ("no-such-package-bentolite-test",)
    assert "no-such-package-bentolite-test\n" in locked.render()


def test_lock_false_and_its_bentoml_name() -> None:
    for key in ("lock", "lock_packages"):
        config = BuildConfig.from_yaml(f'service: "a.py:B"\npython:\n  {key}: false\n')
        assert config.python.lock is False
    with pytest.raises(ConfigError, match=r"bentofile.yaml:4: python.lock_packages: is another name"):
        BuildConfig.from_yaml('service: "a.py:B"\npython:\n  lock: true\n  lock_packages: false\n')


def test_loose_bundle_installs_with_dependencies(iris_model, tmp_path: Path) -> None:
    from bentolite.bundle import save_bundle

    path = save_bundle(IrisClassifier().pack("model", iris_model[0]), target=tmp_path / "b", lock=False)
    assert (path / "env/requirements.txt").read_text() == "scikit-learn\n"
    assert yaml.safe_load((path / "bentolite.yaml").read_text())["env"]["locked"] is False
    assert "--no-deps" not in (path / "Dockerfile").read_text()


# --- Python and package versions ----------------------------------------------------------------


def _other_python() -> str:
    major, minor = platform.python_version_tuple()[:2]
    return f"{major}.{int(minor) + 1}"


def test_save_warns_when_the_image_python_is_not_the_pickling_one(
    iris_model, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bentolite.bundle import save_bundle
    from bentolite.env_spec import EnvSpec

    monkeypatch.setattr(lock, "index_hashes", lambda *args, **kwargs: None)  # not what is tested

    svc = IrisClassifier().pack("model", iris_model[0])
    with caplog.at_level(logging.WARNING, logger="bentolite.bundle"):
        path = save_bundle(svc, target=tmp_path / "b", env=EnvSpec(python_version=_other_python()))
    assert f"the image runs Python {_other_python()} but the artifacts were pickled on Python" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bentolite.bundle"):
        write_build_context(path, tmp_path / "ctx", base_image="python:3.8-slim")
    assert "the image runs Python 3.8" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bentolite.bundle"):
        write_build_context(path, tmp_path / "ctx2", base_image=f"python:{platform.python_version()}-slim")
        IrisClassifier().pack("model", iris_model[0]).save_to_dir(tmp_path / "same")
    assert caplog.text == ""


def test_load_warns_when_python_or_pickling_packages_differ(
    iris_model, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = Path(IrisClassifier().pack("model", iris_model[0]).save_to_dir(tmp_path / "b"))
    meta_file = path / "bentolite.yaml"
    meta = yaml.safe_load(meta_file.read_text())
    assert meta["pickled_with"] == {"cloudpickle": version("cloudpickle"), "numpy": version("numpy")}
    with caplog.at_level(logging.WARNING, logger="bentolite.bundle"):
        bentolite.load(path)
    assert caplog.text == ""

    numpy_major = int(version("numpy").split(".")[0])
    meta["python_version"] = f"{_other_python()}.0"
    meta["pickled_with"] = {"cloudpickle": version("cloudpickle"), "numpy": f"{numpy_major - 1}.26.4"}
    meta_file.write_text(yaml.safe_dump(meta))
    with caplog.at_level(logging.WARNING, logger="bentolite.bundle"):
        loaded = bentolite.load(path)
    assert loaded.predict_clipper([iris_model[1][0]]).tolist() == [0]  # a warning, not an error
    (record,) = caplog.records
    message = record.getMessage()
    assert f"Python {platform.python_version_tuple()[0]}." in message
    assert f"Python {_other_python()} saved it" in message
    assert f"numpy {version('numpy')} is installed, numpy {numpy_major - 1}.26.4 saved it" in message
    assert "cloudpickle" not in message
