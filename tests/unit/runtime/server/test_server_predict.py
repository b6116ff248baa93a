"""Warnings raised while predicting are logged once each, and the process's warning
filters are as they were afterwards."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pytest

from mlops_operator.runtime.server.model import ModelInfo, ServedModel


class Noisy:
    """An estimator that warns on every call, as a model with a deprecated parameter does."""

    classes_ = np.array([0, 1])

    def predict(self, x: Any) -> Any:
        warnings.warn("feature 'a' looks odd", UserWarning, stacklevel=1)
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
        return np.zeros(len(x), dtype=int)


def served() -> ServedModel:
    info = ModelInfo(
        features=("a", "b"),
        task="classification",
        classes=(0, 1),
        digest="sha256:" + "0" * 64,
        framework_version=None,
    )
    return ServedModel(info, Noisy(), reference=None)


def test_a_warning_while_predicting_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    model = served()
    with caplog.at_level(logging.WARNING, logger="mlops_operator.runtime.server.model"):
        for _ in range(3):
            predictions, _ = model.predict(np.ones((2, 2)), with_proba=False)
            assert predictions.tolist() == [0, 0]
    logged = [r.getMessage() for r in caplog.records]
    assert logged == ["predicting: UserWarning: feature 'a' looks odd (logged once)"]


def test_predicting_leaves_the_warning_filters_as_they_were() -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="something the application cares about")
        before = list(warnings.filters)
        served().predict(np.ones((1, 2)), with_proba=False)
        assert warnings.filters == before
