"""The served model's inference and feedback URLs skip Starlette's router (the per-request
cost that set us apart from a bare ASGI app); they must answer exactly as routed requests do.

In-process: each request goes once to the app and once to Starlette's own ``__call__`` on
the same app, and the two answers are compared."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_helpers import Artifact, in_process_app
from starlette.applications import Starlette

ROW = [5.1, 3.5, 1.4, 0.2]
V2 = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROW}]}


@pytest.fixture
async def clients(
    iris_model: Artifact, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(the app, the same app routed by Starlette), serving iris version 3."""
    async with in_process_app(iris_model, tmp_path, "iris", model_version="3") as app:
        routed = functools.partial(Starlette.__call__, app)
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as a,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=routed), base_url="http://t") as b,
        ):
            yield a, b


def _comparable(response: httpx.Response) -> tuple[int, Any]:
    """Status and body, without what differs per request (ids)."""
    body = response.json()
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ("id", "parameters", "prediction_ids")}
    return response.status_code, body


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v2/models/iris/infer", V2, 200),
        ("POST", "/v2/models/iris/versions/3/infer", V2, 200),
        ("POST", "/v2/models/iris/versions/2/infer", V2, 404),
        ("POST", "/v2/models/other/infer", V2, 404),
        ("POST", "/v2/models/iris/infer", {"inputs": [{"name": "x"}]}, 400),
        ("GET", "/v2/models/iris/infer", None, 405),
        ("POST", "/v1/models/iris:predict", {"instances": [ROW]}, 200),
        ("POST", "/v1/models/iris:predict", {"instances": [["x", 1, 1, 1]]}, 400),
        ("POST", "/v1/models/iris/feedback", {"feedback": [{"id": "nope", "label": 0}]}, 200),
        ("POST", "/v1/models/iris/feedback", {"ids": []}, 400),
    ],
)
async def test_the_direct_dispatch_answers_as_starlettes_router_does(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    direct, routed = clients
    ours = await direct.request(method, path, json=body)
    theirs = await routed.request(method, path, json=body)
    assert ours.status_code == status, ours.text
    assert _comparable(ours) == _comparable(theirs)
    assert ours.headers.get("content-type") == theirs.headers.get("content-type")


async def test_a_prediction_from_either_way_takes_feedback(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    direct, routed = clients
    for predict_with, feedback_with in ((direct, routed), (routed, direct)):
        answer = await predict_with.post("/v1/models/iris:predict", json={"instances": [ROW]})
        ids = answer.json()["prediction_ids"]
        label = answer.json()["predictions"][0]
        taken = await feedback_with.post(
            "/v1/models/iris/feedback", json={"feedback": [{"id": ids[0], "label": label}]}
        )
        assert taken.status_code == 200, taken.text
