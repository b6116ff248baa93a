"""A stand-in for the ``mlops-operator`` entrypoint in runner tests: behaviours on demand.

``fake_workload.py print-env NAME…`` prints ``NAME=value`` lines; ``fail MESSAGE`` writes
MESSAGE as the termination message and exits 3; ``shout-and-fail TEXT`` prints TEXT and exits
1 without a termination message; ``sleep SECONDS`` sleeps; ``spawn-and-sleep PIDFILE`` starts
a grandchild, records its own pid and the grandchild's, and sleeps.
"""

import os
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    command, *rest = argv
    if command == "print-env":
        for name in rest:
            print(f"{name}={os.environ.get(name, '<unset>')}")
        return 0
    if command == "fail":
        path = os.environ.get("MLOPS_TERMINATION_MESSAGE_PATH", "/dev/termination-log")
        with open(path, "w", encoding="utf-8") as f:
            f.write(" ".join(rest))
        return 3
    if command == "shout-and-fail":
        for i in range(200):
            print(f"line {i}")
        print(" ".join(rest), file=sys.stderr)
        return 1
    if command == "sleep":
        time.sleep(float(rest[0]))
        return 0
    if command == "spawn-and-sleep":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        with open(rest[0], "w", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {child.pid}")
        time.sleep(60)
        return 0
    print(f"unknown command {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
