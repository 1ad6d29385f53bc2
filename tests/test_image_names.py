from __future__ import annotations

import re

import pytest

from bentolite.exceptions import InvalidArgument
from bentolite.image_names import (
    check_image_name,
    default_image_name,
    is_clipper_name,
    split_image_name,
    to_clipper_name,
    with_registry,
)

CLIPPER_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("IrisClassifier", "irisclassifier"),
        ("predict_clipper", "predict-clipper"),
        ("1.0.20240102030405_ABCDEF", "1-0-20240102030405-abcdef"),
        ("--Model__v2--", "model-v2"),
        ("v1-beta", "v1-beta"),
        ("1", "1"),
        ("Ünïcode name", "n-code-name"),
    ],
)
def test_to_clipper_name(given: str, expected: str) -> None:
    assert to_clipper_name(given) == expected
    assert CLIPPER_RE.match(expected) and is_clipper_name(expected)


@pytest.mark.parametrize("given", ["", "___", "..", "éé"])
def test_to_clipper_name_impossible(given: str) -> None:
    with pytest.raises(InvalidArgument, match="model name .* cannot be made a valid Clipper and Docker name"):
        to_clipper_name(given, "model name")


def test_default_image_names() -> None:
    assert default_image_name("IrisClassifier", "20240102_AB12") == "irisclassifier:20240102-ab12"
    assert (
        default_image_name("IrisClassifier", "1.2.3", "clipper", "predict_clipper")
        == "clipper-irisclassifier-predict-clipper:1-2-3"
    )
    with pytest.raises(InvalidArgument):
        default_image_name("Iris", "1", "clipper", None)
    long_version = "v" + "_" * 50 + "x" * 200
    assert len(default_image_name("a", long_version).split(":")[1]) <= 128


@pytest.mark.parametrize(
    "image",
    [
        "iris",
        "iris:1",
        "team/iris:v1.2_3",
        "127.0.0.1:5000/clipper-iris-predict:1",
        "localhost/iris",
        "registry.example.com/a/b/c:latest",
    ],
)
def test_valid_image_names(image: str) -> None:
    assert check_image_name(image) == image


@pytest.mark.parametrize(
    ("image", "complaint"),
    [
        ("Iris:1", "not a valid repository name"),
        ("iris:-1", "tag '-1' is not valid"),
        ("iris@sha256:abc", "digest"),
        ("team//iris", "not a valid repository name"),
        ("iris:" + "x" * 129, "is not valid"),
    ],
)
def test_invalid_image_names(image: str, complaint: str) -> None:
    with pytest.raises(InvalidArgument, match=complaint):
        check_image_name(image)


def test_split_and_registry() -> None:
    assert split_image_name("127.0.0.1:5000/a/b:v1") == ("127.0.0.1:5000/a/b", "v1")
    assert split_image_name("127.0.0.1:5000/a/b") == ("127.0.0.1:5000/a/b", None)
    assert split_image_name("b:v1") == ("b", "v1")
    assert with_registry("b:v1", "127.0.0.1:5000/") == "127.0.0.1:5000/b:v1"
    assert with_registry("b:v1", None) == "b:v1"
