"""``mlops-sandbox demo``: training and serving end to end in the sandbox, narrated.

Starts the sandbox and the operator (a real process), uploads scikit-learn's breast-cancer
dataset to the sandbox S3, applies ``examples/trainingjob-classification.yaml``, waits for the
ModelVersion to be verified and Ready, applies ``examples/inferenceservice.yaml``, and sends
predictions and feedback to the model server through the Service.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import pathlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

import yaml

import mlops_operator
from mlops_operator.artifacts import layout
from mlops_sandbox.cluster import BUCKET, Sandbox
from mlops_sandbox.process import OperatorProcess, wait_for

if TYPE_CHECKING:
    from mlops_sandbox.board import StatusBoard

GROUP, VERSION, NAMESPACE = "mlops.dev", "v1alpha1", "default"
DATA_BUCKET = BUCKET
"""The example TrainingJobs read their datasets from the artifact bucket, under ``datasets/``."""
DATASET = "datasets/breast-cancer.csv"
EXAMPLE = "trainingjob-classification.yaml"
SHIFTED = "datasets/breast-cancer-2026.csv"
DEMO_INTERVAL = 5
DEMO_FAILURE_LIMIT = 2
SERVICE_EXAMPLE = "inferenceservice.yaml"


def examples_dir() -> pathlib.Path:
    """The repository's ``examples/`` folder."""
    return pathlib.Path(mlops_operator.__file__).resolve().parents[2] / "examples"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``mlops-sandbox demo`` options to ``parser``."""
    parser.add_argument(
        "--state-dir",
        type=pathlib.Path,
        default=pathlib.Path(".sandbox"),
        help="kubeconfig, env file, logs (default: .sandbox)",
    )
    parser.add_argument(
        "--once", action="store_true", help="exit after the scenario: 0 only if every step happened"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds allowed for each step (default 300)"
    )


class Narrator:
    """Prints each step with the time since the demo started."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.out: Callable[[str], None] = lambda text: print(text, flush=True)

    def say(self, text: str) -> None:
        """One line of narration."""
        self.out(f"[{time.monotonic() - self.start:6.1f}s] {text}")


def _upload_dataset(sandbox: Sandbox) -> str:
    from sklearn.datasets import load_breast_cancer

    from mlops_sandbox.s3 import client_from_env

    s3 = client_from_env(sandbox.env())
    frame = load_breast_cancer(as_frame=True).frame
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    s3.put_object(Bucket=DATA_BUCKET, Key=DATASET, Body=buffer.getvalue().encode())
    # The "newer data" retraining uses: the same patients, measured on a new scale.
    shifted = frame.copy()
    features = [c for c in frame.columns if c != "target"]
    shifted[features] = shifted[features] * 3
    newer = io.StringIO()
    shifted.to_csv(newer, index=False)
    s3.put_object(Bucket=DATA_BUCKET, Key=SHIFTED, Body=newer.getvalue().encode())
    s3.close()
    return f"s3://{DATA_BUCKET}/{DATASET} ({len(frame)} rows, {frame.shape[1]} columns)"


def _conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.get("conditions") or []}


