"""Estimator allow-list, resolution and construction."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlops_operator.runtime import termination as tm
from mlops_operator.runtime.trainer.estimator import (
    build_estimator,
    infer_task,
    resolve_estimator_class,
)
from mlops_operator.runtime.trainer.failure import TrainingFailure

ALLOWED = ["sklearn."]


def test_a_name_outside_the_allowed_prefixes_is_refused_without_importing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "booby_trapped_module.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Estimator: pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TrainingFailure) as caught:
        resolve_estimator_class("booby_trapped_module.Estimator", ALLOWED)
    assert caught.value.reason == tm.ESTIMATOR_NOT_ALLOWED
    assert "booby_trapped_module" not in sys.modules
    assert not marker.exists()


def test_os_system_is_not_allowed_and_the_message_lists_the_prefixes() -> None:
    with pytest.raises(TrainingFailure) as caught:
        resolve_estimator_class("os.system", ALLOWED)
    assert caught.value.reason == tm.ESTIMATOR_NOT_ALLOWED
    assert caught.value.message == (
        "estimator class 'os.system' is not allowed; allowed prefixes: sklearn."
    )


def test_a_prefix_lookalike_is_not_allowed() -> None:
    with pytest.raises(TrainingFailure) as caught:
        resolve_estimator_class("sklearnx.Thing", ALLOWED)
    assert caught.value.reason == tm.ESTIMATOR_NOT_ALLOWED


def test_an_allowed_estimator_resolves_to_its_class() -> None:
    from sklearn.ensemble import RandomForestClassifier

    cls = resolve_estimator_class("sklearn.ensemble.RandomForestClassifier", ALLOWED)
    assert cls is RandomForestClassifier


def test_a_misspelt_class_is_unknown_with_a_suggestion() -> None:
    with pytest.raises(TrainingFailure) as caught:
        resolve_estimator_class("sklearn.ensemble.RandomForestClassifer", ALLOWED)
    assert caught.value.reason == tm.UNKNOWN_ESTIMATOR
    assert "did you mean sklearn.ensemble.RandomForestClassifier" in caught.value.message


def test_a_missing_module_is_unknown() -> None:
    with pytest.raises(TrainingFailure) as caught:
        resolve_estimator_class("sklearn.nosuchmodule.Model", ALLOWED)
    assert caught.value.reason == tm.UNKNOWN_ESTIMATOR
    assert "no module 'sklearn.nosuchmodule'" in caught.value.message


def test_a_class_that_is_not_an_estimator_is_unknown() -> None:
    with pytest.raises(TrainingFailure) as caught:
        resolve_estimator_class("sklearn.utils.Bunch", ALLOWED)
    assert caught.value.reason == tm.UNKNOWN_ESTIMATOR
    assert "not a scikit-learn estimator" in caught.value.message


def test_an_unknown_parameter_is_named_with_a_suggestion() -> None:
    from sklearn.ensemble import RandomForestClassifier

    with pytest.raises(TrainingFailure) as caught:
        build_estimator(RandomForestClassifier, {"n_estimator": 10}, 42)
    assert caught.value.reason == tm.INVALID_PARAMS
    assert "no parameter 'n_estimator' (did you mean 'n_estimators'?)" in caught.value.message


def test_a_bad_parameter_value_is_reported_before_fitting() -> None:
    from sklearn.ensemble import RandomForestClassifier

    with pytest.raises(TrainingFailure) as caught:
        build_estimator(RandomForestClassifier, {"n_estimators": -1}, 42)
    assert caught.value.reason == tm.INVALID_PARAMS
    assert "'n_estimators'" in caught.value.message


def test_random_state_comes_from_validation_unless_params_set_it() -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LinearRegression

    assert build_estimator(RandomForestClassifier, {}, 7).random_state == 7
    assert build_estimator(RandomForestClassifier, {"random_state": 1}, 7).random_state == 1
    assert "random_state" not in build_estimator(LinearRegression, {}, 7).get_params()


def test_the_task_is_inferred_and_a_contradiction_is_refused() -> None:
    from sklearn.linear_model import LinearRegression, LogisticRegression

    assert infer_task(LogisticRegression(), None) == "classification"
    assert infer_task(LinearRegression(), None) == "regression"
    with pytest.raises(TrainingFailure) as caught:
        infer_task(LinearRegression(), "classification")
    assert caught.value.reason == tm.INVALID_SPEC
    assert "LinearRegression is a regressor" in caught.value.message
