"""The operator at 1,000 InferenceServices and 1,000 TrainingJobs, beside an empty kopf
operator (the framework's floor), against the sandbox API. ``make bench-operator``.

One process orchestrates real processes over real sockets: the sandbox (API emulator + S3,
workload runner off) in a process of its own, then our operator, then the empty one, each
over the same objects in a namespace of its own and never both at once. See ``report.py``
for what is computed and ``bench/results/operator.md`` for what was measured last.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import pathlib
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psutil  # noqa: E402

from bench.common import (  # noqa: E402
    machine,
    now,
    previous_results,
    rerender,
    tree_usage,
    write_results,
)
from bench.operator import report  # noqa: E402
from bench.sandbox_process import SandboxExited, SandboxProcess  # noqa: E402
from mlops_sandbox.process import OperatorProcess  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
OPERATOR_MALLOC_ARENA_MAX = "2"
"""What ``images/operator/Dockerfile`` sets: glibc's malloc arenas, one per thread by default
(the API client's threads), hold ~20 MB of freed memory after a burst."""
GROUP_PATH = "/apis/mlops.dev/v1alpha1"
WATCHED = ("trainingjobs", "modelversions", "inferenceservices", "jobs", "deployments", "services")
"""What both operators watch: an operator is listening once it opened a watch on each."""
DATA_BUCKET = "datasets"
DATASET_KEY = "bench/tabular.csv"
ARTIFACT_PREFIX = "bench/model/1/"
NAMESPACES = {"ours": "bench-ours", "floor": "bench-floor"}
QUIET_CORES = 0.10
"""An operator is quiet when it uses less than this share of a core over QUIET_WINDOW."""
QUIET_WINDOW = 2.0
QUIET_TIMEOUT = 60.0


class BenchError(Exception):
    """Something did not converge in time: the run is void, exit non-zero."""


_started = time.monotonic()


def progress(message: str) -> None:
    print(f"[{time.monotonic() - _started:6.1f}s] {message}", flush=True)


# --- objects --------------------------------------------------------------------------------


def _name(prefix: str, i: int) -> str:
    return f"{prefix}-{i:05d}"


def model_version(m: int, digest: str) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": f"{_name('model', m)}-v1"},
        "spec": {
            "model": _name("model", m),
            "version": 1,
            "task": "classification",
            "artifact": {"uri": f"s3://mlops-artifacts/{ARTIFACT_PREFIX}", "digest": digest},
            "metrics": {"accuracy": 0.95},
            "gates": [{"metric": "accuracy", "min": 0.9}],
        },
    }


def inference_service(i: int, models: int) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": _name("svc", i)},
        "spec": {"model": _name("model", 1 + (i - 1) % models), "version": "latest", "replicas": 1},
    }


def training_job(i: int, models: int) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": _name("train", i)},
        "spec": {
            "model": _name("model", 1 + (i - 1) % models),
            "dataset": {"uri": f"s3://{DATA_BUCKET}/{DATASET_KEY}", "target": "target"},
            "estimator": {"className": "sklearn.linear_model.LogisticRegression"},
            "backoffLimit": 1,
        },
    }


