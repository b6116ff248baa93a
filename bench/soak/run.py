"""Soak: the real operator, 50 InferenceServices under steady prediction and feedback load,
periodic degradations (wrong labels, so online accuracy falls and the service retrains), and
API faults in the first part of the run; every process' memory, descriptors and (for the
operator) asyncio tasks sampled each minute, then a fitted slope per series. ``make soak``.

Processes: the sandbox (API emulator, S3, workload runner and its model-server and trainer
pods) in a process of its own (``bench/sandbox_process.py``), the operator, and this one (load
and sampling). Every request goes to 127.0.0.1. See ``report.py`` for the verdicts and
``bench/results/soak.md`` for the last run.

The sandbox runs as a cluster would, with two bounds made short so that a run of minutes
shows their plateau: Events expire 2 minutes after their last write (the API server's
``--event-ttl``, 1 h by default) and the emulator's request log keeps 5,000 requests. Pods
get their whole ``terminationGracePeriodSeconds`` (tests cap it at 3 s), so a replaced model
server finishes its drain. The load's client retries a request once when its connection
closed before any answer, as production HTTP clients do for idempotent requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import json
import os
import pathlib
import random
import signal
import socket
import sys
import tempfile
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psutil  # noqa: E402

from bench.common import machine, now  # noqa: E402
from bench.sandbox_process import SandboxProcess  # noqa: E402
from bench.soak import report  # noqa: E402
from mlops_operator.runtime.server.feedback import DEFAULT_WINDOW  # noqa: E402
from mlops_sandbox.process import OperatorProcess  # noqa: E402
from mlops_sandbox.s3 import client_from_env  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
NAMESPACE = "soak"
GROUP_PATH = f"/apis/mlops.dev/v1alpha1/namespaces/{NAMESPACE}"
ADDRESS = "sandbox.mlops.dev/address"
DATA_BUCKET = "datasets"
DATA_KEY = "soak/breast-cancer.csv"
FAULTS: tuple[dict[str, Any], ...] = (
    {"status": 500, "verb": "patch", "resource": "inferenceservices/status", "times": 3},
    {"status": 503, "verb": "create", "resource": "events", "times": 3},
    {"status": 429, "verb": "patch", "resource": "deployments", "times": 2},
    {"status": 504, "verb": "create", "resource": "trainingjobs", "times": 1},
    {"status": 500, "verb": "patch", "resource": "modelversions/status", "times": 2},
)
"""Injected in turn during the fault window: errors the operator must retry through."""


@dataclasses.dataclass
class Config:
    minutes: float = 10.0
    services: int = 50
    models: int = 5
    sample_seconds: float = 60.0
    period_seconds: float = 2.0
    """Each service gets one prediction (5 rows) and its feedback per period."""
    fault_share: float = 0.6
    """Faults and degradations happen in this first share of the run; then it must be quiet."""
    settle_seconds: float = 45.0
    """After the last fault: retries drain, no error counts before this."""
    degradations: int = 4
    event_ttl: float = 120.0
    """Seconds an Event lives after its last write in the sandbox (a cluster's default: 1 h)."""
    request_log_size: int = 5000
    """Requests the emulator's log keeps (the sandbox's default: 100,000)."""
    grace_seconds: float = 30.0
    """The sandbox's cap on a pod's ``terminationGracePeriodSeconds`` (tests use 3 s)."""
    trace_memory: bool = False
    """Trace the sandbox's allocations and report the lines that grew (slows it down)."""
    output: pathlib.Path = ROOT / "bench" / "results"
    name: str = "soak"


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def dataset() -> tuple[list[list[float]], list[int], bytes]:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    features = frame.drop(columns="target")
    return features.to_numpy().tolist(), frame["target"].tolist(), buffer.getvalue().encode()


def trainingjob_spec(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "dataset": {"uri": f"s3://{DATA_BUCKET}/{DATA_KEY}", "target": "target"},
        "estimator": {
            "className": "sklearn.ensemble.RandomForestClassifier",
            "params": {"n_estimators": 10, "max_depth": 4},
        },
        "gates": [{"metric": "accuracy", "min": 0.85}],
        "backoffLimit": 0,
    }


def service_spec(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "monitoring": {
            "intervalSeconds": 10,
            "metrics": [
                {
                    "name": "online-accuracy",
                    "builtin": "accuracy",
                    "min": 0.7,
                    "minSamples": 20,
                    "failureLimit": 2,
                }
            ],
        },
        "onDegradation": "Retrain",
        "retrain": {
            "template": trainingjob_spec(model),
            "cooldownSeconds": 0,
            "maxPerDay": 100,
        },
    }


@dataclasses.dataclass
class Load:
    """Counts of the load loops, with the time of each error."""

    predictions: int = 0
    feedback: int = 0
    errors: list[tuple[float, str]] = dataclasses.field(default_factory=list)
    retried: list[tuple[float, str]] = dataclasses.field(default_factory=list)
    """Requests sent again because their connection closed before any answer."""
    wrong: set[str] = dataclasses.field(default_factory=set)
    """Services whose feedback is currently wrong labels (a degradation)."""


RETRIED = (aiohttp.ServerDisconnectedError, aiohttp.ClientConnectionResetError)
"""A connection closed before any byte of the answer: the server shut it (an idle keep-alive
connection closed at its shutdown, racing our request) without having answered."""


@dataclasses.dataclass
class Degradation:
    """One degradation of the scenario: when, how long the soak gives it, what happened."""

    service: str
    at: float
    deadline: float
    """Seconds allowed from the first wrong label to the retraining's start."""
    window: int
    """Labelled samples in the service's accuracy window when it began (per pod)."""
    took: float | None = None
    accuracy: float | None = None
    """The last online accuracy the operator measured (when it retrained or gave up)."""


class Soak:
    def __init__(self, config: Config, workdir: pathlib.Path) -> None:
        self.config = config
        self.workdir = workdir
        self.names = [f"svc-{i:02d}" for i in range(config.services)]
        self.models = [f"model-{k}" for k in range(min(config.models, config.services))]
        self.load = Load()
        self.degradations: list[Degradation] = []
        self.faults_cleared: float | None = None
        self.samples: list[dict[str, Any]] = []
        self.events: list[tuple[float, str]] = []
        self.t0 = time.monotonic()

    def mark(self, what: str) -> None:
        self.events.append((round(time.monotonic() - self.t0, 1), what))
        progress(what)

    # --- API ----------------------------------------------------------------------------

    async def api(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        async with self.session.request(method, self.api_url + path, json=body) as response:
            data: dict[str, Any] = await response.json(content_type=None)
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {data}")
            return data

    async def create(self, plural: str, kind: str, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": "mlops.dev/v1alpha1",
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        }
        await self.api("POST", f"{GROUP_PATH}/{plural}", body)

    async def items(self, plural: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self.api("GET", f"{GROUP_PATH}/{plural}"))["items"]
        return items

    async def wait(self, what: str, done: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not await done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"soak: timed out waiting for {what}")
            await asyncio.sleep(1.0)

    # --- load -----------------------------------------------------------------------------

    async def address(self, name: str) -> str | None:
        try:
            svc = await self.api("GET", f"/api/v1/namespaces/{NAMESPACE}/services/{name}-predictor")
        except RuntimeError:
            return None
        annotations = (svc.get("metadata") or {}).get("annotations") or {}
        address: str | None = annotations.get(ADDRESS)
        return address

    async def post(self, name: str, url: str, body: Any) -> Any:
        """POST ``body``; a connection closed before any answer is retried once (both calls
        are safe to repeat: a prediction has no effect, feedback for a known id counts once)."""
        for attempt in (1, 2):
            try:
                async with self.session.post(url, json=body) as r:
                    answer = await r.json(content_type=None)
                    if r.status != 200:
                        raise RuntimeError(f"{url.rsplit('/', 1)[-1]} {r.status}: {answer}")
                    return answer
            except RETRIED as exc:
                if attempt == 2:
                    raise
                now = time.monotonic() - self.t0
                self.load.retried.append((now, f"{name}: {exc!r}"[:200]))
        raise AssertionError("unreachable")

    async def drive(self, name: str, model: str, stop: asyncio.Event) -> None:
        """One service's loop: predict 5 rows, send their labels (wrong ones while the service
        is degraded), every period."""
        rng = random.Random(name)
        base = await self.address(name)
        while not stop.is_set():
            started = time.monotonic()
            picks = rng.sample(range(len(self.rows)), 5)
            batch = [self.rows[i] for i in picks]
            payload = {
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [5, len(batch[0])],
                        "datatype": "FP64",
                        "data": [x for row in batch for x in row],
                    }
                ]
            }
            try:
                if base is None:
                    raise RuntimeError("no address yet")
                body = await self.post(name, f"{base}/v2/models/{model}/infer", payload)
                self.load.predictions += 1
                ids = body["parameters"]["prediction_ids"]
                wrong = name in self.load.wrong
                labels = [1 - self.labels[i] if wrong else self.labels[i] for i in picks]
                pairs = zip(ids, labels, strict=True)
                feedback = {"feedback": [{"id": i, "label": y} for i, y in pairs]}
                await self.post(name, f"{base}/v1/models/{model}/feedback", feedback)
                self.load.feedback += 1
            except (aiohttp.ClientError, RuntimeError, KeyError, TimeoutError) as exc:
                self.load.errors.append((time.monotonic() - self.t0, f"{name}: {exc!r}"[:200]))
                base = await self.address(name)
            await asyncio.sleep(max(0.0, self.config.period_seconds - (time.monotonic() - started)))

    # --- scenario ---------------------------------------------------------------------------

    def deadline(self, service_age: float, failure_limit: int = 2, interval: float = 10.0) -> float:
        """Seconds a degradation may take to start a retraining. The server's online accuracy
        is over its last ``DEFAULT_WINDOW`` labels (per pod), so wrong labels must make up
        about 28% of the window to take a 0.95-accurate model under the policy's 0.7: a
        service labelled for long needs ``0.28 * window / label rate`` seconds of them; then
        ``failureLimit`` evaluations ``intervalSeconds`` apart; then the slack of a loaded
        machine."""
        rate = 5 / self.config.period_seconds
        window = min(DEFAULT_WINDOW, service_age * rate)
        share = (0.95 - 0.7) / 0.9  # of wrong labels in the window that breaches
        # w wrong labels among window + w: w / (window + w) > share.
        wrong = share * window / (1 - share)
        return wrong / rate + (failure_limit + 1) * interval + 60.0

    async def degrade(self, name: str, started: float) -> None:
        """Wrong labels for ``name`` until the operator starts a retraining for it."""
        isvc = await self.api("GET", f"{GROUP_PATH}/inferenceservices/{name}")
        before = ((isvc.get("status") or {}).get("retraining") or {}).get("count", 0)
        age = time.monotonic() - started
        rate = 5 / self.config.period_seconds
        item = Degradation(
            name,
            round(time.monotonic() - self.t0, 1),
            round(self.deadline(age), 1),
            int(min(DEFAULT_WINDOW, age * rate)),
        )
        self.degradations.append(item)
        self.mark(f"degradation: wrong labels for {name} (deadline {item.deadline:.0f} s)")
        self.load.wrong.add(name)
        status: dict[str, Any] = {}
        try:

            async def retraining() -> bool:
                nonlocal status
                obj = await self.api("GET", f"{GROUP_PATH}/inferenceservices/{name}")
                status = obj.get("status") or {}
                return bool((status.get("retraining") or {}).get("count", 0) > before)

            try:
                await self.wait(f"{name} to retrain", retraining, timeout=item.deadline)
                item.took = round(time.monotonic() - self.t0 - item.at, 1)
                self.mark(f"{name} retraining started after {item.took:.0f} s")
            except TimeoutError:
                self.mark(f"{name} did not start a retraining within {item.deadline:.0f} s")
        finally:
            self.load.wrong.discard(name)
            for metric in (status.get("lastEvaluation") or {}).get("metrics") or []:
                if metric.get("name") == "online-accuracy" and metric.get("value") is not None:
                    item.accuracy = round(float(metric["value"]), 3)

    async def scenario(self, fault_until: float, ready: dict[str, float]) -> None:
        """Faults and degradations spread over the fault window; each degradation runs on
        its own (it may take minutes), and all have ended when the faults are cleared."""
        steps = max(len(FAULTS), self.config.degradations)
        gap = fault_until / (steps + 1)
        degradations = []
        try:
            for step in range(steps):
                await asyncio.sleep(max(0.0, self.t_start + gap * (step + 1) - time.monotonic()))
                if step < len(FAULTS):
                    fault = FAULTS[step]
                    await asyncio.to_thread(self.sandbox.ask, {"fault": fault})
                    self.mark(f"fault: {fault}")
                if step < self.config.degradations:
                    name = self.names[(step * 7) % len(self.names)]
                    degradations.append(asyncio.create_task(self.degrade(name, ready[name])))
            await asyncio.sleep(max(0.0, self.t_start + fault_until - time.monotonic()))
            await asyncio.gather(*degradations)
        finally:
            for task in degradations:
                task.cancel()
            await asyncio.to_thread(self.sandbox.ask, "clear")
            self.faults_cleared = time.monotonic()
            self.mark("faults cleared")

    # --- sampling ---------------------------------------------------------------------------

    async def operator_metrics(self) -> dict[str, float]:
        values: dict[str, float] = {}
        async with self.session.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as r:
            text = await r.text()
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            metric = name.split("{", 1)[0]
            values[metric] = values.get(metric, 0.0) + float(value)
        return values

    async def sample(self) -> dict[str, Any]:
        sandbox = psutil.Process(self.sandbox.pid)
        servers: list[dict[str, Any]] = []
        for child in sandbox.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "serve" in child.cmdline():
                    servers.append(usage(child))
        metrics = await self.operator_metrics()
        stats = await asyncio.to_thread(self.sandbox.ask, "stats")
        held = await asyncio.to_thread(self.sandbox.ask, "objects")
        sample = {
            "t": round(time.monotonic() - self.t_start, 1),
            "operator": usage(psutil.Process(self.operator.process.pid)),
            "operator_tasks": metrics.get("mlops_operator_asyncio_tasks", 0.0),
            "operator_errors": metrics.get("mlops_operator_errors_total", 0.0),
            "sandbox": usage(sandbox),
            "servers": servers,
            "objects": held["objects"],
            "retention": held["retention"],
            "fault_hits": stats["fault_hits"],
            "predictions": self.load.predictions,
            "load_errors": len(self.load.errors),
            "retried": len(self.load.retried),
        }
        progress(
            f"sample t={sample['t']}s operator {sample['operator']['rss_mb']} MB "
            f"{sample['operator']['fds']} fds {sample['operator_tasks']:.0f} tasks; "
            f"sandbox {sample['sandbox']['rss_mb']} MB; {len(servers)} servers; "
            f"{self.load.predictions} predictions, {len(self.load.errors)} load errors"
        )
        return sample

    # --- the run ----------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        config = self.config
        self.rows, self.labels, csv = dataset()
        options = [
            f"--event-ttl={config.event_ttl:g}",
            f"--request-log-size={config.request_log_size}",
            f"--max-grace-seconds={config.grace_seconds:g}",
        ]
        if config.trace_memory:
            options.append("--trace-memory")
        self.sandbox = SandboxProcess(self.workdir / "sandbox", [NAMESPACE], *options)
        self.api_url = self.sandbox.api_url
        try:
            s3 = client_from_env(self.sandbox.env)
            s3.create_bucket(Bucket=DATA_BUCKET)
            s3.put_object(Bucket=DATA_BUCKET, Key=DATA_KEY, Body=csv)
            s3.close()
            self.metrics_port = free_port()
            self.operator = OperatorProcess(
                self.sandbox.env,
                self.workdir / "operator.log",
                namespace=NAMESPACE,
                env={
                    "MLOPS_RUNTIME_IMAGE": "mlops-operator-runtime:sandbox",
                    "MLOPS_METRICS_PORT": str(self.metrics_port),
                    # Finished training Jobs go after a minute (the default keeps them a day).
                    "MLOPS_JOB_TTL_SECONDS": "60",
                    "MALLOC_ARENA_MAX": "2",
                },
            )
            try:
                async with aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=30),
                    connector=aiohttp.TCPConnector(limit=200),
                ) as self.session:
                    return await self._run(config)
            finally:
                self.operator.stop()
        finally:
            self.sandbox.stop()

    async def _run(self, config: Config) -> dict[str, Any]:
        for model in self.models:
            await self.create("trainingjobs", "TrainingJob", f"{model}-a", trainingjob_spec(model))

        async def versions_ready() -> bool:
            ready = [
                mv
                for mv in await self.items("modelversions")
                if (mv.get("status") or {}).get("phase") == "Ready"
            ]
            return len(ready) >= len(self.models)

        await self.wait("the first model versions", versions_ready, timeout=300)
        self.mark(f"{len(self.models)} models trained")
        for i, name in enumerate(self.names):
            await self.create(
                "inferenceservices",
                "InferenceService",
                name,
                service_spec(self.models[i % len(self.models)]),
            )

        async def services_ready() -> bool:
            items = await self.items("inferenceservices")
            ready = [s for s in items if (s.get("status") or {}).get("phase") == "Ready"]
            return len(ready) == len(self.names)

        await self.wait("every service Ready", services_ready, timeout=60 + 15 * len(self.names))
        self.mark(f"{len(self.names)} services Ready")
        stop = asyncio.Event()
        self.t_start = time.monotonic()
        drivers = [
            asyncio.create_task(self.drive(name, self.models[i % len(self.models)], stop))
            for i, name in enumerate(self.names)
        ]
        duration = config.minutes * 60
        fault_until = duration * config.fault_share
        self.faults_cleared = None
        ready = dict.fromkeys(self.names, self.t_start)  # labels flow from now on
        scenario = asyncio.create_task(self.scenario(fault_until, ready))
        try:
            while True:
                self.samples.append(await self.sample())
                left = self.t_start + duration - time.monotonic()
                if left <= 1.0:
                    break
                await asyncio.sleep(min(config.sample_seconds, left))
        finally:
            stop.set()
            await asyncio.gather(*drivers)
            scenario.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scenario
        cleared = duration if self.faults_cleared is None else self.faults_cleared - self.t_start
        quiet_from = round(cleared + config.settle_seconds, 1)
        faults = (await asyncio.to_thread(self.sandbox.stats))["faults"]
        memory = None
        if config.trace_memory:
            memory = await asyncio.to_thread(self.sandbox.ask, "memory")
        log = self.operator.output()
        return {
            "config": {
                k: str(v) if isinstance(v, pathlib.Path) else v
                for k, v in dataclasses.asdict(config).items()
            },
            "quiet_from": quiet_from,
            "events": self.events,
            "samples": self.samples,
            "load": {
                "predictions": self.load.predictions,
                "feedback": self.load.feedback,
                "errors": [
                    [round(t - (self.t_start - self.t0), 1), e] for t, e in self.load.errors
                ],
                "retried": [
                    [round(t - (self.t_start - self.t0), 1), e] for t, e in self.load.retried
                ],
            },
            "degradations": [dataclasses.asdict(d) for d in self.degradations],
            "faults": faults,
            "sandbox_memory": memory,
            "operator_log": {
                "tracebacks": log.count("Traceback"),
                "lines": len(log.splitlines()),
            },
            "retrainings": sum(
                ((s.get("status") or {}).get("retraining") or {}).get("count", 0)
                for s in await self.items("inferenceservices")
            ),
        }


