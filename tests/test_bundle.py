"""Saving and loading bundles (bentolite/bundle.py)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sample_services import Greeter, IrisClassifier

import bentolite
from bentolite import store
from bentolite.artifacts import PickleArtifact
from bentolite.bundle import new_version, save_bundle
from bentolite.exceptions import BundleError, InvalidArgument, ServiceError


def iris(iris_model) -> IrisClassifier:
    return IrisClassifier().pack("model", iris_model[0])


def test_seed_guide_flow_end_to_end(iris_model, store_home):
    _, X = iris_model
    svc = iris(iris_model)
    path = Path(svc.save())
    assert path.parent.parent == store_home / "bundles"
    assert path.parent.name == "IrisClassifier" and path.name == svc.version
    assert re.fullmatch(r"\d{14}_[0-9A-F]{6}", svc.version)
    for part in (
        "bentolite.yaml",
        "src/sample_services.py",
        "artifacts/model.pkl",
        "env/requirements.txt",
        "Dockerfile",
        "README.md",
    ):
        assert (path / part).is_file(), part
    loaded = bentolite.load(f"IrisClassifier:{svc.version}")
    assert loaded.predict_clipper([X[0]]).tolist() == [0]
    assert loaded.predict(pd.DataFrame(X[[0, 60, 120]])).tolist() == [0, 1, 2]
    assert loaded.version == svc.version and loaded.bundle_path == path


def test_metadata_records_everything(iris_model):
    path = Path(iris(iris_model).save(labels={"team": "ml"}))
    meta = yaml.safe_load((path / "bentolite.yaml").read_text())
    assert meta["name"] == "IrisClassifier"
    assert meta["service"] == {"module": "sample_services", "class": "IrisClassifier"}
    assert meta["bentolite_version"] == bentolite.__version__
    assert meta["python_version"].startswith(f"{sys.version_info[0]}.{sys.version_info[1]}")
    assert meta["labels"] == {"team": "ml"}
    clipper_api = next(a for a in meta["apis"] if a["name"] == "predict_clipper")
    assert clipper_api["adapter"]["type"] == "ClipperFloatsInput"
    assert clipper_api["clipper_input_type"] == "floats"
    digest = hashlib.sha256((path / "artifacts/model.pkl").read_bytes()).hexdigest()
    assert meta["artifacts"] == [
        {"name": "model", "kind": "PickleArtifact", "file": "model.pkl", "options": {}, "sha256": digest}
    ]
    assert meta["env"]["pip_packages"] == ["scikit-learn"]


def test_requirements_are_the_full_lock_of_what_is_installed(iris_model):
    from importlib.metadata import version

    from bentolite.lock import read_pins

    path = Path(iris(iris_model).save())
    pins = read_pins((path / "env/requirements.txt").read_text())
    # the service's package, what it needs, and what bentolite needs to serve it
    for name in ("scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl", "cloudpickle", "pandas"):
        assert pins[name] == version(name), name
    for name in ("starlette", "uvicorn", "pyyaml", "attrs", "click", "pyzmq", "packaging"):
        assert pins[name] == version(name), name
    # not: bentolite (its wheel is in the bundle), what only builds images, test tools
    assert not {"bentolite", "docker", "rich", "uv", "pytest", "ruff"} & set(pins)
    meta = yaml.safe_load((path / "bentolite.yaml").read_text())
    assert meta["env"]["requirements"] == [f"scikit-learn=={version('scikit-learn')}"]
    assert meta["env"]["locked"] is True
    assert meta["pickled_with"] == {"cloudpickle": version("cloudpickle"), "numpy": version("numpy")}


def test_bundle_carries_an_installable_bentolite_wheel(iris_model):
    path = Path(iris(iris_model).save())
    wheels = list((path / "env/wheels").glob("bentolite-*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as zf:
        names = zf.namelist()
        metadata = zf.read(f"bentolite-{bentolite.__version__}.dist-info/METADATA").decode()
        assert zf.testzip() is None
    assert "bentolite/service.py" in names
    assert any(n.startswith("bentolite/templates/Dockerfile.") for n in names)
    assert "Requires-Dist: pyzmq" in metadata
    # an image runs the bundle without the image-building tools
    assert 'Requires-Dist: docker>=6.0; extra == "build"' in metadata
    assert 'Requires-Dist: rich>=12.0; extra == "build"' in metadata
    assert f"bentolite-{bentolite.__version__}.dist-info/RECORD" in names


def test_versions_are_unique_per_save(iris_model):
    svc = iris(iris_model)
    first, second = svc.save(), svc.save()
    assert first != second
    assert len({new_version() for _ in range(50)}) == 50


def test_ver_prefix_and_explicit_version(iris_model):
    from sample_services import EveryArtifact

    assert EveryArtifact.version_prefix() == "1.2."
    path = Path(iris(iris_model).save(version="v7"))
    assert path.name == "v7"
    with pytest.raises(BundleError, match="already exists"):
        iris(iris_model).save(version="v7")
    with pytest.raises(InvalidArgument, match="version 'a b' is not valid"):
        iris(iris_model).save(version="a b")


def test_failure_mid_save_leaves_nothing(iris_model, store_home, monkeypatch):
    def explode(self, obj, path):
        path.write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(PickleArtifact, "save_file", explode)
    with pytest.raises(OSError, match="disk full"):
        iris(iris_model).save(version="broken")
    bundles = store_home / "bundles"
    assert not any(p.is_file() for p in bundles.rglob("*"))
    assert not (bundles / "IrisClassifier" / "broken").exists()
    assert store.list_bundles() == []


def test_bundle_loads_in_a_fresh_process_with_clean_sys_path(iris_model, tmp_path):
    path = iris(iris_model).save_to_dir(tmp_path / "bundle")
    code = (
        "import sys, json, bentolite\n"
        "assert not any('tests' in p for p in sys.path), sys.path\n"
        f"svc = bentolite.load({path!r})\n"
        "print(json.dumps(svc.predict_clipper([[6.5, 3.0, 5.8, 2.2]]).tolist()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [2]


def test_two_versions_load_side_by_side(tmp_path):
    a = Greeter().pack("greeting", "Hello").save_to_dir(tmp_path / "a")
    b = Greeter().pack("greeting", "Bonjour").save_to_dir(tmp_path / "b")
    svc_a, svc_b = bentolite.load(a), bentolite.load(b)
    assert type(svc_a) is not type(svc_b)
    assert svc_a.greet(["Ann"]) == ["Hello, Ann"]
    assert svc_b.greet(["Ann"]) == ["Bonjour, Ann"]


def test_resave_a_loaded_service(tmp_path):
    first = bentolite.load(Greeter().pack("greeting", "Hi").save_to_dir(tmp_path / "a"))
    second = bentolite.load(first.save_to_dir(tmp_path / "b"))
    assert second.greet(["x"]) == ["Hi, x"]
    assert (tmp_path / "b/src/sample_services.py").is_file()


def test_save_to_existing_dir_is_refused(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(BundleError, match="already exists"):
        Greeter().pack("greeting", "x").save_to_dir(tmp_path / "taken")


def test_service_without_api_cannot_be_saved(tmp_path):
    from bentolite import Service

    class Empty(Service):
        pass

    with pytest.raises(ServiceError, match="has no API"):
        Empty().save_to_dir(tmp_path / "e")


def test_not_a_bundle(tmp_path):
    with pytest.raises(bentolite.BentoliteError, match="not a bundle directory"):
        bentolite.load(str(tmp_path / "nothing"))


def test_import_error_in_bundle_source_is_reported(tmp_path):
    path = Path(Greeter().pack("greeting", "x").save_to_dir(tmp_path / "b"))
    (path / "src/sample_services.py").write_text("import not_a_module_anywhere\n")
    with pytest.raises(BundleError, match="No module named 'not_a_module_anywhere'"):
        bentolite.load(path)


def test_each_bundle_imports_its_own_sibling_modules(tmp_path, monkeypatch):
    """Two versions of a service whose helper module differs load side by side, each with its own."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "greeting_helpers.py").write_text('GREETING = "Hello"\n')
    (source / "helped_service.py").write_text(
        "from bentolite import Service, api\n"
        "from bentolite.adapters import JsonInput\n"
        "from greeting_helpers import GREETING\n\n\n"
        "class Helped(Service):\n"
        "    @api(input=JsonInput())\n"
        "    def hi(self, name):\n"
        '        return f"{GREETING}, {name}"\n'
    )
    monkeypatch.syspath_prepend(str(source))
    from helped_service import Helped

    first = Path(
        save_bundle(
            Helped(),
            target=tmp_path / "v1",
            extra_files=[("greeting_helpers.py", source / "greeting_helpers.py")],
        )
    )
    second = tmp_path / "v2"
    shutil.copytree(first, second)
    (second / "src" / "greeting_helpers.py").write_text('GREETING = "Bonjour"\n')
    for name in ("helped_service", "greeting_helpers"):
        monkeypatch.delitem(sys.modules, name)

    v1, v2 = bentolite.load(first), bentolite.load(second)
    assert v1.hi("Ann") == "Hello, Ann"
    assert v2.hi("Ann") == "Bonjour, Ann"
    assert sys.modules["greeting_helpers"].GREETING == "Hello"  # what loaded first keeps its name
