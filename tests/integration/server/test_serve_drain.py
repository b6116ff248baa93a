"""Draining and connection limits of a real server process: SIGTERM under steady load loses
no request, and slow clients do not hold connections."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time
from pathlib import Path

import httpx
from serving_helpers import Artifact, ServerFactory

RATE = 50.0
ROW = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}


def test_sigterm_under_load_loses_no_request_and_readiness_drops_at_once(
    iris_model: Artifact, start_server: ServerFactory
) -> None:
    server = start_server("iris", iris_model.uri, "--drain-seconds", "3")
    infer = f"{server.url}/v2/models/iris/infer"
    failures: list[str] = []
    sent = after_sigterm = 0
    signalled = not_ready_at = None
    with httpx.Client(timeout=5) as client:
        start = time.monotonic()
        tick = 0
        while not_ready_at is None or time.monotonic() < not_ready_at + 0.5:
            # Clients keep sending for half a second after readiness fails, as a Service's
            # endpoints take a moment to drop the pod.
            tick += 1
            time.sleep(max(0.0, start + tick / RATE - time.monotonic()))
            if signalled is None and tick == int(RATE):
                server.proc.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
            try:
                response = client.post(infer, json=ROW)
                sent += 1
                after_sigterm += signalled is not None
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")
            except httpx.TransportError as exc:
                failures.append(repr(exc))
            if signalled is not None and not_ready_at is None:
                ready = client.get(f"{server.url}/v2/health/ready")
                if ready.status_code == 503:
                    assert ready.json()["error"] == "the server is shutting down"
                    not_ready_at = time.monotonic()
        assert signalled is not None and not_ready_at is not None
        assert not_ready_at - signalled < 0.5, "readiness answered 503 at once"
    assert failures == [], failures
    assert after_sigterm >= RATE * 0.5 * 0.5
    server.proc.wait(20)
    stopped = time.monotonic()
    assert stopped - signalled >= 3, "served for the whole drain"
    assert server.proc.returncode == 0
    assert "shutting down" in server.output()


def test_while_draining_each_answer_closes_its_keep_alive_connection(
    iris_model: Artifact, start_server: ServerFactory
) -> None:
    """A client keeping connections alive is told to reconnect by every answer of the drain,
    so it moves to another pod before the server closes its idle connections at shutdown
    (a request sent on one just then would be lost)."""
    server = start_server("iris", iris_model.uri, "--drain-seconds", "3")
    host, port = server.url.removeprefix("http://").split(":")
    body = json.dumps(ROW)
    headers = {"Content-Type": "application/json"}
    kept = http.client.HTTPConnection(host, int(port), timeout=5)
    kept.request("POST", "/v2/models/iris/infer", body, headers)
    before = kept.getresponse()
    before.read()
    assert before.status == 200 and before.getheader("connection") is None  # kept alive
    server.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()

    while httpx.get(f"{server.url}/v2/health/ready", timeout=5).status_code != 503:
        assert time.monotonic() - signalled < 2, "readiness answered 503 at once"
    try:
        kept.request("POST", "/v2/models/iris/infer", body, headers)
        during = kept.getresponse()
        assert during.status == 200 and json.loads(during.read())["outputs"]
        assert during.getheader("connection") == "close"
        assert kept.sock is None  # http.client closed it, as the header says
    finally:
        kept.close()
    # A new connection is still served until the drain ends.
    assert httpx.post(f"{server.url}/v2/models/iris/infer", json=ROW).status_code == 200
    assert time.monotonic() - signalled < 3, "the drain lasted long enough to test"
    server.proc.wait(20)
    assert server.proc.returncode == 0


def test_slow_clients_are_cut_and_do_not_block_others(
    iris_model: Artifact, start_server: ServerFactory, tmp_path: Path
) -> None:
    server = start_server("iris", iris_model.uri, "--header-timeout", "1", "--body-timeout", "1")
    host, port = server.url.removeprefix("http://").split(":")
    slow = []
    opened = time.monotonic()
    for _ in range(200):
        sock = socket.create_connection((host, int(port)))
        sock.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.append(sock)
    # Others are served meanwhile.
    assert httpx.post(f"{server.url}/v2/models/iris/infer", json=ROW).status_code == 200
    held = []
    for sock in slow:
        sock.settimeout(10)
        assert sock.recv(1) == b"", "the server closed the connection"
        held.append(time.monotonic() - opened)
        sock.close()
    assert max(held) < 6, f"slow-loris sockets held up to {max(held):.1f} s"

    # A body that stops half way gets a 408 with the reason.
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/models/iris:predict HTTP/1.1\r\nHost: x\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"instances"'
        )
        sock.settimeout(10)
        reply = b""
        while not reply.endswith(b"}"):
            chunk = sock.recv(4096)
            assert chunk, reply
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert b'"error":"the request body did not arrive within 1 seconds"' in reply