def run_scenario(sandbox: Sandbox, say: Narrator, timeout: float) -> bool:
    """Apply the example and narrate until its ModelVersion is Ready; True if it all happened."""
    import kubernetes

    say.say(f"uploaded {_upload_dataset(sandbox)}")
    manifest = yaml.safe_load((examples_dir() / EXAMPLE).read_text())
    name = manifest["metadata"]["name"]
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(sandbox.kubeconfig), client_configuration=configuration
    )
    with kubernetes.client.ApiClient(configuration) as client:
        api = kubernetes.client.CustomObjectsApi(client)
        api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "trainingjobs", manifest)
        say.say(f"applied examples/{EXAMPLE}: TrainingJob {name}")

        seen: set[str] = set()

        def trained() -> dict[str, Any] | None:
            obj: dict[str, Any] = cast(
                dict[str, Any],
                api.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "trainingjobs", name),
            )
            status: dict[str, Any] = obj.get("status") or {}
            ready = _conditions(status).get("Ready", {})
            key = f"{status.get('phase')}/{ready.get('reason')}"
            if status.get("phase") and key not in seen:
                seen.add(key)
                say.say(
                    f"TrainingJob {name}: {status['phase']} ({ready.get('reason')}) "
                    f"{ready.get('message', '')}"
                )
            return status if status.get("phase") in ("Succeeded", "Failed") else None

        status = wait_for(f"TrainingJob {name} to finish", trained, timeout=timeout)
        if status["phase"] != "Succeeded":
            say.say(f"training failed: {status.get('failureReason')}")
            return False
        mv_name = status["modelVersion"]

        def verified() -> dict[str, Any] | None:
            mv = cast(
                dict[str, Any],
                api.get_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, "modelversions", mv_name
                ),
            )
            return mv if (mv.get("status") or {}).get("phase") in ("Ready", "Failed") else None

        mv = wait_for(f"ModelVersion {mv_name} to be verified", verified, timeout=timeout)
        spec, mv_status = mv["spec"], mv["status"]
        conds = _conditions(mv_status)
        say.say(f"ModelVersion {mv_name}: {mv_status['phase']}")
        print(f"    artifact  {layout.file_uri(spec['artifact']['uri'], layout.MODEL_FILE)}")
        print(
            f"    digest    {spec['artifact']['digest']}  "
            f"({conds.get('ArtifactVerified', {}).get('reason')})"
        )
        metrics = "  ".join(f"{k}={v:.4f}" for k, v in sorted(spec["metrics"].items()))
        print(f"    metrics   {metrics}")
        for gate in mv_status.get("gateResults") or []:
            bound = f">= {gate['min']}" if gate.get("min") is not None else f"<= {gate['max']}"
            verdict = "passed" if gate["passed"] else "FAILED"
            print(f"    gate      {gate['metric']} {bound}: {gate.get('value')} {verdict}")
        print(
            f"    lineage   {spec['source']['trainingJob']} on {spec['source']['datasetUri']} "
            f"({spec['source'].get('datasetDigest', '')[:19]}…)",
            flush=True,
        )
        print(f"    card      {mv_status.get('cardUri')}", flush=True)
        if mv_status["phase"] != "Ready":
            return False
        return serve(sandbox, api, say, timeout)


def serve(sandbox: Sandbox, api: Any, say: Narrator, timeout: float) -> bool:
    """Apply the example InferenceService, wait for it, predict and send feedback."""
    import httpx
    from sklearn.datasets import load_breast_cancer

    manifest = demo_service(yaml.safe_load((examples_dir() / SERVICE_EXAMPLE).read_text()))
    name = manifest["metadata"]["name"]
    api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "inferenceservices", manifest)
    say.say(
        f"applied examples/{SERVICE_EXAMPLE}: InferenceService {name} (version: latest; "
        f"demo timing: policies every {DEMO_INTERVAL} s, acting after {DEMO_FAILURE_LIMIT} "
        "breaches)"
    )

    def ready() -> dict[str, Any] | None:
        obj = cast(
            dict[str, Any],
            api.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "inferenceservices", name),
        )
        status: dict[str, Any] = obj.get("status") or {}
        return status if status.get("phase") == "Ready" else None

    status = wait_for(f"InferenceService {name} to be Ready", ready, timeout=timeout)
    predictor = f"{name}-predictor"
    address = wait_for(
        f"Service {predictor} to be forwarded",
        lambda: sandbox.service_address(NAMESPACE, predictor),
        timeout=timeout,
    )
    say.say(
        f"InferenceService {name}: Ready, serving version {status['currentVersion']} at "
        f"{status['url']} (from this machine: {address})"
    )
    data = load_breast_cancer(as_frame=True)
    rows = data.data.iloc[:50]
    labels = data.target.iloc[:50].tolist()
    model = manifest["spec"]["model"]
    with httpx.Client(base_url=address, timeout=10) as http:
        response = http.post(
            f"/v2/models/{model}/infer",
            json={
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": list(rows.shape),
                        "datatype": "FP64",
                        "data": rows.to_numpy().ravel().tolist(),
                    }
                ],
                "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
            },
        )
        response.raise_for_status()
        body = response.json()
        outputs = {o["name"]: o["data"] for o in body["outputs"]}
        say.say(
            f"POST /v2/models/{model}/infer with {len(rows)} rows → predict "
            f"{outputs['predict'][:8]}…, predict_proba[0] "
            f"{[round(p, 3) for p in outputs['predict_proba'][:2]]}"
        )
        ids = body["parameters"]["prediction_ids"]
        feedback = http.post(
            f"/v1/models/{model}/feedback",
            json={"feedback": [{"id": i, "label": y} for i, y in zip(ids, labels, strict=True)]},
        )
        feedback.raise_for_status()
        result = feedback.json()
        say.say(
            f"POST /v1/models/{model}/feedback with the true labels → online accuracy "
            f"{result['accuracy']:.3f} over {result['samples']} samples"
        )
        metrics = [
            line
            for line in http.get("/metrics").text.splitlines()
            if line.startswith(
                ("mlops_online_accuracy", "mlops_drift_psi_max", "mlops_drift_window_rows")
            )
        ]
        for line in metrics:
            print(f"    /metrics  {line}")
    return degrade(api, say, timeout, name, address)


