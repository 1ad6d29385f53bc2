"""The baseline: the smallest starlette app that serves the same iris model.

It reads the model file that the benchmark's bundle holds (``IRIS_MODEL`` names it), parses
the JSON rows into a DataFrame, as bentolite's DataframeInput does, and calls the model on the
event loop: no thread pool, no metrics, no validation beyond what pandas does.
"""

import os
import pickle

import pandas as pd
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

with open(os.environ["IRIS_MODEL"], "rb") as f:
    model = pickle.load(f)


async def predict(request):
    rows = await request.json()
    return JSONResponse(model.predict(pd.DataFrame(rows)).tolist())


async def ready(request):
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/readyz", ready)])
