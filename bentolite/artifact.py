"""Another name for :mod:`bentolite.artifacts`, for code written against BentoML's
``bentoml.artifact`` module."""

from bentolite.artifacts import (  # noqa: F401
    Artifact,
    JoblibArtifact,
    JSONArtifact,
    NumpyArtifact,
    PickleArtifact,
    SklearnModelArtifact,
    TextArtifact,
)
