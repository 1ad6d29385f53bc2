"""The baseline: a hand-written Starlette app serving the benchmark's iris model, as a
practitioner would write it (run it on uvicorn with httptools and uvloop installed).

``IRIS_MODEL`` names the pickled model. Two routes, each reading a JSON list of rows and
calling the model on the event loop (no thread pool, no metrics, no validation):

* ``POST /ndarray``: the rows as a float64 array;
* ``POST /dataframe``: the rows as a pandas DataFrame first.
"""

import os
import pickle

import numpy as np
import pandas as pd
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

with open(os.environ["IRIS_MODEL"], "rb") as f:
    model = pickle.load(f)


async def ndarray(request):
    rows = await request.json()
    return JSONResponse(model.predict(np.asarray(rows, dtype=np.float64)).tolist())


async def dataframe(request):
    rows = await request.json()
    return JSONResponse(model.predict(pd.DataFrame(rows)).tolist())


async def ready(request):
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/ndarray", ndarray, methods=["POST"]),
        Route("/dataframe", dataframe, methods=["POST"]),
        Route("/readyz", ready),
    ]
)
