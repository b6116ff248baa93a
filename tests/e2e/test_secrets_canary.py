"""The S3 secret key never leaks. The session's sandbox puts a canary key, unique to the run,
in every credentials Secret; after the rest of the e2e suite (tests/e2e/conftest.py runs this
last), no log of any process (operator, trainer, model server, sandbox), no object the API
serves besides the Secrets (specs, status, Events, Jobs, Deployments…), no HTTP answer kept
from the operators and the model servers, and no /metrics of a process still running holds
it, in clear or in base64."""

from __future__ import annotations

import base64

import httpx
import pytest

from mlops_sandbox.cluster import Sandbox
from tests.conftest import CANARY_PREFIX
from tests.e2e.conftest import Audit, _server_urls

LARGEST_FILE = 256 * 2**20


def forms(canary: str) -> list[bytes]:
    """The canary as a leak would show it: in clear, and base64-encoded as a Secret holds it."""
    return [canary.encode(), base64.b64encode(canary.encode())]


def leaks_in(data: bytes, canary: str) -> bool:
    return any(form in data for form in forms(canary))


def test_the_s3_secret_key_never_leaks(
    audit: Audit, sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> None:
    canary = sandbox.secret_access_key or ""
    assert canary.startswith(CANARY_PREFIX)
    leaks: list[str] = []

    # Every file the session wrote: operator logs, pod logs and working directories of the
    # trainers and model servers, the sandbox's own log. sandbox.env is the shell file that
    # exists to hold the keys (mode 0600).
    searched = 0
    for path in sorted(tmp_path_factory.getbasetemp().rglob("*")):
        if not path.is_file() or path == sandbox.env_file:
            continue
        if path.stat().st_size > LARGEST_FILE:
            continue
        searched += 1
        if leaks_in(path.read_bytes(), canary):
            leaks.append(f"file {path}")
    assert audit.sandbox_log.exists()

    # Every object the API serves, Secrets aside: a positive control shows the Secret has it.
    secrets = 0
    for key, obj in sandbox.api.live_objects():
        text = repr(obj).encode()
        if key[0].plural == "secrets":
            secrets += leaks_in(text, canary)
            continue
        if leaks_in(text, canary):
            leaks.append(f"object {key[0].plural} {key[1]}/{key[2]}")
    assert secrets >= 1, "the canary is not in the credentials Secrets: the check is blind"

    # HTTP answers kept during the session, and the processes still serving now.
    responses = list(audit.responses)
    with httpx.Client(timeout=5) as http:
        for url in _server_urls(sandbox):
            try:
                responses.append((url, http.get(url).text))
            except httpx.HTTPError:
                pass
    for url, body in responses:
        if leaks_in(body.encode(), canary):
            leaks.append(f"HTTP answer of {url}")

    print(f"\nsearched {searched} files, the API's objects and {len(responses)} HTTP answers")
    assert leaks == [], f"the S3 secret key ({CANARY_PREFIX}…) leaked into: {leaks}"
    assert any(url.endswith("/metrics") for url, _ in responses) or not audit.collected
