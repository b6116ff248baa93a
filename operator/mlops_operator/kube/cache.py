"""Watch state: what the reconciles read instead of GETs and LISTs.

The objects come from kopf indexes, which kopf keeps from its watch streams (and fills
completely before any handler runs). On top of them, every object the operator itself wrote
is remembered until the watch catches up with it, like client-go's mutation cache: a
reconcile that runs right after a write (triggered by another object) sees its own write,
never the state before it, so it cannot decide the same thing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from mlops_operator.kube.client import Resource

Body = dict[str, Any]
Index = Mapping[Hashable, Iterable[Body]]


def _rv(obj: Mapping[str, Any]) -> int:
    value = (obj.get("metadata") or {}).get("resourceVersion") or ""
    return int(value) if str(value).isdigit() else -1


def newer(a: Body | None, b: Body | None) -> Body | None:
    """The more recent of two states of one object (by resourceVersion; ``a`` on a tie)."""
    if a is None or b is None:
        return a if b is None else b
    return b if _rv(b) > _rv(a) else a


class Cache:
    """Objects by kind, read from kopf indexes and our own recent writes."""

    def __init__(self) -> None:
        self._by_name: dict[str, Index] = {}
        self._by: dict[tuple[str, str], Index] = {}
        self._written: dict[tuple[str, str, str], Body] = {}

    def attach(self, res: Resource, by_name: Index, **secondary: Index) -> None:
        """Use ``by_name`` (keyed ``(namespace, name)``) and secondary indexes of a kind."""
        self._by_name[res.plural] = by_name
        for label, index in secondary.items():
            self._by[(res.plural, label)] = index

    def get(self, res: Resource, namespace: str, name: str) -> Body | None:
        """The newest known state of one object, or None when it does not exist."""
        index = self._by_name.get(res.plural) or {}
        seen = next(iter(index.get((namespace, name), ())), None)
        return newer(seen, self._written.get((res.plural, namespace, name)))

    def select(
        self, res: Resource, by: str, key: Hashable, match: Callable[[Body], bool]
    ) -> list[Body]:
        """Objects of a secondary index's ``key``, newest state each; ``match`` also picks
        our own writes the watch has not delivered yet."""
        index = self._by.get((res.plural, by)) or {}
        found: dict[tuple[str, str], Body] = {}
        for obj in index.get(key, ()):
            meta = obj["metadata"]
            found[(meta["namespace"], meta["name"])] = obj
        for (plural, namespace, name), obj in self._written.items():
            if plural == res.plural and match(obj):
                found[(namespace, name)] = newer(found.get((namespace, name)), obj) or obj
        result = [self.get(res, namespace, name) or obj for (namespace, name), obj in found.items()]
        return [obj for obj in result if match(obj)]

    def of_model(self, res: Resource, namespace: str, model: str) -> list[Body]:
        """Objects of a kind in ``namespace`` whose ``spec.model`` is ``model``."""
        return self.select(
            res,
            "model",
            (namespace, model),
            lambda o: (
                o["metadata"].get("namespace") == namespace
                and (o.get("spec") or {}).get("model") == model
            ),
        )

    def keys(self, res: Resource) -> list[tuple[str, str]]:
        """Every ``(namespace, name)`` of a kind."""
        index = self._by_name.get(res.plural) or {}
        return [key for key in index if isinstance(key, tuple) and len(key) == 2]

    def remember(self, res: Resource, obj: Mapping[str, Any] | None) -> None:
        """Our own write's answer: newer than the watch until the watch delivers it."""
        if not obj or "metadata" not in obj:
            return
        meta = obj["metadata"]
        key = (res.plural, meta.get("namespace") or "", meta["name"])
        self._written[key] = newer(self._written.get(key), dict(obj)) or dict(obj)

    def observed(self, res: Resource, obj: Mapping[str, Any], deleted: bool) -> None:
        """The watch delivered ``obj``: drop what it made stale."""
        meta = obj.get("metadata") or {}
        key = (res.plural, meta.get("namespace") or "", meta.get("name") or "")
        mine = self._written.get(key)
        if mine is not None and (deleted or _rv(obj) >= _rv(mine)):
            del self._written[key]

    @property
    def pending_writes(self) -> int:
        """Our writes the watch has not delivered yet."""
        return len(self._written)
