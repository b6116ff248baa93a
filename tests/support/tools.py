"""The real ``helm`` and ``kubectl`` the tests run, fetched into .tools/bin by
hack/fetch_tools.py on first use, and the chart as ``helm template`` renders it."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "mlops-operator"


@functools.cache
def tool(name: str) -> Path:
    """The ``helm`` or ``kubectl`` binary, fetched into .tools/bin when missing."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "fetch_tools.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return Path(result.stdout.strip().splitlines()[-1]) / name


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """``helm <args>``, its output captured; the caller judges the exit code."""
    return subprocess.run([str(tool("helm")), *args], capture_output=True, text=True, timeout=60)


def helm_template(*args: str) -> list[dict[str, Any]]:
    """The manifests ``helm template mlops <chart> <args>`` renders; helm failing fails the
    test with helm's message."""
    result = helm("template", "mlops", str(CHART), *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
