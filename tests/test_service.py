"""The Service class and its decorators (bentolite/service.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sample_services import Echo, EveryArtifact, IrisClassifier

import bentolite
from bentolite import BentoService, Service, api, artifacts, env, ver
from bentolite.adapters import ClipperFloatsInput, DataframeInput, JsonInput
from bentolite.artifacts import PickleArtifact
from bentolite.exceptions import BentoliteError, InvalidArgument, NotFound, ServiceError


def test_public_api_is_exported():
    for name in ("Service", "BentoService", "api", "artifacts", "env", "ver", "load"):
        assert name in bentolite.__all__
        assert getattr(bentolite, name) is not None
    assert BentoService is Service


def test_apis_are_collected_in_definition_order_with_routes():
    svc = IrisClassifier()
    assert list(svc.apis) == ["predict", "predict_clipper"]
    assert svc.apis["predict"].route == "predict"
    assert isinstance(svc.apis["predict_clipper"].adapter, ClipperFloatsInput)
    assert svc.apis["predict_clipper"].clipper_input_type == "floats"
    assert svc.name == "IrisClassifier" and svc.version is None


def test_direct_call_converts_through_the_adapter():
    svc = Echo()
    assert svc.frame([{"a": 1, "b": 2}, {"a": 3, "b": 4}]).tolist() == [3, 7]
    assert svc.floats([[1, 2], [3]]) == ["float32", "float32"]
    assert svc.ints([[1, 2], [3]]) == [3, 3]
    assert svc.strings(["abc"]) == ["cba"]
    assert svc.array([1, 2]).dtype == np.int64


def test_seed_guide_predict_clipper_returns_array_0(iris_model):
    clf, X = iris_model
    svc = IrisClassifier()
    assert svc.pack("model", clf) is svc
    result = svc.predict_clipper([X[0]])
    assert isinstance(result, np.ndarray) and result.tolist() == [0]
    assert svc.predict(pd.DataFrame(X[:3])).tolist() == [0, 0, 0]


def test_api_method_still_reachable_on_the_class():
    assert IrisClassifier.predict.spec.name == "predict"


def test_env_accepts_pip_dependencies_alias():
    @env(pip_dependencies=["scikit-learn"])
    class S(Service):
        @api(input=JsonInput())
        def f(self, x):
            return x

    assert S.env_spec().pip_packages == ("scikit-learn",)


def test_ver_prefixes_versions():
    assert EveryArtifact.version_prefix() == "1.2."
    assert IrisClassifier.version_prefix() == ""


def test_api_needs_an_adapter_instance():
    with pytest.raises(InvalidArgument, match=r"needs an instance: DataframeInput\(\)"):
        api(input=DataframeInput)


def test_api_rejects_non_adapter():
    with pytest.raises(InvalidArgument, match="takes an adapter"):
        api(input="json")


def test_api_on_a_function_without_input_parameter():
    with pytest.raises(ServiceError, match=r"must take \(self, input\)"):

        @api(input=JsonInput())
        def f(self):
            return 1


def test_api_reserved_route():
    with pytest.raises(InvalidArgument, match="not a usable route"):
        api(input=JsonInput(), route="healthz")


def test_api_reserved_name_becomes_route():
    with pytest.raises(ServiceError, match="server's own route /metrics"):

        class S(Service):
            @api(input=JsonInput())
            def metrics(self, x):
                return x


def test_duplicate_api_names():
    with pytest.raises(ServiceError, match="two APIs are named 'p'"):

        class S(Service):
            @api(input=JsonInput(), name="p")
            def a(self, x):
                return x

            @api(input=JsonInput(), name="p")
            def b(self, x):
                return x


def test_duplicate_routes():
    with pytest.raises(ServiceError, match="share the route /same"):

        class S(Service):
            @api(input=JsonInput(), route="same")
            def a(self, x):
                return x

            @api(input=JsonInput(), route="same")
            def b(self, x):
                return x


def test_batch_knobs_must_be_positive():
    with pytest.raises(InvalidArgument, match="max_batch_size=0"):

        class S(Service):
            @api(input=JsonInput(), batch=True, max_batch_size=0)
            def a(self, x):
                return x


def test_class_decorators_need_a_service_subclass():
    with pytest.raises(ServiceError, match="subclass of bentolite.Service"):
        artifacts([PickleArtifact("m")])(object)
    with pytest.raises(ServiceError, match="@env must decorate"):
        env(pip_packages=["x"])(dict)
    with pytest.raises(InvalidArgument, match="non-negative integer"):
        ver(1, -1)


def test_artifacts_decorator_validates_its_list():
    with pytest.raises(InvalidArgument, match="list of Artifact objects"):
        artifacts(["model"])
    with pytest.raises(InvalidArgument, match="more than once"):
        artifacts([PickleArtifact("m"), PickleArtifact("m")])


def test_env_validates_values():
    with pytest.raises(InvalidArgument, match="python_version"):
        env(python_version="three")
    with pytest.raises(InvalidArgument, match="list of strings"):
        env(pip_packages=[1])


def test_subclass_inherits_and_overrides_apis():
    class Base(Service):
        @api(input=JsonInput())
        def a(self, x):
            return "base"

    class Child(Base):
        @api(input=JsonInput())
        def a(self, x):
            return "child"

        @api(input=JsonInput())
        def b(self, x):
            return "b"

    assert list(Child().apis) == ["a", "b"]
    assert Child().a(1) == "child" and Base().a(1) == "base"


def test_get_api_names_the_known_apis():
    with pytest.raises(NotFound, match="APIs: predict, predict_clipper"):
        IrisClassifier().get_api("nope")


def test_errors_share_one_root():
    assert issubclass(ServiceError, BentoliteError) and issubclass(NotFound, BentoliteError)
