"""A model whose every call costs the same CPU time whatever its batch size, served twice:
without batching and with adaptive micro-batching."""

import time

import numpy as np

from bentolite import Service, api
from bentolite.adapters import DataframeInput

#: CPU time of one call of the model, in seconds
CALL_COST = 0.005


def model(df):
    deadline = time.perf_counter() + CALL_COST
    while time.perf_counter() < deadline:  # busy: the cost holds the CPU (and the GIL)
        pass
    return np.zeros(len(df), dtype=np.int64)


class FixedCost(Service):
    """The same model behind an unbatched and a batched API."""

    @api(input=DataframeInput())
    def predict(self, df):
        return model(df)

    @api(input=DataframeInput(), batch=True, max_batch_size=64, max_latency_ms=200)
    def predict_batched(self, df):
        return model(df)


svc = FixedCost()
