"""A real Prometheus server for the sandbox, scraping its pods as a cluster's would.

:class:`PrometheusServer` runs the Debian package's ``prometheus`` binary on a free loopback
port, with its data in a temporary directory and a scrape and evaluation interval of one
second. It is ready within a fraction of a second, but Prometheus applies changes of
discovered targets in five-second batches (not configurable), so a new pod's first sample
can be queried some 4 to 10 seconds after the pod is Running. Its only scrape job reads its
targets from a ``file_sd_configs`` file, which :meth:`PrometheusServer.update_targets`
rewrites from the cluster's pods. The targets follow the usual ``prometheus.io/*``
annotation convention that Prometheus' Kubernetes discovery is commonly configured with
(the predictor pods carry them): only Running pods annotated ``prometheus.io/scrape: "true"``,
at ``podIP:prometheus.io/port`` and path ``prometheus.io/path``, labelled with ``namespace``,
``pod`` and the pod's own labels with their names sanitized (``mlops.dev/model`` becomes
``mlops_dev_model``), like a ``labelmap`` relabelling of ``__meta_kubernetes_pod_label_*``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from mlops_sandbox._lifecycle import Managed

logger = logging.getLogger(__name__)

BINARY = "prometheus"
"""The executable, as the Debian package ``prometheus`` installs it (``/usr/bin/prometheus``)."""

JOB_NAME = "sandbox-pods"
"""The scrape job of the sandbox's pods (the ``job`` label of their series)."""

SCRAPE_ANNOTATION = "prometheus.io/scrape"
PORT_ANNOTATION = "prometheus.io/port"
PATH_ANNOTATION = "prometheus.io/path"

_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")
_START_ATTEMPTS = 3
_STOP_TIMEOUT = 10.0


class PrometheusNotInstalled(RuntimeError):
    """The ``prometheus`` binary is not on this machine."""


def find_binary() -> str:
    """The path of the ``prometheus`` executable; :class:`PrometheusNotInstalled` if none."""
    found = shutil.which(BINARY) or (
        "/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None
    )
    if found is None:
        raise PrometheusNotInstalled(
            "The sandbox's Prometheus needs the `prometheus` binary, which is not installed: "
            "install the Debian package, e.g. "
            "`apt-get install -y --no-install-recommends prometheus` (`make test` does)."
        )
    return found


def sanitize_label_name(name: str) -> str:
    """A Kubernetes label key as a Prometheus label name: every character outside
    ``[a-zA-Z0-9_]`` becomes ``_``, and a leading digit gets a ``_`` in front."""
    sanitized = _INVALID_LABEL_CHARS.sub("_", name)
    return "_" + sanitized if sanitized[:1].isdigit() else sanitized


