"""A random forest served through its exact fast path answers over HTTP exactly what
scikit-learn answers, and says which path serves it."""

from __future__ import annotations

from pathlib import Path

import httpx
import joblib
import numpy as np
import pandas as pd
from serving_helpers import ServerFactory, train_model


def test_a_forest_is_served_by_its_fast_path_with_sklearns_exact_answers(
    tmp_path: Path, start_server: ServerFactory
) -> None:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    model = train_model(
        tmp_path,
        "cancer",
        frame,
        {
            "className": "sklearn.ensemble.RandomForestClassifier",
            "params": {"n_estimators": 40, "random_state": 0},
        },
    )
    server = start_server("cancer", model.uri)
    metadata = httpx.get(f"{server.url}/v2/models/cancer").json()
    assert metadata["parameters"]["predict_path"] == "forest"
    assert metadata["parameters"]["predict_path_reason"] == ""
    assert "predict path: forest" in server.output()

    estimator = joblib.load(model.path / "model.joblib")
    features = frame.drop(columns="target")
    rng = np.random.default_rng(0)
    # Real rows and random rows across (and a little past) the training ranges.
    low, high = features.min().to_numpy(), features.max().to_numpy()
    random = rng.uniform(low - 0.1 * (high - low), high + 0.1 * (high - low), (40, len(low)))
    rows = pd.DataFrame(
        np.concatenate([features.to_numpy()[::15], random]), columns=features.columns
    )
    for batch in (rows.head(1), rows.head(7), rows):
        response = httpx.post(
            f"{server.url}/v2/models/cancer/infer",
            json={
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": list(batch.shape),
                        "datatype": "FP64",
                        "data": batch.to_numpy().tolist(),
                    }
                ],
                "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
            },
        )
        assert response.status_code == 200, response.text
        predict, proba = response.json()["outputs"]
        assert predict["data"] == estimator.predict(batch).tolist()
        assert proba["data"] == estimator.predict_proba(batch).ravel().tolist()
