"""BentoML 1.x's side of the benchmark (run with ``bentoml serve bentoml_service:Iris``): the same
pickled iris model (``IRIS_MODEL``) behind an ndarray API, its request body ``{"rows": [...]}``."""

import os
import pickle

import bentoml
import numpy as np


@bentoml.service
class Iris:
    def __init__(self) -> None:
        with open(os.environ["IRIS_MODEL"], "rb") as f:
            self.model = pickle.load(f)

    @bentoml.api
    def predict(self, rows: np.ndarray) -> np.ndarray:
        return self.model.predict(rows)
