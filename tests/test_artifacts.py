"""Artifact kinds (bentolite/artifacts.py): round trips through a bundle, and every error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sample_services import EveryArtifact, IrisClassifier, weights

import bentolite
from bentolite import Service, api, artifacts
from bentolite.adapters import JsonInput
from bentolite.artifacts import Artifact, NumpyArtifact, PickleArtifact, TextArtifact
from bentolite.exceptions import ArtifactError, InvalidArgument


def packed_every_artifact(iris_model):
    clf, _ = iris_model
    svc = EveryArtifact()
    svc.pack("pickled", {"lambda": lambda x: x + 1})
    svc.pack("joblibbed", np.ones((3, 3)))
    svc.pack("estimator", clf)
    svc.pack("config", {"threshold": 0.5, "labels": ["a", "b"]})
    svc.pack("vocab", "héllo\nwörld")
    svc.pack("weights", weights())
    return svc


def test_every_kind_round_trips(iris_model, tmp_path):
    clf, X = iris_model
    path = packed_every_artifact(iris_model).save_to_dir(tmp_path / "b")
    files = sorted(p.name for p in (Path(path) / "artifacts").iterdir())
    assert files == [
        "config.json",
        "estimator.joblib",
        "joblibbed.joblib",
        "pickled.pkl",
        "vocab.txt",
        "weights.npy",
    ]
    loaded = bentolite.load(path)
    a = loaded.artifacts
    assert a.pickled["lambda"](1) == 2
    assert a.joblibbed.shape == (3, 3)
    assert a.estimator.predict(X[:1]).tolist() == clf.predict(X[:1]).tolist()
    assert a.config == {"threshold": 0.5, "labels": ["a", "b"]}
    assert a.vocab == "héllo\nwörld"
    np.testing.assert_array_equal(a.weights, weights())
    assert a.weights.dtype == np.float32
    assert loaded.describe({}) == {"config": a.config, "sum": 15.0}


def test_pack_undeclared_name():
    with pytest.raises(ArtifactError, match=r"declares no artifact of that name \(declared: model\)"):
        IrisClassifier().pack("modle", object())


def test_reading_an_unpacked_artifact():
    with pytest.raises(ArtifactError, match="declared but not packed"):
        IrisClassifier().artifacts.model  # noqa: B018


def test_save_with_unpacked_artifact_names_it(tmp_path):
    with pytest.raises(ArtifactError, match="not packed: model"):
        IrisClassifier().save_to_dir(tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_unpicklable_object_is_a_clear_error_and_leaves_nothing(tmp_path, store_home):
    def gen():
        yield 1

    svc = IrisClassifier().pack("model", gen())
    with pytest.raises(ArtifactError, match="generator object cannot be pickled"):
        svc.save()
    leftovers = list((store_home / "bundles").rglob("*")) if (store_home / "bundles").exists() else []
    assert [p for p in leftovers if p.is_file()] == []


def test_kind_specific_checks():
    with pytest.raises(ArtifactError, match="needs a str"):
        TextArtifact("t").check(b"bytes")
    with pytest.raises(ArtifactError, match="needs a numpy.ndarray"):
        NumpyArtifact("w").check([1, 2])
    with pytest.raises(ArtifactError, match="arrays of Python objects"):
        NumpyArtifact("w").check(np.array([object()]))


def test_invalid_artifact_name():
    with pytest.raises(InvalidArgument, match="not valid"):
        PickleArtifact("my-model")


class UpperText(Artifact):
    """A custom kind: text stored upper-cased, read back lower-cased."""

    extension = ".up"

    def save_file(self, obj, path):
        path.write_text(obj.upper())

    def load_file(self, path):
        return path.read_text().lower()


def test_custom_kind_round_trips(tmp_path):
    # the class lives in this module, which the bundle copies as its service source
    path = CustomKindService().pack("word", "abc").save_to_dir(tmp_path / "b")
    assert (Path(path) / "artifacts" / "word.up").read_text() == "ABC"
    assert bentolite.load(path).artifacts.word == "abc"


@artifacts([UpperText("word")])
class CustomKindService(Service):
    @api(input=JsonInput())
    def word(self, _):
        return self.artifacts.word


def test_corrupt_artifact_file_names_the_file(tmp_path):
    path = Path(CustomKindService().pack("word", "abc").save_to_dir(tmp_path / "b"))
    (path / "artifacts" / "word.up").unlink()
    with pytest.raises(ArtifactError, match="word.up is missing"):
        bentolite.load(path)


def test_attribute_access_follows_every_re_pack_and_load(tmp_path):
    @artifacts([TextArtifact("note")])
    class Noted(Service):
        @api(input=JsonInput())
        def read(self, _):
            return self.artifacts.note

    svc = Noted()
    svc.pack("note", "first")
    assert svc.artifacts.note == "first" and svc.read(0) == "first"  # now a kept attribute
    svc.pack("note", "second")
    assert svc.artifacts.note == "second" and svc.read(0) == "second"
    (tmp_path / "note.txt").write_text("from a file")
    svc.artifacts.pack_file("note", tmp_path / "note.txt")
    assert svc.artifacts.note == "from a file"
    svc.artifacts.save(tmp_path / "saved")
    (tmp_path / "saved" / "note.txt").write_text("loaded")
    svc.artifacts.load(tmp_path / "saved")
    assert svc.artifacts.note == "loaded" and svc.artifacts["note"] == "loaded"