def targets_from_pods(pods: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ``file_sd_configs`` target groups for ``pods``: one group per Running pod that has
    an IP and is annotated ``prometheus.io/scrape: "true"`` with a valid ``prometheus.io/port``,
    ordered by namespace and name so the same pods always give the same file."""
    groups: list[tuple[tuple[str, str], dict[str, Any]]] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        status = pod.get("status") or {}
        ip = status.get("podIP")
        if (
            annotations.get(SCRAPE_ANNOTATION) != "true"
            or status.get("phase") != "Running"
            or meta.get("deletionTimestamp")
            or not ip
        ):
            continue
        port = str(annotations.get(PORT_ANNOTATION, "")).strip()
        if not port.isdigit() or not 0 < int(port) < 65536:
            logger.warning(
                "Pod %s/%s asks to be scraped without a valid %s (%r); not scraped.",
                meta.get("namespace"),
                meta.get("name"),
                PORT_ANNOTATION,
                port,
            )
            continue
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        labels = {sanitize_label_name(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        # Set last: a pod label that sanitizes to one of these must not hide the pod's identity.
        labels["namespace"] = namespace
        labels["pod"] = name
        path = annotations.get(PATH_ANNOTATION)
        if path:
            labels["__metrics_path__"] = path
        groups.append(((namespace, name), {"targets": [f"{ip}:{int(port)}"], "labels": labels}))
    return [group for _, group in sorted(groups, key=lambda item: item[0])]


def prometheus_config(targets_file: pathlib.Path, *, interval: str = "1s") -> dict[str, Any]:
    """The server's configuration: one job reading its targets from ``targets_file``."""
    return {
        "global": {
            "scrape_interval": interval,
            # May not exceed the interval, and Prometheus' default (10s) would.
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "scrape_configs": [
            {
                "job_name": JOB_NAME,
                "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "5s"}],
            }
        ],
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrometheusServer(Managed):
    """A Prometheus process on ``127.0.0.1`` whose scrape targets are the pods given to
    :meth:`update_targets`.

    ``state_dir`` holds the configuration, the targets file and the server's log; the
    time-series data goes to a temporary directory removed by :meth:`stop`. Use as a context
    manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        state_dir: pathlib.Path,
        *,
        port: int = 0,
        interval: str = "1s",
        binary: str | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.config_file = self.state_dir / "prometheus.yml"
        self.targets_file = self.state_dir / "targets.json"
        """The ``file_sd_configs`` file: a JSON list of ``{"targets": [...], "labels": {...}}``."""
        self.log_file = self.state_dir / "prometheus.log"
        self._port = port
        self._interval = interval
        self._binary = binary
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._data_dir: pathlib.Path | None = None
        self._url: str | None = None
        self._targets: str | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The server's base URL, e.g. ``http://127.0.0.1:41234``; only while started."""
        if self._url is None:
            raise RuntimeError("Prometheus is not started.")
        return self._url

    def start(self) -> None:
        """Start the server and return once it answers ``/-/ready``.

        Raises :class:`PrometheusNotInstalled` without the binary, and ``RuntimeError`` with
        the tail of its log when it does not become ready.
        """
        if self._process is not None:
            raise RuntimeError("Prometheus is already started.")
        binary = self._binary or find_binary()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self._targets is None:
            self._write_targets("[]\n")
        self.config_file.write_text(
            yaml.safe_dump(prometheus_config(self.targets_file, interval=self._interval)),
            encoding="utf-8",
        )
        self._data_dir = pathlib.Path(tempfile.mkdtemp(prefix="prometheus-data-"))
        try:
            # A free port can be taken between the check and the bind: try another one.
            attempts = 1 if self._port else _START_ATTEMPTS
            for attempt in range(1, attempts + 1):
                port = self._port or _free_port()
                if self._launch(binary, port):
                    self._url = f"http://127.0.0.1:{port}"
                    return
                if attempt == attempts:
                    raise RuntimeError(
                        f"Prometheus exited on start on 127.0.0.1:{port}; the end of "
                        f"{self.log_file}:\n{self._log_tail()}"
                    )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and delete its data. Idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None
        self._url = None

    def update_targets(self, pods: Iterable[Mapping[str, Any]]) -> None:
        """Scrape exactly the eligible ones among ``pods`` (see :func:`targets_from_pods`);
        callable before :meth:`start` too. The file is replaced atomically, and only when
        its content changes; Prometheus notices it at once (and applies it within 5 s)."""
        self._write_targets(json.dumps(targets_from_pods(pods), indent=2, sort_keys=True) + "\n")

    def _write_targets(self, content: str) -> None:
        with self._lock:
            if content == self._targets:
                return
            self.state_dir.mkdir(parents=True, exist_ok=True)
            # Written aside and renamed, so Prometheus never reads a half-written file.
            partial = self.targets_file.with_name(self.targets_file.name + ".partial")
            partial.write_text(content, encoding="utf-8")
            os.replace(partial, self.targets_file)
            self._targets = content

    def _launch(self, binary: str, port: int) -> bool:
        """Start the process on ``port`` and wait until it is ready: ``True``, or ``False``
        if it exited first (e.g. the port was taken)."""
        assert self._data_dir is not None
        command = [
            binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self._data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                # Its own session: a Ctrl+C meant for the sandbox must not kill it before the
                # sandbox stops it in order.
                start_new_session=True,
            )
        ready_url = f"http://127.0.0.1:{port}/-/ready"
        # No proxies: a developer's http_proxy would otherwise be asked for a loopback URL.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False
            with contextlib.suppress(urllib.error.URLError, OSError):
                with opener.open(ready_url, timeout=1.0) as response:
                    if response.status == 200:
                        return True
            time.sleep(0.05)
        raise RuntimeError(
            f"Prometheus was not ready within {self._start_timeout:g}s; the end of "
            f"{self.log_file}:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
