"""The images `make images` built, run with buildah the way a pod runs them: the image's own
ENTRYPOINT, USER and ENV, a read-only root filesystem and a writable /tmp (the pod's emptyDir;
buildah also needs a tmpfs on /run),
the sandbox's S3 reached over loopback (buildah's chroot isolation shares this machine's network).
The runtime image trains a model from a CSV in S3 and serves it over HTTP; the operator image has
no ML stack.

Run by `make test-images` (it builds the images first, with buildah on a base bootstrapped from
Debian packages); the `images` marker keeps these tests out of `make test`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from mlops_operator.cli import EXIT_NO_RUNTIME
from mlops_operator.kube.pod import RUNTIME_UID
from mlops_operator.runtime import termination as tm
from mlops_sandbox.s3 import S3Server
from tests.support import eventually

pytestmark = pytest.mark.images

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
REPO = os.environ.get("MLOPS_TEST_IMAGE_REPO", "mlops-operator")
TAG = os.environ.get("MLOPS_TEST_IMAGE_TAG", VERSION)
STORAGE_DRIVER = os.environ.get("BUILDAH_STORAGE_DRIVER", "vfs")
BUCKET = "mlops-artifacts"


def buildah(*args: str, timeout: float = 120) -> str:
    """Run buildah with the storage `make images` builds into; its stdout."""
    result = subprocess.run(
        ["buildah", "--storage-driver", STORAGE_DRIVER, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"buildah {' '.join(args)}:\n{result.stderr}"
    return result.stdout.strip()


@dataclass
class Container:
    """A working container of an image, run like a pod with a read-only root filesystem."""

    name: str
    rootfs: str
    config: dict[str, Any]
    tmp: Path

    def argv(
        self, args: list[str], env: dict[str, str], entrypoint: list[str] | None = None
    ) -> list[str]:
        """The command that runs the image's ENTRYPOINT (or ``entrypoint``) with ``args``, as
        the image's USER, in a mount namespace of its own where the root filesystem is bound
        read-only."""
        flags = ["--isolation", "chroot", "-v", f"{self.tmp}:/tmp"]
        for key, value in env.items():
            flags += ["-e", f"{key}={value}"]
        if user := self.config.get("User"):
            flags += ["--user", user]
        if entrypoint is None:
            entrypoint = self.config.get("Entrypoint") or []
        run = ["buildah", "--storage-driver", STORAGE_DRIVER, "run", *flags, self.name, "--"]
        # buildah itself writes /run/.containerenv (and removes it afterwards): /run is a
        # tmpfs, and with /tmp the only writable places.
        remount = (
            f"mount --bind {self.rootfs} {self.rootfs} "
            f"&& mount -o remount,bind,ro {self.rootfs} "
            f'&& mount -t tmpfs -o mode=755 tmpfs {self.rootfs}/run && exec "$@"'
        )
        return ["unshare", "--mount", "sh", "-c", remount, "sh", *run, *entrypoint, *args]

    def run(
        self, args: list[str], env: dict[str, str] | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(args, env or {}), capture_output=True, text=True, timeout=timeout
        )

    def python(
        self, code: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run Python code with the image's interpreter (bypassing the ENTRYPOINT)."""
        argv = self.argv(["-c", code], env or {}, entrypoint=["python3"])
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def container(image: str, tmp: Path) -> Iterator[Container]:
    name = f"mlops-test-{image}-{uuid.uuid4().hex[:8]}"
    buildah("from", "--pull=never", "--name", name, f"{REPO}/{image}:{TAG}")
    try:
        rootfs = buildah("mount", name)
        # buildah binds files onto these; on a read-only root the mount points must exist
        # first (a container runtime creates them the same way before the root turns read-only).
        for mount_point in ("etc/hosts", "etc/resolv.conf", "etc/hostname"):
            Path(rootfs, mount_point).touch()
        config = json.loads(buildah("inspect", "--type", "container", name))["OCIv1"]["config"]
        tmp.chmod(0o1777)
        yield Container(name, rootfs, config, tmp)
    finally:
        buildah("rm", name)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    yield from container("runtime", tmp_path_factory.mktemp("runtime-tmp"))


@pytest.fixture(scope="module")
def operator_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    yield from container("operator", tmp_path_factory.mktemp("operator-tmp"))


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with S3Server(buckets=(BUCKET,)) as server:
        yield server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("image", ["runtime", "operator"])
def test_image_runs_as_the_pods_uid_on_a_read_only_root(
    image: str, request: pytest.FixtureRequest
) -> None:
    box: Container = request.getfixturevalue("runtime" if image == "runtime" else "operator_image")
    assert box.config["User"] == f"{RUNTIME_UID}:{RUNTIME_UID}"
    result = box.python(
        "import os, pathlib\n"
        "print(os.getuid(), os.getgid())\n"
        "pathlib.Path('/tmp/probe').write_text('ok')\n"
        "try:\n"
        "    open('/opt/venv/probe', 'w')\n"
        "except OSError as exc:\n"
        "    print(exc.strerror)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{RUNTIME_UID} {RUNTIME_UID}", "Read-only file system"]
    assert (box.tmp / "probe").stat().st_uid == RUNTIME_UID