def demo_service(manifest: dict[str, Any]) -> dict[str, Any]:
    """The example InferenceService with demo timings and the newer dataset for retraining."""
    spec = manifest["spec"]
    spec["monitoring"]["intervalSeconds"] = DEMO_INTERVAL
    for policy in spec["monitoring"]["metrics"]:
        policy["failureLimit"] = DEMO_FAILURE_LIMIT
        policy["minSamples"] = min(policy.get("minSamples", 100), 100)
    spec["retrain"]["dataset"] = {"uri": f"s3://{DATA_BUCKET}/{SHIFTED}", "target": "target"}
    spec.pop("promotion", None)  # gates only: the shifted data's model need not beat v1
    return manifest


def _service(api: Any, name: str) -> dict[str, Any]:
    obj = cast(
        dict[str, Any],
        api.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "inferenceservices", name),
    )
    status: dict[str, Any] = obj.get("status") or {}
    return status


def degrade(api: Any, say: Narrator, timeout: float, name: str, address: str) -> bool:
    """Train v2, then feed it drifted inputs and wrong labels: rollback, retraining, promotion."""
    import httpx
    from sklearn.datasets import load_breast_cancer

    manifest = yaml.safe_load((examples_dir() / EXAMPLE).read_text())
    manifest["metadata"]["name"] = "breast-cancer-rf-deep"
    manifest["spec"]["estimator"]["params"]["max_depth"] = 12
    api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "trainingjobs", manifest)
    say.say("applied TrainingJob breast-cancer-rf-deep (a second version of the model)")
    wait_for(
        "version 2 to be served",
        lambda: (
            (s := _service(api, name)).get("currentVersion") == 2
            and _conditions(s).get("Progressing", {}).get("reason") == "RolledOut"
        ),
        timeout=timeout,
    )
    say.say(f"InferenceService {name}: rolled forward to version 2 (NewLatest)")

    data = load_breast_cancer()
    drifted = (data.data[:200] * 3).tolist()
    with httpx.Client(base_url=address, timeout=10) as http:
        ids: list[str] = []
        predicted: list[int] = []
        for start in range(0, 200, 50):
            rows = drifted[start : start + 50]
            response = http.post(
                f"/v2/models/{name}/infer",
                json={
                    "inputs": [
                        {
                            "name": "input-0",
                            "shape": [len(rows), len(rows[0])],
                            "datatype": "FP64",
                            "data": [x for r in rows for x in r],
                        }
                    ]
                },
            )
            response.raise_for_status()
            body = response.json()
            ids += body["parameters"]["prediction_ids"]
            predicted += {o["name"]: o["data"] for o in body["outputs"]}["predict"]
        http.post(
            f"/v1/models/{name}/feedback",
            json={
                "feedback": [{"id": i, "label": 1 - p} for i, p in zip(ids, predicted, strict=True)]
            },
        ).raise_for_status()
    say.say("sent 200 drifted rows (features × 3) and feedback whose labels disagree")

    seen: set[str] = set()

    def narrate() -> dict[str, Any] | None:
        status = _service(api, name)
        for result in (status.get("lastEvaluation") or {}).get("metrics") or []:
            key = f"{result['name']}:{result['verdict']}:{result.get('consecutiveBreaches')}"
            if result["verdict"] == "Breached" and key not in seen:
                seen.add(key)
                say.say(f"evaluation: {result['message']}")
        history = status.get("history") or []
        if history and history[-1]["reason"] == "RolledBack" and "rollback" not in seen:
            seen.add("rollback")
            say.say(f"RolledBack: {history[-1]['message'][:160]}")
        retraining = status.get("retraining") or {}
        if retraining.get("active") and "retrain" not in seen:
            seen.add("retrain")
            say.say(
                f"Retraining: TrainingJob {retraining['active']} on s3://{DATA_BUCKET}/{SHIFTED}"
            )
        promoted = _conditions(status).get("Retraining", {}).get("reason") == "Promoted"
        return status if promoted and status.get("currentVersion") == 3 else None

    status = wait_for("the retrained version to be promoted", narrate, timeout=timeout)
    say.say(
        "Promoted: version 3 passed its gates and serves now; history: "
        + " → ".join(f"v{h['version']} {h['reason']}" for h in status["history"])
    )
    _print_data_checks(api, say, (status.get("retraining") or {}).get("lastResult") or "")
    wait_for(
        f"the ModelVersions to say version 3 alone is served by {name}",
        lambda: _served_by_settled(api, name, manifest["spec"]["model"], 3),
        timeout=timeout,
    )
    return True


