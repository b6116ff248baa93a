"""kopf's watches, stood in for by LISTs: the operator's own index functions (from
``mlops_operator.watches``) applied to what the API lists, in one namespace, into plain dicts
shaped like kopf's indexes, attached to a context's cache. Each sync delivers what a watch
would have: every listed object, and the deletion of every object gone since the last sync.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from mlops_operator import watches
from mlops_operator.context import Context
from mlops_operator.kube import client as k8s
from mlops_operator.kube import names

Body = dict[str, Any]
IndexFn = Callable[..., Any]

_INDEX: dict[k8s.Resource, IndexFn] = {
    res: getattr(watches, name) for res, name in watches.INDEXES.items()
}

_CHILD_LABEL = {
    k8s.JOBS: names.LABEL_TRAININGJOB,
    k8s.DEPLOYMENTS: names.LABEL_INFERENCESERVICE,
    k8s.SERVICES: names.LABEL_INFERENCESERVICE,
    k8s.HPAS: names.LABEL_INFERENCESERVICE,
}
"""kopf watches children only with the operator's label (``labels={…: kopf.PRESENT}``)."""


def _add(index: dict[Any, list[Body]], entries: Any) -> None:
    for key, body in (entries or {}).items():
        index.setdefault(key, []).append(body)


class Watches:
    """The watch state of one namespace, refreshed by :meth:`sync`.

    ``lister`` is a client of its own (a watch is not one of the operator's requests), so
    ``ctx.kube.requests`` counts only what a reconcile asked for.
    """

    def __init__(self, ctx: Context, lister: k8s.Kube, namespace: str) -> None:
        self.ctx = ctx
        self.lister = lister
        self.namespace = namespace
        self.indexes: dict[k8s.Resource, dict[Hashable, list[Body]]] = {}
        for res in _INDEX:
            self.indexes[res] = {}
            ctx.cache.attach(res, self.indexes[res])

    async def sync(self) -> None:
        """List every kind the reconciles read and deliver it to the cache as events."""
        for res, index_fn in _INDEX.items():
            listed = await self.lister.list(res, self.namespace)
            label = _CHILD_LABEL.get(res)
            if label is not None:
                listed = [o for o in listed if label in (o["metadata"].get("labels") or {})]
            names_now = {o["metadata"]["name"] for o in listed}
            index = self.indexes[res]
            gone = [key for key in index if len(key) == 2 and key[1] not in names_now]
            index.clear()
            for obj in listed:
                meta = obj["metadata"]
                kwargs = {
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "spec": obj.get("spec") or {},
                    "body": obj,
                }
                _add(index, await index_fn(**kwargs))
                self.ctx.cache.observed(res, obj, deleted=False)
            for namespace, name in gone:
                self.ctx.cache.observed(
                    res, {"metadata": {"namespace": namespace, "name": name}}, deleted=True
                )
