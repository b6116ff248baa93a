"""The composed sandbox, as the operator and a person use it: kubeconfig, env, S3, Jobs."""

from __future__ import annotations

import base64
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import kubernetes
import yaml

from mlops_sandbox.cluster import Sandbox

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def _job(name: str, command: list[str], **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "runtime", "command": command, **container}
                    ],
                }
            },
        },
    }


def _wait_finished(batch: Any, name: str, namespace: str) -> Any:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = batch.read_namespaced_job_status(name, namespace)
        types = {c.type for c in (job.status and job.status.conditions) or []}
        if types & {"Complete", "Failed"}:
            return job
        time.sleep(0.1)
    raise AssertionError(f"Job {namespace}/{name} did not finish")


def test_a_job_runs_the_real_entrypoint_and_its_log_is_served(
    kube: kubernetes.client.ApiClient, namespace: str
) -> None:
    # Any: the client's models make every field Optional, which only adds noise to asserts.
    batch: Any = kubernetes.client.BatchV1Api(kube)
    core: Any = kubernetes.client.CoreV1Api(kube)
    batch.create_namespaced_job(namespace, _job("help", ["mlops-operator", "--help"]))

    job = _wait_finished(batch, "help", namespace)

    assert [c.type for c in job.status.conditions] == ["SuccessCriteriaMet", "Complete"]
    [pod] = core.list_namespaced_pod(namespace, label_selector="job-name=help").items
    assert pod.status.phase == "Succeeded"
    assert "usage: mlops-operator" in core.read_namespaced_pod_log(pod.metadata.name, namespace)


def test_a_failing_command_reports_its_exit_code_and_log_tail(
    kube: kubernetes.client.ApiClient, namespace: str
) -> None:
    # Any: the client's models make every field Optional, which only adds noise to asserts.
    batch: Any = kubernetes.client.BatchV1Api(kube)
    core: Any = kubernetes.client.CoreV1Api(kube)
    job = _job(
        "typo",
        ["mlops-operator", "no-such-command"],
        terminationMessagePolicy="FallbackToLogsOnError",
    )
    batch.create_namespaced_job(namespace, job)

    finished = _wait_finished(batch, "typo", namespace)

    assert finished.status.conditions[-1].reason == "BackoffLimitExceeded"
    [pod] = core.list_namespaced_pod(namespace, label_selector="job-name=typo").items
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 2
    assert "invalid choice: 'no-such-command'" in terminated.message


def test_each_namespace_gets_the_s3_credentials_secret(
    sandbox: Sandbox, kube: kubernetes.client.ApiClient, namespace: str
) -> None:
    core: Any = kubernetes.client.CoreV1Api(kube)
    secret = core.read_namespaced_secret("mlops-s3-credentials", namespace)
    decoded = {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
    env = sandbox.env()
    assert decoded == {
        "AWS_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"],
    }


def test_the_artifact_bucket_exists_and_round_trips_objects(s3: S3Client) -> None:
    s3.put_object(Bucket="mlops-artifacts", Key="smoke/hello.txt", Body=b"hello")
    body = s3.get_object(Bucket="mlops-artifacts", Key="smoke/hello.txt")["Body"].read()
    assert body == b"hello"


def test_env_and_files_point_clients_at_the_sandbox(sandbox: Sandbox) -> None:
    env = sandbox.env()
    assert env["KUBECONFIG"] == str(sandbox.kubeconfig)
    assert env["AWS_ENDPOINT_URL"] == env["MLOPS_S3_ENDPOINT"] == sandbox.s3_endpoint
    assert env["MLOPS_S3_BUCKET"] == "mlops-artifacts"
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == sandbox.api_url
    exported = (sandbox.state_dir / "sandbox.env").read_text()
    for key in env:
        assert f"export {key}=" in exported


def test_the_sandbox_command_starts_prints_how_to_connect_and_stops_on_sigint(
    tmp_path: pathlib.Path,
) -> None:
    state_dir = tmp_path / "state"
    # Without the parent's AWS_* and KUBECONFIG, to show the sandbox needs none.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBECONFIG"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlops_sandbox", "up", "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    assert process.stdout is not None
    stdout = process.stdout
    lines: list[str] = []
    banner_done = threading.Event()

    # A thread reads lines: select() on a buffered text pipe misses lines already buffered.
    def read_banner() -> None:
        for line in iter(stdout.readline, ""):
            lines.append(line)
            if "Press Ctrl+C" in line:
                break
        banner_done.set()

    reader = threading.Thread(target=read_banner, daemon=True)
    reader.start()
    try:
        banner_done.wait(timeout=30)
        output = "".join(lines)
        assert "Press Ctrl+C" in output, output
        assert "source " in output and "mlops-operator run" in output
        assert "kubectl get mlops" in output
        assert (state_dir / "kubeconfig").exists()
        assert (state_dir / "sandbox.env").exists()
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output + rest
    assert "Stopped." in rest
    assert "sandbox-secret-key" not in output + rest
