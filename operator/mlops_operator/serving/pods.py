"""Asking the predictor pods themselves: why a pod is not ready, straight from the model
server's readiness endpoint (probes record only the status code, not the reason)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from mlops_operator.kube import client as k8s
from mlops_operator.kube import names

READY_PATH = "/v2/health/ready"
TIMEOUT = aiohttp.ClientTimeout(total=2.0)


def _reason(body: str) -> str:
    try:
        data: Any = json.loads(body)
    except ValueError:
        return body.strip()[:300]
    if isinstance(data, dict):
        for key in ("reason", "error", "message"):
            if isinstance(data.get(key), str):
                return str(data[key])[:300]
    return body.strip()[:300]


async def _ask(session: aiohttp.ClientSession, pod: dict[str, Any]) -> str | None:
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        return None
    url = f"http://{ip}:{names.PREDICTOR_PORT}{READY_PATH}"
    try:
        async with session.get(url) as response:
            if response.status == 200:
                return None
            return f"{pod['metadata']['name']}: {_reason(await response.text())}"
    except (aiohttp.ClientError, TimeoutError):
        return None  # not listening yet: nothing to explain


async def unready_reasons(kube: k8s.Kube, namespace: str, inferenceservice: str) -> list[str]:
    """What each running-but-unready predictor pod says about itself."""
    pods = await kube.list(
        k8s.PODS, namespace, labels={names.LABEL_INFERENCESERVICE: inferenceservice}
    )
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
    if not running:
        return []
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        answers = await asyncio.gather(*(_ask(session, pod) for pod in running))
    return sorted(a for a in answers if a)
