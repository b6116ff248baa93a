"""Model-server fixtures: models fitted by the real trainer, servers as real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from serving_helpers import (
    Artifact,
    ServerFactory,
    ServerProcess,
    start_server_process,
    train_model,
)


@pytest.fixture(scope="session")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    """A logistic regression on iris (integer classes 0-2; refuses missing values)."""
    from sklearn.datasets import load_iris

    return train_model(
        tmp_path_factory.mktemp("iris"),
        "iris",
        load_iris(as_frame=True).frame,
        {"className": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 1000}},
    )


@pytest.fixture(scope="session")
def species_model(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    """A logistic regression on iris whose classes are the species' names (strings)."""
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.frame.assign(target=iris.target_names[iris.target])
    return train_model(
        tmp_path_factory.mktemp("species"),
        "species",
        frame,
        {"className": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 1000}},
    )


@pytest.fixture(scope="session")
def diabetes_model(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    """A ridge regression on the diabetes dataset."""
    from sklearn.datasets import load_diabetes

    return train_model(
        tmp_path_factory.mktemp("diabetes"),
        "diabetes",
        load_diabetes(as_frame=True).frame,
        {"className": "sklearn.linear_model.Ridge", "params": {"alpha": 0.1}},
    )


def _check_clean(server: ServerProcess) -> None:
    output = server.output()
    for marker in ("Traceback", "Warning:"):
        assert marker not in output, f"{server.log} has a {marker}:\n{output}"


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers for one test: ``start(name, model_uri, *args, ready=True)``; all stop at
    teardown, and none may have logged a traceback or a warning."""
    started: list[ServerProcess] = []

    def start(name: str, model_uri: str, *args: str, ready: bool = True) -> ServerProcess:
        server = start_server_process(tmp_path, name, model_uri, *args, ready=ready)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    for server in started:
        _check_clean(server)


@pytest.fixture(scope="module")
def iris_server(
    iris_model: Artifact, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One iris server shared by a module's tests (version 3, a 64 KiB body limit)."""
    server = start_server_process(
        tmp_path_factory.mktemp("iris-server"),
        "iris",
        iris_model.uri,
        "--model-version",
        "3",
        "--max-body-bytes",
        "65536",
        ready=True,
    )
    yield server
    server.stop()
    _check_clean(server)