def _served_by_settled(api: Any, service: str, model: str, version: int) -> bool:
    """Whether ``version`` of ``model`` alone lists the service in ``servedBy`` (the
    registry recomputes it shortly after the service moves), so the final table is true."""
    mvs = api.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "modelversions")
    return all(
        (service in ((mv.get("status") or {}).get("servedBy") or []))
        == (mv["spec"]["model"] == model and mv["spec"]["version"] == version)
        for mv in mvs.get("items", [])
    )


def _print_data_checks(api: Any, say: Narrator, last_result: str) -> None:
    """What the retraining's data checks found before it fitted, and the new card."""
    tjs = api.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "trainingjobs")
    retrained = [
        tj
        for tj in tjs.get("items", [])
        if ((tj.get("spec") or {}).get("validation") or {}).get("against")
    ]
    for tj in retrained:
        status = tj.get("status") or {}
        checked = _conditions(status).get("DataValidated")
        if checked is None:
            continue
        say.say(
            f"TrainingJob {tj['metadata']['name']} checked {tj['spec']['dataset']['uri']} "
            f"before fitting: DataValidated={checked['status']} ({checked['reason']})"
        )
        findings = status.get("findings") or []
        for finding in findings[:3]:
            print(
                f"    {finding['severity']:<8}{finding['check']:<15}{finding.get('column', '')}: "
                f"{finding['message']}"
            )
        if len(findings) > 3:
            print(f"    … {len(findings) - 3} more in status.findings and the model card")
        print(f"    card      {status.get('cardUri')}", flush=True)


@contextlib.contextmanager
def _board(sandbox: Sandbox) -> Iterator[StatusBoard]:
    """The live status table, with its own API client."""
    import kubernetes

    from mlops_sandbox.board import StatusBoard

    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(sandbox.kubeconfig), client_configuration=configuration
    )
    with kubernetes.client.ApiClient(configuration) as client:
        with StatusBoard(kubernetes.client.CustomObjectsApi(client)) as board:
            yield board


def demo_command(args: argparse.Namespace) -> int:
    """Run the demo; with ``--once`` exit when done, otherwise keep the sandbox up."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    say = Narrator()
    state_dir: pathlib.Path = args.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    ok = False
    try:
        with Sandbox(state_dir) as sandbox:
            say.say(f"sandbox up: API {sandbox.api_url}, S3 {sandbox.s3_endpoint}")
            operator = OperatorProcess(sandbox.env(), state_dir / "operator.log")
            say.say(f"operator started (pid {operator.process.pid}, log {state_dir}/operator.log)")
            try:
                with _board(sandbox) as board:
                    say.out = board.say
                    ok = run_scenario(sandbox, say, args.timeout)
            except TimeoutError as exc:
                say.say(str(exc))
            finally:
                say.out = Narrator().out
            if not args.once and not stop.is_set():
                print(
                    "\nThe sandbox and the operator keep running.\n"
                    f"  kubeconfig  {sandbox.kubeconfig}\n"
                    f"  services    {state_dir}/services.txt (local addresses of Services)\n"
                    "In another shell:\n"
                    f"  source {state_dir}/sandbox.env\n"
                    "  kubectl get mlops     # or any client, with that KUBECONFIG\n"
                    "  python -c 'import kubernetes; kubernetes.config.load_kube_config(); "
                    "print(kubernetes.client.CustomObjectsApi().list_namespaced_custom_object("
                    '"mlops.dev", "v1alpha1", "default", "modelversions"))\'\n'
                    "Press Ctrl-C to stop.",
                    flush=True,
                )
                while not stop.wait(0.5):
                    pass
            operator.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    say.say("done: every step happened" if ok else "the demo did not complete")
    return 0 if ok else 1
