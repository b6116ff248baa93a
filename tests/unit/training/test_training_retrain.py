"""``mlops-operator retrain --from``: the TrainingJob built from a version's lineage."""

from __future__ import annotations

import pytest

from mlops_operator.training.plan import retrain_spec
from mlops_operator.training.retrain import RetrainError, trainingjob

PINNED = {
    "model": "churn",
    "dataset": {"uri": "s3://data/churn.csv", "target": "label", "versionId": "v-123"},
    "estimator": {
        "className": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 5},
    },
    "validation": {"testSize": 0.3, "randomState": 7},
}


def mv(source: dict[str, object]) -> dict[str, object]:
    return {"metadata": {"name": "churn-v3"}, "spec": {"model": "churn", "source": source}}


def test_the_new_trainingjob_trains_the_pinned_version_with_the_same_split_and_params() -> None:
    body = trainingjob("churn-v3-rerun", "team-a", mv({"trainingSpec": PINNED}))
    assert body["metadata"]["name"] == "churn-v3-rerun"
    assert body["metadata"]["annotations"] == {"mlops.dev/retrained-from": "churn-v3"}
    spec = body["spec"]
    assert spec["dataset"]["versionId"] == "v-123"
    assert spec["validation"]["testSize"] == 0.3 and spec["validation"]["randomState"] == 7
    assert spec["estimator"]["params"] == {"n_estimators": 5}


def test_a_version_without_lineage_cannot_be_retrained() -> None:
    with pytest.raises(RetrainError, match="registered by hand"):
        trainingjob("x", "ns", mv({"trainingJob": None}))
    assert "trainingSpec" in str(retrain_spec(mv({"trainingSpec": {"model": "churn"}})))
