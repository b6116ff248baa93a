"""The sandbox (API emulator, S3 and, unless ``--no-workloads``, the workload runner with its
pods) in a process of its own, for the benchmarks: its CPU, memory and descriptors are then
measured apart from the operator's and the load generator's.

Run as a script, it is that process. It talks one JSON value per line: it prints
``{"env": {...}, "api_url": ..., "pid": ...}`` once started, then answers each line on stdin:

- ``"stats"``: the emulator's request counters (``requests``: client, verb, resource, count,
  seconds) and how many requests injected faults answered (``fault_hits``, and ``faults``
  one by one);
- ``"objects"``: live objects by resource (``objects``) and what the emulator holds by store
  (``retention``): a pass over every object, so not for a tight loop;
- ``{"fault": {...}}`` injects a :class:`~mlops_sandbox.faults.Fault`; ``"clear"`` removes them;
- ``"memory"``: with ``--trace-memory``, the source lines whose allocations grew most since
  the process started (a tracemalloc comparison: seconds of CPU on a large heap, so ask once);
- ``"stop"``, or the end of stdin (so it never outlives the benchmark that started it), stops.

Imported, :class:`SandboxProcess` starts that process and asks it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pathlib
import subprocess
import sys
import threading
import tracemalloc
from typing import Any

HERE = pathlib.Path(__file__).resolve()


class SandboxExited(RuntimeError):
    """The sandbox process ended before it answered."""


class SandboxProcess:
    """``sandbox_process.py`` as a child process, asked over its stdin and stdout; one
    question and its answer at a time, from any thread."""

    def __init__(self, state_dir: pathlib.Path, namespaces: list[str], *options: str) -> None:
        command = [sys.executable, str(HERE), "--state-dir", str(state_dir), *options]
        for namespace in namespaces:
            command += ["--namespace", namespace]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        self._lock = threading.Lock()
        started = self._read()
        self.env: dict[str, str] = started["env"]
        self.api_url: str = started["api_url"]

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise SandboxExited(f"the sandbox process exited (code {self.process.poll()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, command: Any) -> dict[str, Any]:
        """Send one command (see the module's docstring); its answer."""
        assert self.process.stdin is not None
        with self._lock:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
            return self._read()

    def stats(self) -> dict[str, Any]:
        """Request counters and fault hits right now."""
        return self.ask("stats")

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            with contextlib.suppress(OSError):
                self.process.stdin.write(json.dumps("stop") + "\n")
                self.process.stdin.close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- the child process -----------------------------------------------------------------------


def _stats(sandbox: Any, faults: list[Any]) -> dict[str, Any]:
    # dict() of a Counter runs in C under the GIL: a consistent copy while the loop serves.
    counts = dict(sandbox.api.request_counts)
    seconds = dict(sandbox.api.request_seconds)
    return {
        "requests": [
            {"client": c, "verb": v, "resource": r, "count": n, "seconds": seconds.get((c, v, r))}
            for (c, v, r), n in counts.items()
        ],
        "fault_hits": sum(f.hits for f in faults),
        "faults": [
            {"status": f.status, "verb": f.verb, "resource": f.resource, "hits": f.hits}
            for f in faults
        ],
    }


def _memory(baseline: tracemalloc.Snapshot | None, top: int = 15) -> dict[str, Any]:
    if baseline is None:
        return {"error": "start the sandbox process with --trace-memory"}
    now = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    stats = now.compare_to(baseline, "lineno")
    return {
        "growth_mb": round(sum(s.size_diff for s in stats) / 2**20, 2),
        "top": [
            {
                "where": f"{_short(s.traceback[0].filename)}:{s.traceback[0].lineno}",
                "kib": round(s.size_diff / 1024, 1),
                "blocks": s.count_diff,
            }
            for s in stats[:top]
        ],
    }


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/operator/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def main() -> int:
    from mlops_sandbox.cluster import Sandbox
    from mlops_sandbox.faults import Fault

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=pathlib.Path, required=True)
    parser.add_argument("--namespace", action="append", default=[])
    parser.add_argument("--no-workloads", action="store_true", help="no workload runner")
    parser.add_argument("--event-ttl", type=float, default=3600.0, help="seconds (default 1 h)")
    parser.add_argument("--request-log-size", type=int, default=100_000)
    parser.add_argument(
        "--max-grace-seconds",
        type=float,
        default=3.0,
        help="cap on a pod's terminationGracePeriodSeconds (the runner's, default 3)",
    )
    parser.add_argument(
        "--trace-memory", action="store_true", help="trace allocations (tracemalloc, 1 frame)"
    )
    args = parser.parse_args()
    baseline = None
    if args.trace_memory:
        tracemalloc.start(1)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("mlops_sandbox.apiserver").setLevel(logging.ERROR)
    faults: list[Fault] = []
    sandbox = Sandbox(
        args.state_dir,
        run_workloads=not args.no_workloads,
        event_ttl=args.event_ttl,
        request_log_size=args.request_log_size,
        max_grace_seconds=args.max_grace_seconds,
    )
    with sandbox:
        for namespace in args.namespace:
            sandbox.ensure_namespace(namespace)
        if args.trace_memory:
            baseline = tracemalloc.take_snapshot()
        started = {"env": sandbox.env(), "api_url": sandbox.api_url, "pid": os.getpid()}
        print(json.dumps(started), flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            command = json.loads(line)
            if command == "stop":
                break
            answer: dict[str, Any]
            if command == "stats":
                answer = _stats(sandbox, faults)
            elif command == "objects":
                answer = {"objects": sandbox.object_counts(), "retention": sandbox.retention()}
            elif command == "memory":
                answer = _memory(baseline)
            elif command == "clear":
                sandbox.clear_faults()
                answer = {"cleared": True}
            elif isinstance(command, dict) and "fault" in command:
                faults.append(sandbox.inject(Fault(**command["fault"])))
                answer = {"injected": len(faults)}
            else:
                answer = {"error": f"unknown command {command!r}"}
            print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1]))
    sys.exit(main())
