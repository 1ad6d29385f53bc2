"""bentolite's side of the benchmark: the same pickled iris model (``IRIS_MODEL``) behind the
three kinds of API compared with the hand-written app."""

import os
import pickle

from bentolite import Service, api, artifacts
from bentolite.adapters import DataframeInput, NdarrayInput
from bentolite.artifacts import PickleArtifact


@artifacts([PickleArtifact("model")])
class IrisBench(Service):
    @api(input=NdarrayInput(dtype="float64"))
    def ndarray(self, arr):
        return self.artifacts.model.predict(arr)

    @api(input=DataframeInput())
    def dataframe(self, df):
        return self.artifacts.model.predict(df)

    @api(input=NdarrayInput(dtype="float64"), batch=True, max_batch_size=64, max_latency_ms=100)
    def ndarray_batched(self, arr):
        return self.artifacts.model.predict(arr)


svc = IrisBench()
with open(os.environ["IRIS_MODEL"], "rb") as f:
    svc.pack("model", pickle.load(f))
