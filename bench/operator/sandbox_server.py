"""The sandbox (API emulator + S3, workload runner off) in a process of its own, so that the
benchmark measures the emulator's CPU apart from the operator's and the load generator's.

Talks one JSON line at a time: prints ``{"env": {...}, "api_url": ...}`` once started, then
answers each ``stats`` line on stdin with the emulator's request counters; stops on ``stop``
or at the end of stdin (so it never outlives the benchmark that started it).
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import sys
from typing import Any

from mlops_sandbox.cluster import Sandbox


def _stats(sandbox: Sandbox) -> dict[str, Any]:
    # dict() of a Counter runs in C under the GIL: a consistent copy while the loop serves.
    counts = dict(sandbox.api.request_counts)
    seconds = dict(sandbox.api.request_seconds)
    return {
        "requests": [
            {"client": c, "verb": v, "resource": r, "count": n, "seconds": seconds.get((c, v, r))}
            for (c, v, r), n in counts.items()
        ]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=pathlib.Path, required=True)
    parser.add_argument("--namespace", action="append", default=[])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    with Sandbox(args.state_dir, run_workloads=False) as sandbox:
        for namespace in args.namespace:
            sandbox.ensure_namespace(namespace)
        print(json.dumps({"env": sandbox.env(), "api_url": sandbox.api_url}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "stop":
                break
            if command == "stats":
                print(json.dumps(_stats(sandbox)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
