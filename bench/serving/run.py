"""Serving benchmark: our model server beside MLServer, KServe and a bare ASGI floor, on the
same models, with the same load, in one run. ``make bench-serving`` runs it; results go to
``bench/results/serving.{md,json}`` (the previous run's move to ``bench/results/history/``).

Per model (LogisticRegression, RandomForest with 100 trees) and contender: time to ready,
answers checked against the model, then per payload (1 and 32 rows): a warm-up, closed-loop
runs at 1, 8, 32 and 64 connections (several at 32, the level the targets are set at),
open-loop runs at fixed rates, CPU seconds per 1,000 requests and memory.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench import common
from bench.serving import load, report
from bench.serving.contenders import (
    ModelFiles,
    Server,
    default_contenders,
    ensure_venv,
    post_json,
    venv_versions,
)

REPO = pathlib.Path(__file__).resolve().parents[2]
WORKDIR = REPO / ".bench" / "serving"
FEATURES = 30


@dataclasses.dataclass(frozen=True)
class Plan:
    """How long and how often to measure (wrk takes whole seconds)."""

    warmup_seconds: int = 1
    run_seconds: int = 2
    levels: tuple[int, ...] = (1, 8, 32, 64)
    target_level: int = 32
    runs_at_target: int = 3
    runs_elsewhere: int = 1
    open_rates: dict[int, tuple[int, ...]] = dataclasses.field(
        default_factory=lambda: {1: (200, 800), 32: (100, 400)}
    )
    open_seconds: float = 2.0
    payloads: tuple[int, ...] = (1, 32)
    slo_p99_ms: float = 100.0


QUICK = Plan(
    warmup_seconds=1,
    run_seconds=1,
    levels=(8, 32),
    runs_at_target=1,
    open_rates={1: (200,), 32: (100,)},
    open_seconds=1.0,
)

MODELS = {
    "lr": ("sklearn.linear_model.LogisticRegression", {"max_iter": 5000}),
    "rf": ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 100, "n_jobs": 1}),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def train_models(names: Sequence[str], root: pathlib.Path) -> dict[str, ModelFiles]:
    """Train each model once with our trainer (``mlops-operator train``) on scikit-learn's
    breast-cancer data; every contender serves the resulting ``model.joblib``."""
    from sklearn.datasets import load_breast_cancer

    data_dir = root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    dataset = data_dir / "breast-cancer.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(dataset, index=False)
    models = {}
    for name in names:
        class_name, params = MODELS[name]
        spec = {
            "apiVersion": "mlops.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": f"bench-{name}"},
            "spec": {
                "model": f"bench-{name}",
                "dataset": {"uri": dataset.as_uri(), "target": "target"},
                "estimator": {"className": class_name, "params": params},
                "validation": {"testSize": 0.2, "randomState": 42},
            },
        }
        manifest = root / f"trainingjob-{name}.json"
        manifest.write_text(json.dumps(spec))
        out = root / "models" / name
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run(
            [sys.executable, "-m", "mlops_operator", "train", "--file", str(manifest)]
            + ["--output", out.as_uri() + "/"],
            check=True,
            capture_output=True,
        )
        models[name] = ModelFiles(name, out)
    return models


def payloads(model: ModelFiles, sizes: Sequence[int], root: pathlib.Path) -> dict[int, Any]:
    """v2 request bodies of ``sizes`` rows (real rows of the dataset, one FP64 tensor), and
    the model's own predictions for them."""
    import joblib
    import pandas as pd

    frame = pd.read_csv(root / "data" / "breast-cancer.csv").drop(columns=["target"])
    estimator = joblib.load(model.joblib)
    out = {}
    for n in sizes:
        rows = frame.head(n)
        body = {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [n, FEATURES],
                    "datatype": "FP64",
                    "data": rows.to_numpy().ravel().tolist(),
                }
            ]
        }
        path = root / f"body-{model.name}-{n}.json"
        path.write_text(json.dumps(body))
        out[n] = (path, [int(x) for x in estimator.predict(rows)])
    return out


def answers(response: Any) -> list[int]:
    return [int(x) for x in response["outputs"][0]["data"]]


