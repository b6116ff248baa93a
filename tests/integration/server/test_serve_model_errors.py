"""A model that raises on valid-looking input: 500 with the error, and the server goes on.

In-process (the ASGI app under httpx's ASGI transport), so the model can be swapped for a
failing one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from serving_helpers import Artifact, in_process_app
from starlette.applications import Starlette

ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture
async def app(iris_model: Artifact, tmp_path: Path) -> AsyncIterator[Starlette]:
    """The app with its model loaded, unversioned, without batching delay."""
    async with in_process_app(iris_model, tmp_path, "iris") as application:
        yield application


async def test_a_model_error_is_a_500_and_the_server_keeps_serving(
    app: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    # The model's predict path (its fast path here) swapped for one that fails on 99.
    served: Any = app.state.server.model
    real_predict = served._fast or served._sklearn_predict

    def failing(rows: Any, with_proba: bool) -> Any:
        if (np.asarray(rows)[:, 0] == 99).any():
            raise ValueError("the model cannot take 99")
        return real_predict(rows, with_proba)

    served._fast = failing
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        bad, good = await asyncio.gather(
            client.post("/v1/models/iris:predict", json={"instances": [[99, 1, 1, 1]]}),
            client.post(
                "/v2/models/iris/infer",
                json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROW}]},
            ),
        )
        assert bad.status_code == 500
        assert bad.json() == {"error": "prediction failed: ValueError: the model cannot take 99"}
        assert "prediction failed" in caplog.text
        # Sharing a batch with the failing request or not, the good one gets its answer.
        assert good.status_code == 200
        assert "model_version" not in good.json()
        metrics = (await client.get("/metrics")).text
    assert 'mlops_requests_total{code="500",model="iris",protocol="v1",version="unknown"} 1.0' in (
        metrics
    )