async def test_runtime_trains_from_s3_and_serves_the_model_over_http(
    runtime: Container, s3: S3Server
) -> None:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        aws_access_key_id=s3.env()["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3.env()["AWS_SECRET_ACCESS_KEY"],
        region_name=s3.env()["AWS_DEFAULT_REGION"],
    )
    client.put_object(Bucket=BUCKET, Key="data/iris.csv", Body=frame.to_csv(index=False).encode())
    job = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "iris-1"},
        "spec": {
            "model": "iris",
            "dataset": {"uri": f"s3://{BUCKET}/data/iris.csv", "target": "target"},
            "estimator": {
                "className": "sklearn.linear_model.LogisticRegression",
                "params": {"max_iter": 500},
            },
            "storage": {"bucket": BUCKET, "prefix": "models"},
        },
    }
    env = {
        **s3.env(),
        "MLOPS_TRAININGJOB": json.dumps(job),
        tm.PATH_ENV: "/tmp/termination-log",
    }

    trained = runtime.run(["train"], env)

    assert trained.returncode == 0, trained.stdout + trained.stderr
    summary = tm.parse_success_message((runtime.tmp / "termination-log").read_text())
    assert summary is not None
    assert summary.artifact_uri == f"s3://{BUCKET}/models/_local/iris/runs/iris-1/"
    assert summary.metrics["accuracy"] > 0.9
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix="models/_local/iris/runs/iris-1/")
    assert "models/_local/iris/runs/iris-1/model.joblib" in {o["Key"] for o in listed["Contents"]}

    port = free_port()
    argv = runtime.argv(
        [
            "serve",
            "--name",
            "iris",
            "--model-uri",
            summary.artifact_uri,
            "--digest",
            summary.digest,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        s3.env(),
    )
    log = runtime.tmp / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        await eventually(lambda: ready(server, f"{url}/v2/health/ready", log), timeout=90)
        rows = frame.drop(columns="target").head(6)
        response = httpx.post(
            f"{url}/v2/models/iris/infer",
            json={
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": list(rows.shape),
                        "datatype": "FP64",
                        "data": rows.to_numpy().ravel().tolist(),
                    }
                ]
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text
        (output,) = response.json()["outputs"]
        assert output["data"] == frame["target"].head(6).tolist()
        # The model cache went to /tmp (MLOPS_CACHE_DIR in the image), the only writable place.
        assert any((runtime.tmp / "mlops-cache").rglob("model.joblib"))
    finally:
        stop(server)
    assert "Traceback" not in log.read_text()


async def ready(server: subprocess.Popen[bytes], url: str, log: Path) -> bool:
    """Whether ``url`` answers 200; fails at once if the server has exited."""
    assert server.poll() is None, f"the server exited:\n{log.read_text()}"
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(url, timeout=1)).status_code == 200
    except httpx.TransportError:
        return False


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_operator_image_has_no_ml_stack_and_says_so_for_train(operator_image: Container) -> None:
    found = operator_image.python(
        "import importlib.util as u\n"
        "print([m for m in ('sklearn', 'pandas', 'numpy', 'pyarrow', 'joblib', 'uvicorn',"
        " 'mlops_sandbox', 'moto') if u.find_spec(m)])\n"
        "import kopf, kubernetes, boto3, mlops_operator.cli\n"
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"

    crds = operator_image.run(["crds"])
    assert crds.returncode == 0, crds.stderr
    assert crds.stdout.count("kind: CustomResourceDefinition") == 3

    train = operator_image.run(["train"])
    assert train.returncode == EXIT_NO_RUNTIME
    assert "the runtime extra is not installed" in train.stderr


def test_operator_image_reaches_s3_with_web_identity_credentials(
    operator_image: Container, s3: S3Server
) -> None:
    """IRSA as a pod has it: a projected token and a role, exchanged with STS for credentials
    (moto's STS here), then the operator's own artifact store on S3 with them. The image keeps
    only the AWS service models S3 and the credential chain need."""
    (operator_image.tmp / "token").write_text("a-projected-service-account-token")
    env = {
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_DEFAULT_REGION": s3.env()["AWS_DEFAULT_REGION"],
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/mlops-operator",
        "AWS_WEB_IDENTITY_TOKEN_FILE": "/tmp/token",
        "AWS_ROLE_SESSION_NAME": "mlops-operator",
    }
    result = operator_image.python(
        "import boto3\n"
        "from mlops_operator.artifacts.store import ArtifactStore\n"
        "print(boto3.session.Session().get_credentials().method)\n"
        f"uri = 's3://{BUCKET}/probe/operator-image.txt'\n"
        "store = ArtifactStore()\n"
        "store.check_bucket(uri)\n"
        "store.write_bytes(uri, b'written from the operator image')\n"
        "print(store.read_bytes(uri).decode())\n",
        env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "assume-role-with-web-identity",
        "written from the operator image",
    ]