def measure(server: Server, bodies: dict[int, Any], plan: Plan) -> dict[str, Any]:
    """Every figure for one contender serving one model."""
    ready = server.wait_ready()
    log(f"  {server.contender.name}: ready in {ready:.1f} s")
    result: dict[str, Any] = {"ready_seconds": round(ready, 2), "payloads": {}}
    for n in plan.payloads:
        body_path, expected = bodies[n]
        got = answers(post_json(server.infer_url, body_path.read_bytes()))
        if got != expected:
            raise RuntimeError(f"{server.contender.name} answered {got}, expected {expected}")
        load.closed_loop(server.infer_url, body_path, plan.target_level, plan.warmup_seconds)
        closed: dict[str, Any] = {}
        cpu_per_1k: list[float] = []
        for level in plan.levels:
            runs = []
            count = plan.runs_at_target if level == plan.target_level else plan.runs_elsewhere
            for _ in range(count):
                before = common.tree_usage(server.process.pid)
                run = load.closed_loop(server.infer_url, body_path, level, plan.run_seconds)
                after = common.tree_usage(server.process.pid)
                runs.append(run)
                if level == plan.target_level and run.requests:
                    cpu = after.cpu_seconds - before.cpu_seconds
                    cpu_per_1k.append(cpu / run.requests * 1000)
            closed[str(level)] = report.combine(runs)
        opened = {}
        for rate in plan.open_rates.get(n, ()):
            run = load.open_loop(server.infer_url, body_path.read_bytes(), rate, plan.open_seconds)
            opened[str(rate)] = report.combine([run])
        usage = common.tree_usage(server.process.pid)
        at = closed[str(plan.target_level)]
        log(
            f"  {server.contender.name} {n:>2} rows: c={plan.target_level} {at['rps']:,.0f} req/s "
            f"p99 {at['p99_ms']:.1f} ms, errors {sum(c['errors'] for c in closed.values())}"
        )
        result["payloads"][str(n)] = {
            "closed": closed,
            "open": opened,
            "cpu_seconds_per_1k": round(common.median(cpu_per_1k) or 0.0, 3),
            "rss_mb": round(usage.rss_bytes / 2**20, 1),
            "pss_mb": round(usage.pss_bytes / 2**20, 1),
        }
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contenders", help="comma-separated names (default: all)")
    parser.add_argument("--models", default="lr,rf", help="comma-separated: lr, rf")
    parser.add_argument("--quick", action="store_true", help="short runs, to try the harness")
    parser.add_argument(
        "--no-write", action="store_true", help="print the report instead of writing results"
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="only re-render serving.md from serving.json (after editing analysis.md)",
    )
    args = parser.parse_args(argv)
    if args.render:
        return common.rerender("serving", report.render)
    began = time.monotonic()
    plan = QUICK if args.quick else Plan()
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (make bench-serving installs it)")
    contenders = default_contenders(common.machine()["cores"] or 2)
    if args.contenders:
        wanted = args.contenders.split(",")
        contenders = [c for c in contenders if c.name in wanted]
        if len(contenders) != len(wanted):
            parser.error(f"unknown contender in {wanted}; known: {default_contenders(2)}")
    WORKDIR.mkdir(parents=True, exist_ok=True)

    families = sorted({c.family for c in contenders})
    log(f"virtual environments for {', '.join(families)} (installed on first use)")
    with ThreadPoolExecutor() as pool:
        venvs = list(pool.map(lambda f: ensure_venv(f, WORKDIR / "venvs"), families))
    pythons = dict(zip(families, venvs, strict=True))
    versions = {
        family: venv_versions(
            python, ["mlserver", "mlserver-sklearn", "kserve", "uvicorn", "scikit-learn"]
        )
        for family, python in pythons.items()
    }
    log(f"training {args.models} with mlops-operator train")
    models = train_models(args.models.split(","), WORKDIR)

    results: dict[str, Any] = {}
    for model in models.values():
        log(f"model {model.name}")
        bodies = payloads(model, plan.payloads, WORKDIR)
        results[model.name] = {}
        for contender in contenders:
            server = Server(contender, model, pythons[contender.family], WORKDIR / "runs")
            try:
                results[model.name][contender.name] = measure(server, bodies, plan)
            finally:
                server.stop()

    data = {
        "finished": common.now(),
        "wall_seconds": round(time.monotonic() - began),
        "quick": args.quick,
        "machine": common.machine(["mlops-operator", "uvicorn", "scikit-learn", "numpy"]),
        "versions": {k: {n: v for n, v in vs.items() if v} for k, vs in versions.items()},
        # As JSON has it (string keys), so a fresh run and --render read the same thing.
        "plan": json.loads(json.dumps(dataclasses.asdict(plan))),
        "contenders": {c.name: c.description for c in contenders},
        "results": results,
    }
    previous = common.previous_results("serving")
    markdown = report.render(data, previous)
    if args.no_write:
        print(markdown)
    else:
        path = common.write_results("serving", data, markdown)
        log(f"wrote {path.relative_to(REPO)} and serving.json in {data['wall_seconds']} s")
        print(textwrap.indent(report.headline(data), "  "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
