"""The sandbox (API emulator + S3 + workload runner) in a process of its own, for the soak: so
that its memory, descriptors and pods are measured apart from the load generator's.

One JSON line at a time: prints ``{"env": {...}, "api_url": ..., "pid": ...}`` once started;
then on stdin ``{"fault": {...}}`` injects a :class:`~mlops_sandbox.apiserver.Fault`,
``"clear"`` removes every fault, ``"stats"`` answers the emulator's object
counts by resource and its request counters; ``stop`` or the end of stdin stops it.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import pathlib
import sys
from typing import Any

from mlops_sandbox.apiserver import Fault
from mlops_sandbox.cluster import Sandbox


def _stats(sandbox: Sandbox, faults: list[Fault]) -> dict[str, Any]:
    counts = dict(sandbox.api.request_counts)
    objects = collections.Counter(str(key[0].plural) for key, _ in sandbox.api.live_objects())
    return {
        "objects": dict(objects),
        "requests": [[c, v, r, n] for (c, v, r), n in counts.items()],
        "fault_hits": sum(f.hits for f in faults),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=pathlib.Path, required=True)
    parser.add_argument("--namespace", action="append", default=[])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("mlops_sandbox.apiserver").setLevel(logging.ERROR)
    faults: list[Fault] = []
    with Sandbox(args.state_dir) as sandbox:
        for namespace in args.namespace:
            sandbox.ensure_namespace(namespace)
        print(
            json.dumps({"env": sandbox.env(), "api_url": sandbox.api_url, "pid": os.getpid()}),
            flush=True,
        )
        for line in sys.stdin:
            command = json.loads(line)
            if command == "stop":
                break
            if command == "stats":
                print(json.dumps(_stats(sandbox, faults)), flush=True)
            elif command == "clear":
                sandbox.clear_faults()
                print(json.dumps({"cleared": True}), flush=True)
            elif isinstance(command, dict) and "fault" in command:
                faults.append(sandbox.inject(Fault(**command["fault"])))
                print(json.dumps({"injected": len(faults)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
