"""The sandbox's admin endpoint, on the API emulator's port but outside the Kubernetes API:
``mlops-sandbox fault`` talks to it, and so can ``curl``.

- ``GET /sandbox/faults``: the API and S3 rules, as ``{"api": [...], "s3": [...]}``;
- ``POST /sandbox/faults``: add a rule (a JSON object with :class:`~mlops_sandbox.faults.Fault`
  fields; with ``"target": "s3"``, :class:`~mlops_sandbox.faults.S3Fault` fields); 201 and it;
- ``DELETE /sandbox/faults``: remove every rule; ``DELETE /sandbox/faults/ID``: one;
- ``GET /sandbox/requests``: the request log, filtered by ``client``, ``verb``, ``resource``,
  ``namespace``, ``name``, ``since`` (epoch seconds) query parameters.

Bad input gets a 400 with a ``message``, never a 500.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp.web

from mlops_sandbox.faults import FaultError, Faults, RequestLog, fault_from_json, s3_fault_from_json

PREFIX = "/sandbox/"


def _error(status: int, message: str) -> aiohttp.web.Response:
    return aiohttp.web.json_response({"message": message}, status=status)


async def handle(
    raw: aiohttp.web.BaseRequest, faults: Faults, log: RequestLog, s3_faults: Faults | None
) -> aiohttp.web.StreamResponse:
    """Serve one admin request."""
    parts = raw.path[len(PREFIX) :].strip("/").split("/")
    method = raw.method.upper()
    if parts == ["requests"] and method == "GET":
        return _requests(raw, log)
    if parts[0] != "faults" or len(parts) > 2:
        return _error(404, f"no such admin path: {raw.path} (see docs/faults.md)")
    if len(parts) == 2:
        if method != "DELETE":
            return _error(405, f"{method} {raw.path}: only DELETE removes one fault")
        if not parts[1].isdigit():
            return _error(400, f"a fault id is a number, not {parts[1]!r}")
        removed = faults.remove(int(parts[1])) or (
            s3_faults is not None and s3_faults.remove(int(parts[1]))
        )
        if not removed:
            return _error(404, f"no fault with id {parts[1]}")
        return aiohttp.web.json_response({"removed": int(parts[1])})
    if method == "GET":
        return aiohttp.web.json_response(_listing(faults, s3_faults))
    if method == "DELETE":
        faults.clear()
        if s3_faults is not None:
            s3_faults.clear()
        return aiohttp.web.json_response(_listing(faults, s3_faults))
    if method == "POST":
        return await _add(raw, faults, s3_faults)
    return _error(405, f"{method} {raw.path}: use GET, POST or DELETE")


def _listing(faults: Faults, s3_faults: Faults | None) -> dict[str, Any]:
    return {
        "api": [f.describe() for f in faults],
        "s3": [f.describe() for f in s3_faults] if s3_faults is not None else [],
    }


async def _add(
    raw: aiohttp.web.BaseRequest, faults: Faults, s3_faults: Faults | None
) -> aiohttp.web.Response:
    try:
        body = json.loads(await raw.read() or b"null")
    except ValueError as exc:
        return _error(400, f"the body is not JSON: {exc}")
    if not isinstance(body, dict):
        return _error(400, "a fault is a JSON object")
    target = body.pop("target", "api")
    try:
        if target == "api":
            rule: Any = fault_from_json(body)
            added = faults
        elif target == "s3":
            if s3_faults is None:
                return _error(400, "this sandbox runs no S3 server")
            rule = s3_fault_from_json(body)
            added = s3_faults
        else:
            return _error(400, f"target is 'api' or 's3', not {target!r}")
    except FaultError as exc:
        return _error(400, str(exc))
    added.add(rule)
    return aiohttp.web.json_response({"target": target, **rule.describe()}, status=201)


def _requests(raw: aiohttp.web.BaseRequest, log: RequestLog) -> aiohttp.web.Response:
    filters: dict[str, Any] = {
        key: raw.query[key]
        for key in ("client", "verb", "resource", "namespace", "name")
        if key in raw.query
    }
    if "since" in raw.query:
        try:
            filters["since"] = float(raw.query["since"])
        except ValueError:
            return _error(400, f"since is epoch seconds, not {raw.query['since']!r}")
    records = log.records(**filters)
    return aiohttp.web.json_response({"requests": [r.describe() for r in records]})