def upload_s3_objects(env: dict[str, str]) -> str:
    """A small dataset and one real fitted model in the sandbox S3; the model's digest."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    from mlops_sandbox.s3 import client_from_env

    rows = [(i / 20, (i * 7 % 20) / 20, int(i >= 10)) for i in range(20)]
    csv = "a,b,target\n" + "".join(f"{a},{b},{t}\n" for a, b, t in rows)
    buffer = io.BytesIO()
    joblib.dump(LogisticRegression().fit([r[:2] for r in rows], [r[2] for r in rows]), buffer)
    artifact = buffer.getvalue()
    s3 = client_from_env(env)
    try:
        s3.create_bucket(Bucket=DATA_BUCKET)
        s3.put_object(Bucket=DATA_BUCKET, Key=DATASET_KEY, Body=csv.encode())
        s3.put_object(Bucket="mlops-artifacts", Key=ARTIFACT_PREFIX + "model.joblib", Body=artifact)
    finally:
        s3.close()
    return "sha256:" + hashlib.sha256(artifact).hexdigest()


# --- the API, as the benchmark's client -----------------------------------------------------


@dataclasses.dataclass
class Seen:
    """When (monotonic) the watches first saw each object in a state."""

    added: dict[str, float] = dataclasses.field(default_factory=dict)
    status: dict[str, float] = dataclasses.field(default_factory=dict)
    """Our operator wrote its status (``observedGeneration`` or ``phase``)."""
    ready: dict[str, float] = dataclasses.field(default_factory=dict)
    relists: int = 0


class Client:
    """The benchmark's requests, marked with its own User-Agent so the emulator's counts
    tell them from the operator's."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def request(
        self, method: str, path: str, body: Any = None, *, merge: bool = False
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/merge-patch+json"} if merge else {}
        async with self.session.request(
            method, self.base + path, json=body, headers=headers
        ) as response:
            text = await response.text()
            return response.status, (json.loads(text) if text else None)

    async def create(self, path: str, body: dict[str, Any]) -> None:
        status, answer = await self.request("POST", path, body)
        if status != 201:
            raise BenchError(f"POST {path} {body['metadata']['name']}: HTTP {status}: {answer}")

    async def list(self, path: str) -> tuple[list[dict[str, Any]], str]:
        status, answer = await self.request("GET", path)
        if status != 200:
            raise BenchError(f"GET {path}: HTTP {status}: {answer}")
        return answer["items"], answer["metadata"]["resourceVersion"]

    async def watch(
        self, path: str, on_event: Callable[[str, dict[str, Any]], None], seen: Seen
    ) -> None:
        """Follow ``path`` forever from its current state; relist when the watch expires."""
        while True:
            items, rv = await self.list(path)
            for obj in items:
                on_event("ADDED", obj)
            expired = False
            while not expired:
                params = {"watch": "true", "resourceVersion": rv, "timeoutSeconds": "600"}
                async with self.session.get(self.base + path, params=params) as response:
                    async for line in response.content:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            expired = True
                            seen.relists += 1
                            break
                        obj = event["object"]
                        rv = obj["metadata"]["resourceVersion"]
                        on_event(event["type"], obj)


