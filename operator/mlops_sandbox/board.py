"""A live status table of the project's resources for the demo (rich), refreshed from the API."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from rich.console import Console
from rich.live import Live
from rich.table import Table

GROUP, VERSION = "mlops.dev", "v1alpha1"


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or []}


def _flags(obj: Mapping[str, Any]) -> str:
    """The conditions that are True, except Ready: what is going on besides."""
    return ", ".join(
        t for t, c in _conditions(obj).items() if c.get("status") == "True" and t != "Ready"
    )


def build_table(
    trainingjobs: Sequence[Mapping[str, Any]],
    modelversions: Sequence[Mapping[str, Any]],
    services: Sequence[Mapping[str, Any]],
) -> Table:
    """One row per resource: kind, name, phase, version, headline, reason, active conditions."""
    table = Table(title="mlops resources (namespace default)", expand=False)
    for column in ("kind", "name", "phase", "version", "metric / url", "reason", "conditions"):
        table.add_column(column, overflow="fold")

    def ready_reason(obj: Mapping[str, Any]) -> str:
        return str(_conditions(obj).get("Ready", {}).get("reason", ""))

    for tj in trainingjobs:
        status = tj.get("status") or {}
        table.add_row(
            "TrainingJob",
            tj["metadata"]["name"],
            status.get("phase", ""),
            str(status.get("version") or ""),
            status.get("mainMetric") or "",
            ready_reason(tj),
            _flags(tj),
        )
    for mv in modelversions:
        status = mv.get("status") or {}
        table.add_row(
            "ModelVersion",
            mv["metadata"]["name"],
            status.get("phase", ""),
            str(mv["spec"]["version"]),
            status.get("mainMetric") or "",
            ready_reason(mv),
            f"served by {', '.join(served)}" if (served := status.get("servedBy")) else "",
        )
    for isvc in services:
        status = isvc.get("status") or {}
        table.add_row(
            "InferenceService",
            isvc["metadata"]["name"],
            status.get("phase", ""),
            str(status.get("currentVersion") or ""),
            status.get("url") or "",
            ready_reason(isvc),
            _flags(isvc),
        )
    return table


class StatusBoard:
    """Polls the API twice a second and shows the table live on a terminal; elsewhere (a
    pipe, CI) it stays silent and the caller prints :meth:`table` once at the end."""

    def __init__(self, api: Any, namespace: str = "default") -> None:
        self._api = api
        self._namespace = namespace
        self.console = Console(soft_wrap=True, highlight=False)
        self._live: Live | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def table(self) -> Table:
        """The table as of now."""
        lists = [
            self._api.list_namespaced_custom_object(GROUP, VERSION, self._namespace, plural)[
                "items"
            ]
            for plural in ("trainingjobs", "modelversions", "inferenceservices")
        ]
        return build_table(*lists)

    def say(self, text: str) -> None:
        """Print a line above the live table (or plainly, when there is none)."""
        if self._live is not None:
            self._live.console.print(text)
        else:
            print(text, flush=True)

    def _refresh(self) -> None:
        while not self._stop.wait(0.5):
            if self._live is not None:
                try:
                    self._live.update(self.table())
                except Exception:  # a failed poll only skips one refresh
                    continue

    def __enter__(self) -> Self:
        if self.console.is_terminal:
            self._live = Live(self.table(), console=self.console, refresh_per_second=4)
            self._live.start()
            self._thread = threading.Thread(target=self._refresh, daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._live is not None:
            self._live.update(self.table())
            self._live.stop()
            self._live = None
        else:
            Console(width=160, highlight=False).print(self.table())
