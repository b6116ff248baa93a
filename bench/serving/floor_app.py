"""The floor: the smallest ASGI app that answers an Open Inference Protocol v2 request by
calling ``predict`` in-process, on the same HTTP server as ours (uvicorn with uvloop and
httptools). It validates nothing, batches nothing and counts nothing; no real server can
beat it by much, so "ours / floor" says what our features cost.

Run: ``uvicorn floor_app:app`` with ``BENCH_MODEL`` (a joblib file) and ``BENCH_MODEL_NAME``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import joblib
import numpy as np
import orjson

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# The model was fitted on a DataFrame; the floor passes bare arrays, as most servers do.
warnings.filterwarnings("ignore", message="X does not have valid feature names")

NAME = os.environ.get("BENCH_MODEL_NAME", "model")
MODEL = joblib.load(os.environ["BENCH_MODEL"])
READY_PATHS = {"/v2/health/ready", f"/v2/models/{NAME}/ready"}
INFER_PATH = f"/v2/models/{NAME}/infer"
JSON = [(b"content-type", b"application/json")]


async def _send(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path in READY_PATHS:
        await _send(send, 200, b"{}")
        return
    if path != INFER_PATH or scope["method"] != "POST":
        await _send(send, 404, b'{"error":"not found"}')
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    tensor = orjson.loads(b"".join(chunks))["inputs"][0]
    rows = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
    predictions = MODEL.predict(rows)
    body = orjson.dumps(
        {
            "model_name": NAME,
            "outputs": [
                {
                    "name": "predict",
                    "shape": [len(predictions)],
                    "datatype": "INT64",
                    "data": predictions,
                }
            ],
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    await _send(send, 200, body)
