"""The operator's Prometheus client: one PromQL value per metric policy, and pod scrapes.

A ``prometheus`` metric policy names a PromQL query whose answer must be one number.
:func:`query_scalar` asks Prometheus' HTTP API for it and says, in a sentence a person can
act on, why there is no number when there is none (no samples, several series, NaN);
:func:`interpret_query_response` holds that decision and is pure. Failures to talk to
Prometheus at all (unreachable, HTTP errors, a rejected query) raise
:class:`PrometheusError`, so the controller can tell "no verdict possible" from "the metric
has no value".

:func:`scrape` fetches a pod's ``/metrics`` text for the builtin metrics.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import aiohttp

QUERY_PATH = "/api/v1/query"

_BODY_EXCERPT = 200


class PrometheusError(Exception):
    """Prometheus (or a pod's metrics endpoint) could not be asked, or refused to answer."""


@dataclasses.dataclass(frozen=True)
class PromResult:
    """The value of a query, or why there is none."""

    value: float | None
    """The single finite value the query returned; ``None`` when there is none."""

    message: str
    """Why ``value`` is ``None`` (e.g. ``query returned no samples``); empty otherwise."""


def interpret_query_response(payload: Mapping[str, Any]) -> PromResult:
    """Turn the ``data`` of a successful ``/api/v1/query`` answer into one value.

    A scalar, or an instant vector of exactly one sample, is a value; an empty vector, more
    than one series, a range vector, a string or a non-finite number is ``None`` with the
    reason. Raises :class:`ValueError` when ``payload`` is not shaped like the API's answer.
    """
    result_type = payload.get("resultType")
    result = payload.get("result")
    if result_type == "scalar":
        return _sample_value(result)
    if result_type == "vector":
        if not isinstance(result, list):
            raise ValueError("a vector result is not a list")
        if not result:
            return PromResult(None, "query returned no samples")
        if len(result) > 1:
            return PromResult(
                None,
                f"query returned {len(result)} series, not one: aggregate them into a single "
                "value, e.g. wrap the query in sum(...) or max(...)",
            )
        sample = result[0]
        if not isinstance(sample, Mapping):
            raise ValueError("a vector sample is not an object")
        return _sample_value(sample.get("value"))
    if result_type == "matrix":
        return PromResult(
            None,
            "query returned a range vector: reduce it to an instant value, e.g. with "
            "rate(...) or avg_over_time(...)",
        )
    if result_type == "string":
        return PromResult(None, "query returned a string, not a number")
    raise ValueError(f"unknown resultType {result_type!r}")


def _sample_value(sample: Any) -> PromResult:
    """A ``[timestamp, "value"]`` pair, as the API encodes samples."""
    if not isinstance(sample, list) or len(sample) != 2:
        raise ValueError("a sample is not a [timestamp, value] pair")
    try:
        value = float(sample[1])
    except (TypeError, ValueError):
        raise ValueError(f"a sample value {sample[1]!r} is not a number") from None
    if math.isnan(value):
        # Typically a ratio over no traffic (0/0): no evidence either way.
        return PromResult(None, "query returned NaN")
    if math.isinf(value):
        # Not representable in JSON, so not in a status either; and never a measurement.
        return PromResult(None, f"query returned {sample[1]}")
    return PromResult(value, "")


async def query_scalar(
    address: str,
    query: str,
    *,
    timeout: float = 5.0,
    session: aiohttp.ClientSession | None = None,
) -> PromResult:
    """Evaluate ``query`` now with the Prometheus at ``address`` (a base URL such as
    ``http://prometheus.monitoring:9090``) and return its single value.

    Raises :class:`PrometheusError` when Prometheus cannot be reached within ``timeout``
    seconds, answers with an HTTP error (including a query it rejects), or answers with
    something that is not its API. ``session`` reuses a caller's connection pool.
    """
    url = address.rstrip("/") + QUERY_PATH
    status, text = await _get(
        url, {"query": query}, timeout, session, where=f"Prometheus at {address}"
    )
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, Mapping):
        raise PrometheusError(
            f"Prometheus at {address} answered HTTP {status} with something that is not its "
            f"API (is the address right?): {_excerpt(text)}"
        )
    if status >= 400 or body.get("status") != "success":
        detail = body.get("error") or _excerpt(text)
        error_type = body.get("errorType")
        kind = f"HTTP {status}, {error_type}" if error_type else f"HTTP {status}"
        raise PrometheusError(f"Prometheus at {address} refused the query ({kind}): {detail}")
    data = body.get("data")
    try:
        if not isinstance(data, Mapping):
            raise ValueError("no data in the answer")
        return interpret_query_response(data)
    except ValueError as e:
        raise PrometheusError(
            f"Prometheus at {address} answered the query with an unexpected shape: {e}"
        ) from None


async def scrape(
    url: str, *, timeout: float = 3.0, session: aiohttp.ClientSession | None = None
) -> str:
    """The text of a metrics page (a pod's ``http://<podIP>:<port>/metrics``).

    Raises :class:`PrometheusError` when it cannot be fetched within ``timeout`` seconds or
    answers anything but HTTP 200.
    """
    status, text = await _get(url, None, timeout, session, where=f"the metrics endpoint {url}")
    if status != 200:
        raise PrometheusError(f"GET {url} answered HTTP {status}: {_excerpt(text)}")
    return text


async def _get(
    url: str,
    params: Mapping[str, str] | None,
    timeout: float,
    session: aiohttp.ClientSession | None,
    *,
    where: str,
) -> tuple[int, str]:
    """GET ``url``; its status and text. Network failures become :class:`PrometheusError`."""
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    try:
        if session is None:
            async with aiohttp.ClientSession() as own:
                return await _fetch(own, url, params, client_timeout)
        return await _fetch(session, url, params, client_timeout)
    except TimeoutError:
        raise PrometheusError(f"No answer from {where} within {timeout:g}s.") from None
    except aiohttp.ClientError as e:
        raise PrometheusError(f"Cannot reach {where}: {e or type(e).__name__}") from None


async def _fetch(
    session: aiohttp.ClientSession,
    url: str,
    params: Mapping[str, str] | None,
    timeout: aiohttp.ClientTimeout,
) -> tuple[int, str]:
    async with session.get(url, params=params, timeout=timeout) as response:
        return response.status, await response.text(errors="replace")


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _BODY_EXCERPT:
        return text[:_BODY_EXCERPT] + "…"
    return text or "(empty body)"


def render_query(query: str, **values: object) -> str:
    """Fill ``{{ model }}``, ``{{ version }}``, ``{{ namespace }}`` and ``{{ service }}`` in a
    PromQL query, so one policy follows the served version across rollouts."""
    return re.sub(
        r"\{\{\s*(\w+)\s*\}\}",
        lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0),
        query,
    )
