"""The e2e session's audit: what every process said and served while the whole loop ran,
kept for the checks that run last (``test_secrets_*``: the S3 secret key never leaks;
``test_privilege_*``: the operator used exactly the permissions the chart grants).

- the sandbox's own log records (it runs in this process) go to a file beside the pod logs;
- before each test's fixtures are torn down, the /metrics of its operators and the /metrics
  and metadata endpoints of its model servers are fetched and kept;
- the audit tests are moved to the end of the session, and know whether every e2e test ran.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlops_sandbox.cluster import Sandbox

HERE = Path(__file__).resolve().parent
AUDIT_FILES = ("test_secrets_", "test_privilege_")
"""Basenames of the tests that read the audit: they run after every other e2e test."""


@dataclasses.dataclass
class Audit:
    """What the session saw, for the checks at its end."""

    sandbox_log: Path
    responses: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """(URL, body) of every HTTP answer fetched from the session's processes."""
    collected: set[str] = dataclasses.field(default_factory=set)
    """Node ids of the e2e tests (audit tests excluded) collected in this session."""
    passed: set[str] = dataclasses.field(default_factory=set)

    def whole_suite_passed(self) -> bool:
        """Whether every e2e test of tests/e2e ran and passed in this session."""
        return bool(self.collected) and self.collected <= self.passed


AUDIT = pytest.StashKey[Audit]()
_COLLECTED = pytest.StashKey[set[str]]()


def _is_e2e(item: pytest.Item) -> bool:
    return Path(str(item.path)).parent == HERE


def _is_audit(item: pytest.Item) -> bool:
    return _is_e2e(item) and Path(str(item.path)).name.startswith(AUDIT_FILES)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move the audit tests last; note which e2e tests this session runs."""
    audits = [item for item in items if _is_audit(item)]
    items[:] = [item for item in items if not _is_audit(item)] + audits


def pytest_collection_finish(session: pytest.Session) -> None:
    """Note which e2e tests this session runs (after ``-m`` deselected the chaos runs)."""
    config = session.config
    items = session.items
    config.stash[_COLLECTED] = {i.nodeid for i in items if _is_e2e(i) and not _is_audit(i)}
    every = {
        f"{path.relative_to(config.rootpath)}"
        for path in HERE.glob("test_*.py")
        if not path.name.startswith(AUDIT_FILES)
    }
    ran_files = {nodeid.split("::", 1)[0] for nodeid in config.stash[_COLLECTED]}
    if ran_files != every:
        # Part of the suite: the "used exactly" checks cannot hold; say so where they fail.
        config.stash[_COLLECTED] |= {f"{f}::(not collected)" for f in every - ran_files}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count an e2e test as passed when its call passed."""
    if report.when == "call" and report.passed:
        _passed_ids.add(report.nodeid)


_passed_ids: set[str] = set()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, None, None]:
    """Before the test's operators and namespace go: fetch what its processes serve."""
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    sandbox = funcargs.get("sandbox")
    audit = item.config.stash.get(AUDIT, None)
    if isinstance(sandbox, Sandbox) and audit is not None and _is_e2e(item):
        urls = list(getattr(funcargs.get("start_operator"), "metrics_urls", []))
        urls += _server_urls(sandbox)
        with httpx.Client(timeout=5) as http:
            for url in urls:
                try:
                    audit.responses.append((url, http.get(url).text))
                except httpx.HTTPError:
                    pass  # a process that already stopped serves nothing to leak
    return (yield)


def _server_urls(sandbox: Sandbox) -> list[str]:
    """Metrics and metadata endpoints of every model server a Service forwards now."""
    models: dict[tuple[str, str], str] = {}
    for key, obj in sandbox.api.live_objects():
        if key[0].plural == "inferenceservices":
            models[key[1] or "", f"{key[2]}-predictor"] = str(obj["spec"]["model"])
    urls = []
    if sandbox.services_file.exists():
        for line in sandbox.services_file.read_text().splitlines():
            name, _, address = line.partition(" ")
            namespace, _, service = name.partition("/")
            model = models.get((namespace, service))
            if model is None or not address:
                continue
            for path in ("/metrics", "/v2", f"/v2/models/{model}", f"/v1/models/{model}"):
                urls.append(address.strip() + path)
    return urls


@pytest.fixture(scope="session", autouse=True)
def audit(sandbox: Sandbox, request: pytest.FixtureRequest) -> Iterator[Audit]:
    """The session's audit; the sandbox's log records go to ``sandbox.log`` meanwhile."""
    log = sandbox.state_dir / "sandbox.log"
    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("mlops_sandbox")
    level = logger.level
    logger.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    found = Audit(sandbox_log=log)
    found.collected = request.config.stash.get(_COLLECTED, set())
    found.passed = _passed_ids
    request.config.stash[AUDIT] = found
    yield found
    logging.getLogger().removeHandler(handler)
    logger.setLevel(level)
    handler.close()
