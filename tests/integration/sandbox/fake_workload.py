"""A stand-in for the ``mlops-operator`` entrypoint in runner tests: behaviours on demand.

``fake_workload.py print-env NAME…`` prints ``NAME=value`` lines; ``fail MESSAGE`` writes
MESSAGE as the termination message and exits 3; ``shout-and-fail TEXT`` prints TEXT and exits
1 without a termination message; ``sleep SECONDS`` sleeps; ``spawn-and-sleep PIDFILE`` starts
a grandchild, records its own pid and the grandchild's, and sleeps.

``serve PORT`` serves HTTP on ``$MLOPS_SERVE_HOST:PORT`` until SIGTERM (then finishes the
requests in flight): ``/ready`` and ``/live`` answer 200, or 503 while a file ``not-ready``
or ``not-live`` exists in the working directory (the pod's ``home/``); ``/whoami`` answers
``{"pod": $HOSTNAME, "ip": $MLOPS_SERVE_HOST, "version": $FAKE_VERSION, "pod_ip": $POD_IP,
"pid": …}``.
"""

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: nothing idles at shutdown

    def do_GET(self) -> None:
        if self.path in ("/ready", "/live"):
            failing = os.path.exists("not-" + self.path[1:])
            self._reply(503 if failing else 200, {"ok": not failing})
        elif self.path == "/whoami":
            self._reply(
                200,
                {
                    "pod": os.environ.get("HOSTNAME"),
                    "ip": os.environ.get("MLOPS_SERVE_HOST"),
                    "version": os.environ.get("FAKE_VERSION"),
                    "pod_ip": os.environ.get("POD_IP"),
                    "pid": os.getpid(),
                },
            )
        else:
            self._reply(404, {"error": self.path})

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(port: int) -> int:
    server = http.server.ThreadingHTTPServer((os.environ["MLOPS_SERVE_HOST"], port), _Handler)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    print(f"serving on {server.server_address}", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()  # waits for the requests in flight
    thread.join()
    return 0


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
    if command == "serve":
        return serve(int(rest[0]))
    print(f"unknown command {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
