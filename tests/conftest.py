"""Fixtures shared by the whole suite."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))


@pytest.fixture(autouse=True)
def store_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty store (BENTOLITE_HOME), never the user's."""
    home = tmp_path_factory.mktemp("bentolite_home")
    monkeypatch.setenv("BENTOLITE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def iris_model():
    """A small SVM trained on the iris data set, and the data."""
    from sklearn import datasets, svm

    iris = datasets.load_iris()
    clf = svm.SVC(gamma="scale").fit(iris.data, iris.target)
    return clf, iris.data
