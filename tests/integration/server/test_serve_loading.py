"""Loading safely: a model that does not verify is never served, one that appears is."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from serving_helpers import Artifact, ServerFactory, metric
from tritonclient.utils import InferenceServerException

ROW = [5.1, 3.5, 1.4, 0.2]


def test_a_tampered_model_keeps_the_server_live_but_never_ready(
    start_server: ServerFactory, iris_model: Artifact, tmp_path: Path
) -> None:
    tampered = tmp_path / "tampered"
    shutil.copytree(iris_model.path, tampered)
    with (tampered / "model.joblib").open("ab") as fh:
        fh.write(b"\0")
    server = start_server("iris", f"file://{tampered}/", "--model-version", "1", ready=False)
    url = server.url

    deadline = time.monotonic() + 20
    while "digest mismatch" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert httpx.get(f"{url}/v2/health/live").status_code == 200
    for path in ("/v2/health/ready", "/v2/models/iris/ready", "/v1/models/iris"):
        response = httpx.get(url + path)
        assert response.status_code == 503, path
        assert response.json()["ready"] is False
        assert "digest mismatch" in response.json()["error"]
        assert iris_model.manifest["digest"] in response.json()["error"]
    predict = httpx.post(f"{url}/v1/models/iris:predict", json={"instances": [ROW]})
    assert predict.status_code == 503
    assert "not loaded" in predict.json()["error"]
    assert metric(httpx.get(f"{url}/metrics").text, "mlops_model_ready") == 0

    grpc_client = triton_grpc.InferenceServerClient(server.grpc_target)
    assert grpc_client.is_server_live()
    assert not grpc_client.is_server_ready()
    assert not grpc_client.is_model_ready("iris")
    tensor = triton_grpc.InferInput("input-0", [1, 4], "FP64")
    tensor.set_data_from_numpy(np.array([ROW]))
    with pytest.raises(InferenceServerException) as caught:
        grpc_client.infer("iris", [tensor])
    assert caught.value.status() == "StatusCode.UNAVAILABLE"
    assert "not loaded" in caught.value.message()
    assert "digest mismatch" in caught.value.message()
    assert server.output().count("digest mismatch") == 1, "one clear line, not one per retry"
    # The file that failed verification never reaches the cache.
    assert not list((tmp_path / "cache" / "models").rglob("model.joblib"))


def test_the_digest_option_wins_over_the_manifest(
    start_server: ServerFactory, iris_model: Artifact
) -> None:
    other = "sha256:" + "0" * 64
    server = start_server("iris", iris_model.uri, "--digest", other, ready=False)
    deadline = time.monotonic() + 20
    while httpx.get(f"{server.url}/v2/health/ready").json().get("error", "").endswith("loading"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    body = httpx.get(f"{server.url}/v2/health/ready").json()
    assert "digest mismatch" in body["error"] and other in body["error"]


def test_a_model_uploaded_after_start_is_served_on_the_next_attempt(
    start_server: ServerFactory, iris_model: Artifact, tmp_path: Path
) -> None:
    later = tmp_path / "later"
    later.mkdir()
    server = start_server("iris", f"file://{later}/", "--load-retry-seconds", "0.2", ready=False)
    body = httpx.get(f"{server.url}/v2/health/ready").json()
    assert body["ready"] is False

    for name in ("model.joblib", "reference.json", "manifest.json"):
        shutil.copy(iris_model.path / name, later / name)
    server.wait("/v2/health/ready")
    response = httpx.post(f"{server.url}/v1/models/iris:predict", json={"instances": [ROW]})
    assert response.status_code == 200
    assert "does not exist" in server.output()
