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

The same for a model of raw rows, trained as ``examples/trainingjob-raw-table.yaml`` trains
it (the churn table of ``examples/upload-datasets.py``: text and numeric categories, a
boolean, gaps; the trainer's Pipeline of imputers and a one-hot encoder, then the
estimator): there ``sklearn predict_proba`` is the Pipeline's on the DataFrame the server
builds, and the fast path encodes the rows without the ColumnTransformer
(``runtime/server/tablepath.py``).

    python -m bench.serving.predict_call [--calls 2000]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
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
RAW_MODELS = {
    "churn-hgb": ("HistGradientBoostingClassifier", {"max_iter": 200}),
    "churn-rf": ("RandomForestClassifier", {"n_estimators": 100, "n_jobs": 1, "random_state": 0}),
}
ROOT = Path(__file__).resolve().parents[2]


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


def served_raw(name: str) -> tuple[Any, Any, Any]:
    """A churn model loaded as the server loads it, the table of every row as a request
    gives it, and the DataFrame the server builds for scikit-learn from that table."""
    import pandas as pd
    import yaml
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    from mlops_operator.api.trainingjob import PreprocessingSpec
    from mlops_operator.runtime.refstats import reference_stats
    from mlops_operator.runtime.server.model import ModelInfo, ServedModel
    from mlops_operator.runtime.server.protocol import parse_v1_predict
    from mlops_operator.runtime.trainer.datacheck import capture_schema
    from mlops_operator.runtime.trainer.preprocess import build_pipeline, plan_columns

    spec = importlib.util.spec_from_file_location("upload", ROOT / "examples/upload-datasets.py")
    assert spec is not None and spec.loader is not None
    upload = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(upload)
    frame = pd.read_parquet(io.BytesIO(upload.churn()))
    example = yaml.safe_load((ROOT / "examples/trainingjob-raw-table.yaml").read_text())
    preprocessing = PreprocessingSpec.model_validate(example["spec"]["preprocessing"])
    x, y = frame.drop(columns="churned"), frame["churned"]
    steps = plan_columns(x, list(x.columns), preprocessing)
    class_name, params = RAW_MODELS[name]
    kind = {
        "HistGradientBoostingClassifier": HistGradientBoostingClassifier,
        "RandomForestClassifier": RandomForestClassifier,
    }
    pipeline = build_pipeline(steps, kind[class_name](**params)).fit(x, y)
    numeric = [s.column for s in steps if s.kind == "numeric" and not s.dropped]
    info = ModelInfo(
        features=tuple(x.columns),
        task="classification",
        classes=("no", "yes"),
        digest="sha256:" + "0" * 64,
        framework_version=None,
        preprocessing=tuple(s.describe() for s in steps),
    )
    schema = capture_schema(frame, list(x.columns), "churned", "classification")
    reference = reference_stats({c: x[c] for c in numeric})["features"]
    model = ServedModel(info, pipeline, reference, schema)
    instances = [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in x.astype(object).to_dict(orient="records")
    ]
    table = parse_v1_predict(
        {"instances": instances}, info.features, allow_nan=False, columns=model.columns
    )
    return model, table, model.table_frame(table)


def measure_raw(name: str, calls: int) -> list[dict[str, Any]]:
    model, table, frame = served_raw(name)
    rng = np.random.default_rng(0)
    label = f"churn: {type(model.estimator.steps[-1][1]).__name__}"
    out = []
    for size in SIZES:
        picked = rng.choice(len(table), size, replace=False)
        out.append(
            compare(
                name, label, model, table[picked], frame.iloc[picked], model._table_predict, calls
            )
        )
    return out


def compare(
    name: str,
    label: str,
    model: Any,
    rows: Any,
    handed: Any,
    before: Callable[[Any, bool], Any],
    calls: int,
) -> dict[str, Any]:
    """One model and batch: scikit-learn's ``predict_proba`` on what the server hands it,
    the server's scikit-learn path ``before``, and the fast path, timed and compared."""
    fast = model.predict(rows, True)
    slow = before(rows, True)
    exact = bool(np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1]))
    slow_calls = max(50, calls // 10)
    sklearn_us = timed(partial(model.estimator.predict_proba, handed), slow_calls)
    before_us = timed(partial(before, rows, True), slow_calls)
    fast_us = timed(partial(model.predict, rows, True), calls)
    result = {
        "model": name,
        "estimator": label,
        "rows": len(rows),
        "path": model.predict_path,
        "sklearn_predict_proba_us": sklearn_us,
        "server_before_us": before_us,
        "fast_path_us": fast_us,
        "speedup_vs_predict_proba": round(sklearn_us / fast_us, 1),
        "speedup_vs_server_before": round(before_us / fast_us, 1),
        "exact": exact,
    }
    print(result, flush=True)
    return result


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
    label = type(model.estimator).__name__
    out = []
    for size in SIZES:
        picked = frame.iloc[rng.choice(len(frame), size, replace=False)]
        rows = np.ascontiguousarray(picked.to_numpy(), dtype=np.float64)
        handed = rows if model.array_input else picked
        out.append(compare(name, label, model, rows, handed, model._sklearn_predict, calls))
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
        "churn: the raw table of `examples/upload-datasets.py` (text and numeric categories, a "
        "boolean, gaps), trained as `examples/trainingjob-raw-table.yaml` trains it (imputers "
        "and a one-hot encoder in a ColumnTransformer, then the estimator), served from raw "
        "rows; `python -m bench.serving.predict_call`.",
        "",
        "- *sklearn predict_proba*: the estimator's own `predict_proba` on what the server "
        "hands it (for churn, the Pipeline's on the DataFrame the server builds); "
        "*server before*: the server's scikit-learn path (`predict`, then "
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
    results += [r for name in RAW_MODELS for r in measure_raw(name, args.calls)]
    data = {
        "finished": now(),
        "machine": machine(["scikit-learn", "numpy", "scipy"]),
        "calls": args.calls,
        "results": results,
    }
    print(write_results(NAME, data, render(data)))


if __name__ == "__main__":
    main()
