"""The servers under test, each in its production settings: access logs off, one model, the
HTTP port on loopback. Each family but ours and the floor lives in its own virtual
environment, since their dependencies conflict with ours and with each other."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Literal

HERE = pathlib.Path(__file__).resolve().parent

Family = Literal["ours", "floor", "mlserver", "kserve"]

# Installed into every contender's environment at the project's versions.
SHARED_PINS = ("scikit-learn", "numpy", "scipy", "joblib")


@dataclasses.dataclass(frozen=True)
class Contender:
    name: str
    family: Family
    workers: int
    """Processes answering requests (MLServer: parallel inference workers; 0 = in the
    server's own process)."""
    batch_size: int = 0
    """MLServer adaptive batching: most requests merged into one predict; 0 = off."""
    batch_ms: float = 0.0
    """MLServer adaptive batching: longest wait for a batch to fill."""

    @property
    def description(self) -> str:
        match self.family:
            case "ours":
                return f"mlops-operator serve, {self.workers} worker(s), default micro-batching"
            case "floor":
                return f"bare ASGI app on uvicorn, {self.workers} worker(s), predict per request"
            case "mlserver":
                batching = (
                    f"adaptive batching {self.batch_size} rows / {self.batch_ms:g} ms"
                    if self.batch_size
                    else "no adaptive batching"
                )
                return f"MLServer + mlserver-sklearn, parallel_workers={self.workers}, {batching}"
            case "kserve":
                return f"KServe ModelServer (kserve.Model subclass), --workers {self.workers}"


def default_contenders(cores: int) -> list[Contender]:
    """Ours and the floor with 1 worker and one per core; MLServer with inference in the
    server process, in one worker per core, and with the two adaptive-batching settings that
    ``tune_mlserver.py`` found best (in-process, 5 ms, at most 32 or 64 rows: which wins
    depends on the model); KServe with 1 worker and one per core."""
    n = max(2, cores)
    return [
        Contender("ours-w1", "ours", 1),
        Contender(f"ours-w{n}", "ours", n),
        Contender("floor-w1", "floor", 1),
        Contender(f"floor-w{n}", "floor", n),
        Contender("mlserver-pw0", "mlserver", 0),
        Contender(f"mlserver-pw{n}", "mlserver", n),
        Contender("mlserver-pw0-b32", "mlserver", 0, batch_size=32, batch_ms=5),
        Contender("mlserver-pw0-b64", "mlserver", 0, batch_size=64, batch_ms=5),
        Contender("kserve-w1", "kserve", 1),
        Contender(f"kserve-w{n}", "kserve", n),
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pins() -> list[str]:
    """``name==version`` for the numeric stack in this (the project's) environment."""
    return [f"{name}=={metadata.version(name)}" for name in SHARED_PINS]


def ensure_venv(family: Family, root: pathlib.Path) -> pathlib.Path:
    """The Python of ``family``'s virtual environment under ``root``, created and installed
    on first use and again when its requirements or the pins change."""
    if family in ("ours", "floor"):
        return pathlib.Path(sys.executable)
    requirements = HERE / f"requirements-{family}.txt"
    wanted = requirements.read_text() + "\n".join(pins())
    stamp_value = hashlib.sha256(wanted.encode()).hexdigest()
    venv = root / family
    python = venv / "bin" / "python"
    stamp = venv / ".bench-installed"
    if stamp.exists() and stamp.read_text() == stamp_value and python.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        + ["-r", str(requirements), *pins()],
        capture_output=True,
        text=True,
        check=False,
    )
    if installed.returncode != 0:
        raise RuntimeError(f"installing {family} failed:\n{installed.stderr[-3000:]}")
    stamp.write_text(stamp_value)
    return python


def venv_versions(python: pathlib.Path, names: Sequence[str]) -> dict[str, str | None]:
    """Versions of ``names`` as installed for ``python``."""
    code = (
        "import json, importlib.metadata as m\n"
        "def v(n):\n    try: return m.version(n)\n    except m.PackageNotFoundError: return None\n"
        f"print(json.dumps({{n: v(n) for n in {list(names)!r}}}))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    versions: dict[str, str | None] = json.loads(out.stdout)
    return versions


@dataclasses.dataclass(frozen=True)
class ModelFiles:
    name: str
    """Name in URLs, e.g. ``rf``."""
    artifact_dir: pathlib.Path
    """Our artifact layout: model.joblib, manifest.json, reference.json."""

    @property
    def joblib(self) -> pathlib.Path:
        return self.artifact_dir / "model.joblib"


class Server:
    """One contender serving one model, as a process group of its own."""

    def __init__(
        self,
        contender: Contender,
        model: ModelFiles,
        python: pathlib.Path,
        workdir: pathlib.Path,
    ) -> None:
        self.contender = contender
        self.model = model
        self.port = free_port()
        self.workdir = workdir / f"{contender.name}-{model.name}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "server.log"
        command, env = self._command(python)
        self._log = self.log_path.open("wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            command,
            cwd=self.workdir,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def infer_url(self) -> str:
        return f"{self.url}/v2/models/{self.model.name}/infer"

    def _command(self, python: pathlib.Path) -> tuple[list[str], dict[str, str]]:
        c, m = self.contender, self.model
        match c.family:
            case "ours":
                return [
                    str(python), "-m", "mlops_operator", "serve",
                    "--name", m.name,
                    "--model-uri", m.artifact_dir.as_uri() + "/",
                    "--host", "127.0.0.1",
                    "--port", str(self.port),
                    "--workers", str(c.workers),
                    "--cache-dir", str(self.workdir / "cache"),
                ], {}  # fmt: skip
            case "floor":
                return [
                    str(python), "-m", "uvicorn", "floor_app:app",
                    "--app-dir", str(HERE),
                    "--host", "127.0.0.1",
                    "--port", str(self.port),
                    "--workers", str(c.workers),
                    "--loop", "uvloop", "--http", "httptools",
                    "--no-access-log", "--log-level", "warning",
                ], {"BENCH_MODEL": str(m.joblib), "BENCH_MODEL_NAME": m.name}  # fmt: skip
            case "mlserver":
                self._write_mlserver_settings()
                return [str(python.parent / "mlserver"), "start", str(self.workdir / "repo")], {}
            case "kserve":
                return [
                    str(python), str(HERE / "kserve_model.py"),
                    "--model_name", m.name,
                    "--model_file", str(m.joblib),
                    "--http_port", str(self.port),
                    "--grpc_port", str(free_port()),
                    "--workers", str(c.workers),
                    "--enable_grpc", "false",
                    "--enable_latency_logging", "false",
                ], {"KSERVE_LOGLEVEL": "WARNING"}  # fmt: skip

    def _write_mlserver_settings(self) -> None:
        c, m = self.contender, self.model
        repo = self.workdir / "repo"
        model_dir = repo / m.name
        model_dir.mkdir(parents=True, exist_ok=True)
        settings = {
            "debug": False,
            "host": "127.0.0.1",
            "http_port": self.port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            "parallel_workers": c.workers,
            "metrics_dir": str(self.workdir / "metrics"),
        }
        (repo / "settings.json").write_text(json.dumps(settings, indent=2))
        model_settings: dict[str, object] = {
            "name": m.name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(m.joblib)},
        }
        if c.batch_size:
            model_settings["max_batch_size"] = c.batch_size
            model_settings["max_batch_time"] = c.batch_ms / 1000
        (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2))

    def wait_ready(self, timeout: float = 180.0) -> float:
        """Seconds from the process start until the model answers ready."""
        url = f"{self.url}/v2/models/{self.model.name}/ready"
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.contender.name} exited with {self.process.returncode}:\n"
                    + self.log_path.read_text(errors="replace")[-3000:]
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return time.monotonic() - self.started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.contender.name} was not ready after {timeout:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


def post_json(url: str, body: bytes, timeout: float = 10.0) -> Mapping[str, object]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        loaded: Mapping[str, object] = json.loads(response.read())
        return loaded