def usage(process: psutil.Process) -> dict[str, Any]:
    with process.oneshot():
        return {
            "pid": process.pid,
            "rss_mb": round(process.memory_info().rss / 2**20, 1),
            "fds": process.num_fds(),
        }


def parse(argv: list[str] | None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the measured run")
    parser.add_argument("--services", type=int, default=50, help="InferenceServices (pods)")
    parser.add_argument("--models", type=int, default=5, help="models the services share")
    parser.add_argument("--sample-seconds", type=float, default=60.0)
    parser.add_argument(
        "--degradations", type=int, default=4, help="services given wrong labels, in turn"
    )
    parser.add_argument(
        "--event-ttl", type=float, default=120.0, help="the sandbox's Event TTL, seconds"
    )
    parser.add_argument(
        "--trace-memory",
        action="store_true",
        help="trace the sandbox's allocations; the report lists the lines that grew",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="~1 minute with 3 services, sampled every 10 s (keeps the code from rotting)",
    )
    parser.add_argument("--output", type=pathlib.Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    if args.quick:
        return Config(
            minutes=1.0,
            services=3,
            models=1,
            sample_seconds=10.0,
            fault_share=0.5,
            settle_seconds=15.0,
            degradations=1,
            event_ttl=20.0,
            request_log_size=500,
            trace_memory=args.trace_memory,
            output=args.output,
        )
    return Config(
        minutes=args.minutes,
        services=args.services,
        models=args.models,
        sample_seconds=args.sample_seconds,
        degradations=args.degradations,
        event_ttl=args.event_ttl,
        trace_memory=args.trace_memory,
        output=args.output,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the soak, write ``<output>/soak.md`` and ``soak.json``; exit 1 if a verdict fails."""
    config = parse(argv)

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # so the operator and the sandbox are stopped on the way out

    signal.signal(signal.SIGTERM, interrupt)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mlops-soak-") as tmp:
        data = asyncio.run(Soak(config, pathlib.Path(tmp)).run())
    data["machine"] = machine(["kopf", "scikit-learn"])
    data["date"] = now()
    data["loadavg"] = {"before": load_before, "after": os.getloadavg()}
    data["verdict"] = report.verdict(data)
    config.output.mkdir(parents=True, exist_ok=True)
    (config.output / f"{config.name}.json").write_text(json.dumps(data, indent=1) + "\n")
    (config.output / f"{config.name}.md").write_text(report.render(data))
    print(report.render(data))
    return 0 if data["verdict"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