def _watch_primary(seen: Seen, now_: Callable[[], float]) -> Callable[[str, dict[str, Any]], None]:
    def on_event(kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        name = meta["name"]
        at = now_()
        seen.added.setdefault(name, at)
        status = obj.get("status") or {}
        if status.get("observedGeneration") is not None or status.get("phase"):
            seen.status.setdefault(name, at)
        if status.get("phase") == "Ready":
            seen.ready.setdefault(name, at)

    return on_event


def _watch_children(
    seen: Seen, now_: Callable[[], float], fake_ready: Callable[[dict[str, Any]], None] | None
) -> Callable[[str, dict[str, Any]], None]:
    def on_event(kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if name not in seen.added:
            seen.added[name] = now_()
            if fake_ready is not None:
                fake_ready(obj)

    return on_event


# --- measuring ------------------------------------------------------------------------------


@dataclasses.dataclass
class Snapshot:
    at: float
    operator_cpu: float
    emulator_cpu: float
    client_cpu: float
    requests: list[dict[str, Any]]


class Meter:
    """CPU of the operator, the emulator and this process, and the emulator's counters."""

    def __init__(self, sandbox: SandboxProcess, operator_pid: int) -> None:
        self.sandbox = sandbox
        self.operator_pid = operator_pid
        self.me = psutil.Process()

    def operator_cpu(self) -> float:
        return tree_usage(self.operator_pid).cpu_seconds

    def snapshot(self) -> Snapshot:
        times = self.me.cpu_times()
        return Snapshot(
            at=time.monotonic(),
            operator_cpu=self.operator_cpu(),
            emulator_cpu=tree_usage(self.sandbox.pid).cpu_seconds,
            client_cpu=times.user + times.system,
            requests=self.sandbox.stats()["requests"],
        )

    async def wait_quiet(self) -> float:
        """Wait until the operator uses under QUIET_CORES of a core over QUIET_WINDOW; the
        seconds waited. Gives up (not an error: timers keep some operators busy) after
        QUIET_TIMEOUT."""
        start = time.monotonic()
        last = self.operator_cpu()
        while time.monotonic() - start < QUIET_TIMEOUT:
            await asyncio.sleep(QUIET_WINDOW)
            cpu = self.operator_cpu()
            if cpu - last < QUIET_CORES * QUIET_WINDOW:
                return time.monotonic() - start
            last = cpu
        progress(f"  not quiet after {QUIET_TIMEOUT:.0f}s; going on")
        return time.monotonic() - start


def phase_usage(before: Snapshot, after: Snapshot) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the operator's figures, the emulator's) between two snapshots."""
    requests = report.request_delta(before.requests, after.requests)
    operator_requests = sum(requests["operator"].values())
    total = operator_requests + sum(requests["bench"].values())
    ours = {
        "cpu_seconds": after.operator_cpu - before.operator_cpu,
        "requests": requests["operator"],
        "requests_total": operator_requests,
    }
    emulator = {
        "cpu_seconds": after.emulator_cpu - before.emulator_cpu,
        "client_cpu_seconds": after.client_cpu - before.client_cpu,
        "requests": total,
        "bench_requests": requests["bench"],
        "seconds_per_request": report.seconds_per_request(before.requests, after.requests),
    }
    return ours, emulator


async def wait_until(what: str, done: Callable[[], bool], timeout: float) -> float:
    """Poll ``done`` until true; the seconds it took. Raises BenchError naming ``what``."""
    start = time.monotonic()
    while not done():
        if time.monotonic() - start > timeout:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


# --- one operator ---------------------------------------------------------------------------


@dataclasses.dataclass
class Config:
    count: int
    models: int
    trickle: int
    trickle_rate: float
    concurrency: int
    idle_seconds: float
    timeout: float
    kinds: tuple[str, ...] = ("isvc", "tj")


class Side:
    """One operator's run: its namespace, its watches, its phases."""

    def __init__(
        self, name: str, client: Client, sandbox: SandboxProcess, config: Config, pid: int
    ) -> None:
        self.name = name
        self.ours = name == "ours"
        self.namespace = NAMESPACES[name]
        self.client = client
        self.config = config
        self.meter = Meter(sandbox, pid)
        self.isvcs, self.deployments, self.tjs, self.jobs = Seen(), Seen(), Seen(), Seen()
        self.tasks: list[asyncio.Task[None]] = []
        self.ready_sem = asyncio.Semaphore(4)

    def ns_path(self, group_path: str, plural: str) -> str:
        return f"{group_path}/namespaces/{self.namespace}/{plural}"

    def start_watches(self) -> None:
        clock = time.monotonic
        watches = [
            (
                self.ns_path(GROUP_PATH, "inferenceservices"),
                _watch_primary(self.isvcs, clock),
                self.isvcs,
            ),
            (self.ns_path(GROUP_PATH, "trainingjobs"), _watch_primary(self.tjs, clock), self.tjs),
            (
                self.ns_path("/apis/apps/v1", "deployments"),
                _watch_children(self.deployments, clock, self._fake_ready),
                self.deployments,
            ),
            (
                self.ns_path("/apis/batch/v1", "jobs"),
                _watch_children(self.jobs, clock, None),
                self.jobs,
            ),
        ]
        for path, on_event, seen in watches:
            self.tasks.append(asyncio.create_task(self.client.watch(path, on_event, seen)))

    def _fake_ready(self, deployment: dict[str, Any]) -> None:
        """Be the kubelet and the Deployment controller: every replica ready at once."""
        meta = deployment["metadata"]
        replicas = (deployment.get("spec") or {}).get("replicas", 1)
        status = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        }
        path = self.ns_path("/apis/apps/v1", "deployments") + f"/{meta['name']}/status"

        async def write() -> None:
            async with self.ready_sem:
                code, answer = await self.client.request(
                    "PATCH", path, {"status": status}, merge=True
                )
            if code != 200:
                progress(f"  faking readiness of {meta['name']}: HTTP {code}: {answer}")

        self.tasks.append(asyncio.create_task(write()))

    async def stop_watches(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()

    async def create_burst(
        self, path: str, bodies: list[dict[str, Any]]
    ) -> tuple[dict[str, float], list[float]]:
        created: dict[str, float] = {}
        latencies: list[float] = []
        semaphore = asyncio.Semaphore(self.config.concurrency)

        async def one(body: dict[str, Any]) -> None:
            async with semaphore:
                sent = time.monotonic()
                await self.client.create(path, body)
                done = time.monotonic()
            created[body["metadata"]["name"]] = done
            latencies.append(done - sent)

        await asyncio.gather(*(one(body) for body in bodies))
        return created, latencies

    async def create_trickle(
        self, path: str, bodies: list[dict[str, Any]]
    ) -> tuple[dict[str, float], list[float]]:
        created: dict[str, float] = {}
        latencies: list[float] = []
        start = time.monotonic()

        async def one(i: int, body: dict[str, Any]) -> None:
            await asyncio.sleep(max(0.0, start + i / self.config.trickle_rate - time.monotonic()))
            sent = time.monotonic()
            await self.client.create(path, body)
            done = time.monotonic()
            created[body["metadata"]["name"]] = done
            latencies.append(done - sent)

        await asyncio.gather(*(one(i, body) for i, body in enumerate(bodies)))
        return created, latencies

    async def phase(
        self, phase: str, bodies: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        kind = phase.split("-")[0]
        primary, children = (
            (self.isvcs, self.deployments) if kind == "isvc" else (self.tjs, self.jobs)
        )
        plural = "inferenceservices" if kind == "isvc" else "trainingjobs"
        suffix = "predictor" if kind == "isvc" else "train"

        def child_name(n: str) -> str:
            return f"{n}-{suffix}"

        progress(f"{self.name}: {phase}: creating {len(bodies)} {plural}")
        before = self.meter.snapshot()
        create = self.create_burst if phase.endswith("burst") else self.create_trickle
        created, create_latencies = await create(self.ns_path(GROUP_PATH, plural), bodies)
        create_seconds = time.monotonic() - before.at
        names = list(created)
        progress(f"{self.name}: {phase}: created in {create_seconds:.1f}s; waiting")
        if self.ours:
            await wait_until(
                f"{len(names)} {report.CHILD_KIND[kind]}s of {phase} ({self.name})",
                lambda: all(child_name(n) in children.added for n in names),
                self.config.timeout,
            )
            await wait_until(
                f"the status of {len(names)} {plural} of {phase} ({self.name})",
                lambda: all(n in primary.status for n in names),
                self.config.timeout,
            )
        if self.ours and kind == "isvc":
            await wait_until(
                f"{len(names)} {plural} of {phase} to be Ready ({self.name})",
                lambda: all(n in primary.ready for n in names),
                self.config.timeout,
            )
        absorbed = time.monotonic()
        await self.meter.wait_quiet()
        after = self.meter.snapshot()
        usage, emulator = phase_usage(before, after)
        result: dict[str, Any] = {
            "created": len(names),
            "create_seconds": create_seconds,
            "create_rate": len(names) / create_seconds if create_seconds else None,
            "create_latency": report.latency_summary(create_latencies),
            "absorbed_seconds": absorbed - before.at,
            "wall_seconds": after.at - before.at,
            **usage,
        }
        if self.ours:
            child_at = {n: children.added[child_name(n)] for n in names}
            latencies, missing = report.pair_latencies(created, child_at)
            result["child_latency"] = report.latency_summary(latencies)
            result["missing_children"] = missing
            result["children_seconds"] = max(child_at.values()) - before.at
            status, _ = report.pair_latencies(created, primary.status)
            result["status_latency"] = report.latency_summary(status)
            if kind == "isvc":
                ready, _ = report.pair_latencies(created, primary.ready)
                result["ready_latency"] = report.latency_summary(ready)
        line = f"{self.name}: {phase}: absorbed after {result['absorbed_seconds']:.1f}s"
        if self.ours:
            lat = result["child_latency"]
            line += f", create→child p50 {lat['p50']:.3f}s p99 {lat['p99']:.3f}s"
        split = report.split_requests(usage["requests"])
        line += (
            f", operator CPU {usage['cpu_seconds']:.1f}s, per object"
            f" {split['reads'] / len(names):.2f} reads, {split['writes'] / len(names):.2f} writes,"
            f" {split['events'] / len(names):.2f} Events"
        )
        progress(line)
        return result, emulator

    async def idle(self) -> tuple[dict[str, Any], dict[str, Any]]:
        progress(f"{self.name}: idle for {self.config.idle_seconds:g}s")
        before = self.meter.snapshot()
        await asyncio.sleep(self.config.idle_seconds)
        after = self.meter.snapshot()
        usage, emulator = phase_usage(before, after)
        usage["seconds"] = after.at - before.at
        progress(f"{self.name}: idle CPU {usage['cpu_seconds']:.2f}s")
        return usage, emulator


async def prepare_namespace(
    client: Client, namespace: str, digest: str, n: int, statuses: dict[str, Any] | None
) -> None:
    """Create the ModelVersions (and, for the floor, give them our operator's statuses)."""
    path = f"{GROUP_PATH}/namespaces/{namespace}/modelversions"
    semaphore = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        body = model_version(i, digest)
        async with semaphore:
            await client.create(path, body)
            status = (statuses or {}).get(body["metadata"]["name"])
            if status is not None:
                name = body["metadata"]["name"]
                code, answer = await client.request(
                    "PATCH", f"{path}/{name}/status", {"status": status}, merge=True
                )
                if code != 200:
                    raise BenchError(f"PATCH {name}/status: HTTP {code}: {answer}")

    await asyncio.gather(*(one(i) for i in range(1, n + 1)))


async def run_side(
    name: str,
    client: Client,
    sandbox: SandboxProcess,
    config: Config,
    start: Callable[[], Any],
    digest: str,
    statuses: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Prepare, start the operator, run the phases and the idle window, stop it.
    Returns (the operator's figures, the emulator's per phase, the ModelVersions' statuses)."""
    namespace = NAMESPACES[name]
    total = config.models
    mv_path = f"{GROUP_PATH}/namespaces/{namespace}/modelversions"
    progress(f"{name}: creating {total} ModelVersions in {namespace}")
    await prepare_namespace(client, namespace, digest, total, statuses)
    started = sandbox.stats()["requests"]
    proc = start()
    try:
        side = Side(name, client, sandbox, config, proc.process.pid)

        def settled(items: list[dict[str, Any]]) -> bool:
            watching = report.request_delta(started, sandbox.stats()["requests"])["operator"]
            if not all(f"watch {plural}" in watching for plural in WATCHED):
                return False
            return not side.ours or (
                len(items) == total
                and all((i.get("status") or {}).get("phase") == "Ready" for i in items)
            )

        progress(f"{name}: operator started (pid {proc.process.pid}); waiting for it to settle")
        deadline = time.monotonic() + config.timeout
        while not settled((await client.list(mv_path))[0]):
            if proc.process.poll() is not None:
                raise BenchError(f"the {name} operator exited: see {proc.log_path}")
            if time.monotonic() > deadline:
                raise BenchError(f"timed out waiting for {name} to verify the ModelVersions")
            await asyncio.sleep(1.0)
        await side.meter.wait_quiet()
        side.start_watches()
        phases: dict[str, Any] = {}
        emulator: dict[str, Any] = {}
        n, t = config.count, config.trickle
        plan: list[tuple[str, Callable[[int, int], dict[str, Any]], range]] = [
            ("isvc-burst", inference_service, range(1, n + 1)),
            ("isvc-trickle", inference_service, range(n + 1, n + t + 1)),
            ("tj-burst", training_job, range(1, n + 1)),
            ("tj-trickle", training_job, range(n + 1, n + t + 1)),
        ]
        for phase, build, indexes in plan:
            if phase.split("-")[0] not in config.kinds:
                continue
            bodies = [build(i, config.models) for i in indexes]
            phases[phase], emulator[phase] = await side.phase(phase, bodies)
            if proc.process.poll() is not None:
                raise BenchError(f"the {name} operator exited: see {proc.log_path}")
        idle, emulator["idle"] = await side.idle()
        usage = tree_usage(proc.process.pid)
        await side.stop_watches()
        statuses_out = {
            i["metadata"]["name"]: i.get("status") for i in (await client.list(mv_path))[0]
        }
        relists = sum(s.relists for s in (side.isvcs, side.tjs, side.deployments, side.jobs))
        result = {
            "namespace": namespace,
            "phases": phases,
            "idle": idle,
            "rss_bytes": usage.rss_bytes,
            "pss_bytes": usage.pss_bytes,
            "bench_watch_relists": relists,
        }
        progress(
            f"{name}: RSS {usage.rss_bytes / 2**20:.0f} MB, PSS {usage.pss_bytes / 2**20:.0f} MB"
        )
        return result, emulator, statuses_out
    finally:
        proc.stop()
        output = proc.output()
        problems = [m for m in ("Traceback", "Error") if m in output]
        if problems:
            progress(f"{name}: the operator's log mentions {problems}: {proc.log_path}")


async def main_async(config: Config, workdir: pathlib.Path) -> dict[str, Any]:
    started_at = now()
    load_before = os.getloadavg()
    wall = time.monotonic()
    with contextlib.ExitStack() as stack:
        progress(f"starting the sandbox (state in {workdir})")
        sandbox = SandboxProcess(workdir / "sandbox", list(NAMESPACES.values()), "--no-workloads")
        stack.callback(sandbox.stop)
        digest = upload_s3_objects(sandbox.env)
        headers = {"User-Agent": f"{report.BENCH_CLIENT}/1"}
        connector = aiohttp.TCPConnector(limit=64)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        async with aiohttp.ClientSession(
            headers=headers, connector=connector, timeout=timeout
        ) as session:
            client = Client(session, sandbox.api_url)
            # Both operators run with the allocator setting of the operator image.
            image_env = {"MALLOC_ARENA_MAX": OPERATOR_MALLOC_ARENA_MAX}
            operator_env = {"MLOPS_RUNTIME_IMAGE": "mlops-operator-runtime:bench", **image_env}

            def start_ours() -> OperatorProcess:
                return OperatorProcess(
                    sandbox.env,
                    workdir / "operator-ours.log",
                    namespace=NAMESPACES["ours"],
                    env=operator_env,
                )

            def start_floor() -> OperatorProcess:
                return OperatorProcess(
                    sandbox.env,
                    workdir / "operator-floor.log",
                    namespace=NAMESPACES["floor"],
                    command=[sys.executable, str(HERE / "empty_operator.py")],
                    env=image_env,
                )

            ours, em_ours, statuses = await run_side(
                "ours", client, sandbox, config, start_ours, digest, None
            )
            floor, em_floor, _ = await run_side(
                "floor", client, sandbox, config, start_floor, digest, statuses
            )
    return {
        "benchmark": "operator",
        "started": started_at,
        "finished": now(),
        "wall_seconds": time.monotonic() - wall,
        "machine": machine(["kopf", "kmock", "aiohttp", "kubernetes", "pydantic", "moto"]),
        "config": dataclasses.asdict(config),
        "load": _load(load_before, os.getloadavg()),
        "operators": {"ours": ours, "floor": floor},
        "emulator": {"ours": em_ours, "floor": em_floor},
    }


def _load(before: tuple[float, float, float], after: tuple[float, float, float]) -> str:
    """1/5/15-minute load averages before and after the run: what else used the cores."""
    return " / ".join(f"{b:.2f} → {a:.2f}" for b, a in zip(before, after, strict=True))


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="objects per burst (1000)")
    parser.add_argument(
        "--models",
        type=int,
        default=None,
        help="models (one ModelVersion each) the services share (count/100, at least 1)",
    )
    parser.add_argument(
        "--trickle", type=int, default=None, help="objects per trickle (count/10, at least 10)"
    )
    parser.add_argument("--trickle-rate", type=float, default=10.0, help="trickle creates/s")
    parser.add_argument("--concurrency", type=int, default=16, help="burst client concurrency")
    parser.add_argument(
        "--kinds",
        default="isvc,tj",
        help="which phases: isvc (InferenceServices), tj (TrainingJobs), or both (isvc,tj)",
    )
    parser.add_argument("--idle", type=float, default=20.0, help="idle window, seconds")
    parser.add_argument(
        "--timeout", type=float, default=None, help="per wait, seconds (120 + 0.3 s/object)"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the report, do not write results/"
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="only re-render operator.md from operator.json (after editing analysis.md)",
    )
    parser.add_argument(
        "--workdir", type=pathlib.Path, default=None, help="keep logs here (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    kinds = tuple(k for k in ("isvc", "tj") if k in args.kinds.split(","))
    if not kinds:
        parser.error("--kinds: isvc, tj or isvc,tj")
    if args.render:
        return rerender(report.results_name({"count": args.count}), report.render)
    config = Config(
        count=args.count,
        models=args.models if args.models is not None else max(1, args.count // 100),
        trickle=args.trickle if args.trickle is not None else max(10, args.count // 10),
        trickle_rate=args.trickle_rate,
        concurrency=args.concurrency,
        idle_seconds=args.idle,
        timeout=args.timeout if args.timeout is not None else 120 + 0.3 * args.count,
        kinds=kinds,
    )
    with _sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
        workdir = args.workdir or pathlib.Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            data = asyncio.run(main_async(config, workdir))
        except (BenchError, SandboxExited) as exc:
            print(f"bench-operator: FAILED: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench-operator: interrupted; processes stopped", file=sys.stderr)
            return 130
    if args.workdir:
        (args.workdir / "operator.json").write_text(json.dumps(data, indent=2))
    name = report.results_name(dataclasses.asdict(config))
    previous = previous_results(name)
    markdown = report.render(data, previous)
    if args.no_write:
        print(markdown)
    else:
        path = write_results(name, data, markdown)
        print(f"\n{markdown}\nwritten: {path} and {path.with_suffix('.json')}")
    failed = [c for c in report.verdict(data) if c.met is False]
    for check in failed:
        print(f"bench-operator: target missed: {check.target} (measured {check.value})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
