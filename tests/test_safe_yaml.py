"""YAML read and written by bentolite (bentolite/safe_yaml.py)."""

from __future__ import annotations

import pytest

from bentolite import safe_yaml
from bentolite.bundle_meta import ArtifactRecord, BundleMeta
from bentolite.exceptions import BundleError


def test_repeated_values_are_written_out_and_read_back():
    shared = ["numpy==2.0.0", "pandas==2.2.0"]
    data = {"a": shared, "b": shared, "c": {"d": shared}}
    text = safe_yaml.dump(data)
    assert "&" not in text and "*" not in text
    assert safe_yaml.load(text, "x.yaml", BundleError) == data


def test_a_bundle_record_sharing_objects_round_trips():
    options = {"encoding": "utf-8"}
    meta = BundleMeta(
        name="N",
        version="v1",
        created_at="2026-01-01T00:00:00Z",
        bentolite_version="0.1.0",
        python_version="3.11.7",
        module="m",
        service_class="S",
        artifacts=(
            ArtifactRecord("a", "TextArtifact", "a.txt", options),
            ArtifactRecord("b", "TextArtifact", "b.txt", options),
        ),
        env={"pip_packages": ["x"], "locked": ["x"]},
    )
    assert BundleMeta.from_yaml(meta.to_yaml()) == meta


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: &x 1\nb: *x\n", "x.yaml:2:4: not valid YAML: aliases (*name) are not accepted"),
        ("a: &x [1]\nb:\n  <<: *x\n", "aliases (*name) are not accepted"),
        ("a: " + "[" * 100 + "]" * 100, "nested more than 64 levels deep"),
        ("a: [1, 2\n", "x.yaml:2:1: not valid YAML: expected ',' or ']', but got '<stream end>'"),
        ("a: 'x\n", "x.yaml:2:1: not valid YAML: found unexpected end of stream"),
    ],
)
def test_refused_yaml_is_one_line_naming_line_and_column(text, fragment):
    with pytest.raises(BundleError) as info:
        safe_yaml.load(text, "x.yaml", BundleError)
    assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)
