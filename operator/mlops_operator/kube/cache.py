"""Watch state: what the reconciles read instead of GETs and LISTs.

The objects come from kopf indexes, which kopf keeps from its watch streams (and fills
completely before any handler runs). On top of them, every object the operator itself wrote
is remembered until the watch catches up with it, like client-go's mutation cache: a
reconcile that runs right after a write (triggered by another object) sees its own write,
never the state before it, so it cannot decide the same thing twice.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
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
        self._indexes: dict[str, Index] = {}
        self._written: dict[str, dict[tuple[str, str], Body]] = {}
        self._writers: dict[str, dict[tuple[str, str], str | None]] = {}
        self._written_by_model: dict[str, dict[tuple[str, str], set[tuple[str, str]]]] = {}
        """Our writes by (namespace, spec.model), so a model's objects are found without
        going through every pending write (thousands during a burst)."""

    def attach(self, res: Resource, index: Index) -> None:
        """Read a kind from ``index``: keyed ``(namespace, name)`` for each object, and
        optionally ``("model", namespace, model)`` (see :meth:`of_model`)."""
        self._indexes[res.plural] = index

    def get(self, res: Resource, namespace: str, name: str) -> Body | None:
        """The newest known state of one object, or None when it does not exist."""
        index = self._indexes.get(res.plural) or {}
        seen = next(iter(index.get((namespace, name), ())), None)
        return newer(seen, self._written.get(res.plural, {}).get((namespace, name)))

    def of_model(self, res: Resource, namespace: str, model: str) -> list[Body]:
        """Objects of a kind in ``namespace`` whose ``spec.model`` is ``model``, newest state
        each: the index's, and our own writes the watch has not delivered yet."""

        def of_it(obj: Body) -> bool:
            return (
                obj["metadata"].get("namespace") == namespace
                and (obj.get("spec") or {}).get("model") == model
            )

        index = self._indexes.get(res.plural) or {}
        names = {
            (obj["metadata"]["namespace"], obj["metadata"]["name"])
            for obj in index.get(("model", namespace, model), ())
        }
        names |= self._written_by_model.get(res.plural, {}).get((namespace, model), set())
        newest = (self.get(res, ns, name) for ns, name in names)
        return [obj for obj in newest if obj is not None and of_it(obj)]

    def remember(
        self, res: Resource, obj: Mapping[str, Any] | None, writer: str | None = None
    ) -> None:
        """An object as the API answered us: newer than the watch until the watch delivers
        it. ``writer`` names the controller (a plural) whose write it is; None for a read."""
        if not obj or "metadata" not in obj:
            return
        meta = obj["metadata"]
        written = self._written.setdefault(res.plural, {})
        key = (meta.get("namespace") or "", meta["name"])
        kept = newer(written.get(key), dict(obj))
        if kept is not None and kept is not written.get(key):
            written[key] = kept
            self._writers.setdefault(res.plural, {})[key] = writer
            model = (kept.get("spec") or {}).get("model")
            if isinstance(model, str):
                by_model = self._written_by_model.setdefault(res.plural, {})
                by_model.setdefault((key[0], model), set()).add(key)

    def observed(self, res: Resource, obj: Mapping[str, Any], deleted: bool) -> str | None:
        """The watch delivered ``obj``: drop what it made stale. When it is the echo of a
        write of ours (the same resourceVersion), the controller that wrote it: news to that
        controller's own trigger, which need not mark anything dirty."""
        meta = obj.get("metadata") or {}
        written = self._written.get(res.plural)
        if not written:
            return None
        key = (meta.get("namespace") or "", meta.get("name") or "")
        mine = written.get(key)
        if mine is None or not (deleted or _rv(obj) >= _rv(mine)):
            return None
        del written[key]
        model = (mine.get("spec") or {}).get("model")
        if isinstance(model, str):
            names = self._written_by_model.get(res.plural, {}).get((key[0], model))
            if names is not None:
                names.discard(key)
                if not names:
                    del self._written_by_model[res.plural][(key[0], model)]
        writer = self._writers.get(res.plural, {}).pop(key, None)
        echo = not deleted and _rv(obj) == _rv(mine) and _rv(obj) >= 0
        return writer if echo else None

    @property
    def pending_writes(self) -> int:
        """Our writes the watch has not delivered yet."""
        return sum(len(written) for written in self._written.values())
