"""One predict call, no HTTP: the server's exact fast path beside scikit-learn's own.

For each model bench/serving serves (LogisticRegression and a 100-tree RandomForest, fitted on
scikit-learn's breast-cancer data as a DataFrame, like the trainer does) and for 1 and 32
rows: the median time of

- ``sklearn predict_proba``: the estimator's own ``predict_proba``, on what the server hands it;
- ``server before``: the server's scikit-learn path, ``predict`` then ``predict_proba``;
- ``fast path``: the server's path now (``ServedModel.predict``), both outputs in one call;

checks that the fast path's outputs equal scikit-learn's bit for bit on the measured rows,
and writes bench/results/predict-call.{json,md}. Target: the forest on one row at least 10x
faster than scikit-learn's predict_proba. About a minute on two cores.

    python -m bench.serving.predict_call [--calls 2000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from bench.common import machine, markdown_table, median, now, write_results

NAME = "predict-call"
TARGET = 10.0
SIZES = (1, 32)
MODELS = {
    "lr": ("LogisticRegression", {"max_iter": 5000}),
    "rf": ("RandomForestClassifier", {"n_estimators": 100, "n_jobs": 1, "random_state": 0}),
}


def served(name: str) -> tuple[Any, Any]:
    """The model loaded as the server loads it, and the data's feature rows."""
    import pandas as pd
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from mlops_operator.runtime.refstats import reference_stats
    from mlops_operator.runtime.server.model import ModelInfo, ServedModel

    frame = load_breast_cancer(as_frame=True).frame
    features = frame.drop(columns="target")
    class_name, params = MODELS[name]
    kind = {
        "LogisticRegression": LogisticRegression,
        "RandomForestClassifier": RandomForestClassifier,
    }
    estimator = kind[class_name](**params).fit(features, frame["target"])
    info = ModelInfo(
        features=tuple(features.columns),
        task="classification",
        classes=(0, 1),
        digest="sha256:" + "0" * 64,
        framework_version=None,
    )
    reference = reference_stats({c: features[c] for c in features.columns})["features"]
    model = ServedModel(info, estimator, reference)
    rows = pd.DataFrame(features.to_numpy(), columns=features.columns)
    return model, rows


def timed(call: Callable[[], Any], calls: int) -> float:
    """The median wall time of ``call`` in microseconds, after a short warm-up."""
    for _ in range(min(50, calls)):
        call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return round((median(times) or 0.0) * 1e6, 1)


def measure(name: str, calls: int) -> list[dict[str, Any]]:
    model, frame = served(name)
    rng = np.random.default_rng(0)
    out = []
    for size in SIZES:
        picked = frame.iloc[rng.choice(len(frame), size, replace=False)]
        rows = np.ascontiguousarray(picked.to_numpy(), dtype=np.float64)
        handed = rows if model.array_input else picked
        estimator = model.estimator
        fast = model.predict(rows, True)
        slow = model._sklearn_predict(rows, True)
        exact = bool(np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1]))
        slow_calls = max(50, calls // 10)
        sklearn_us = timed(partial(estimator.predict_proba, handed), slow_calls)
        before_us = timed(partial(model._sklearn_predict, rows, True), slow_calls)
        fast_us = timed(partial(model.predict, rows, True), calls)
        out.append(
            {
                "model": name,
                "estimator": type(estimator).__name__,
                "rows": size,
                "path": model.predict_path,
                "sklearn_predict_proba_us": sklearn_us,
                "server_before_us": before_us,
                "fast_path_us": fast_us,
                "speedup_vs_predict_proba": round(sklearn_us / fast_us, 1),
                "speedup_vs_server_before": round(before_us / fast_us, 1),
                "exact": exact,
            }
        )
        print(out[-1], flush=True)
    return out


def render(data: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    """The results file: a table per model and size, the target and the verdict."""
    rows = data["results"]
    table = markdown_table(
        [
            "model",
            "rows",
            "path",
            "sklearn predict_proba µs",
            "server before µs",
            "fast path µs",
            "× vs predict_proba",
            "× vs server before",
            "exact",
        ],
        [
            [
                f"{r['estimator']}",
                r["rows"],
                r["path"],
                r["sklearn_predict_proba_us"],
                r["server_before_us"],
                r["fast_path_us"],
                r["speedup_vs_predict_proba"],
                r["speedup_vs_server_before"],
                "yes" if r["exact"] else "NO",
            ]
            for r in rows
        ],
    )
    forest_one = next(r for r in rows if r["model"] == "rf" and r["rows"] == 1)
    met = forest_one["speedup_vs_predict_proba"] >= TARGET
    host = data["machine"]
    lines = [
        "# One predict call: the exact fast path beside scikit-learn",
        "",
        f"Run {data['finished']} on {host['cpu']} ({host['cores']} cores), "
        f"{data['calls']} calls per fast-path figure (a tenth for scikit-learn's), medians. "
        "Breast-cancer data (30 features), models fitted on a DataFrame as the trainer does; "
        "`python -m bench.serving.predict_call`.",
        "",
        "- *sklearn predict_proba*: the estimator's own `predict_proba` on what the server "
        "hands it; *server before*: the server's scikit-learn path (`predict`, then "
        "`predict_proba`); *fast path*: `ServedModel.predict` now, both outputs in one call.",
        "- *exact*: the fast path's labels and probabilities equal scikit-learn's bit for bit "
        "on the measured rows (`np.array_equal`).",
        "",
        table,
        f"Target: the forest on one row ≥ {TARGET:g}× faster than scikit-learn's predict_proba: "
        f"{forest_one['speedup_vs_predict_proba']}× — {'met' if met else 'NOT met'}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per fast-path figure")
    args = parser.parse_args()
    results = [r for name in MODELS for r in measure(name, args.calls)]
    data = {
        "finished": now(),
        "machine": machine(["scikit-learn", "numpy", "scipy"]),
        "calls": args.calls,
        "results": results,
    }
    print(write_results(NAME, data, render(data)))


if __name__ == "__main__":
    main()
