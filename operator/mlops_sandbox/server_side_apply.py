"""Server-side apply for the sandbox API: field ownership in ``metadata.managedFields``.

``PATCH`` with ``Content-Type: application/apply-patch+yaml`` and a ``fieldManager``:
the manager's applied configuration is merged into the live object (or creates it),
the set of fields it names becomes the manager's (``operation: Apply``, ``fieldsV1`` in
the API server's format: ``f:<field>``, ``k:{"name":"main"}`` for items of lists keyed by
their ``x-kubernetes-list-map-keys``, ``v:<value>`` for sets, ``.`` for an item itself),
a field another manager owns with a different value is a conflict (409 with one cause per
field) unless ``force=true`` takes it over, and a field the manager applied before but
not now is removed unless another manager still owns it.

No library implements these semantics outside Go (structured-merge-diff), so they are
here, over the kinds' OpenAPI schemas (:mod:`mlops_sandbox.openapi`): lists are
associative when the schema says ``x-kubernetes-list-type: map`` (or gives a patch merge
key), sets with ``set``, atomic otherwise. Writes other than apply to an object that has
``managedFields`` record an ``Update`` manager (:func:`record_update`). Not covered: the
managers of objects never applied (no ``managedFields`` are started for them), the
client-side-apply migration, ``status`` applies.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
from collections.abc import Mapping
from typing import Any

from mlops_sandbox import openapi

Path = tuple[str, ...]
"""A field path as fieldsV1 elements: ``("f:spec", "f:containers", 'k:{"name":"main"}', ".")``."""

_RESET_METADATA = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
        "generateName",
    }
)


@dataclasses.dataclass(frozen=True)
class Conflict:
    """A field another manager owns with another value than the applied one."""

    manager: str
    path: Path
    using: str = ""
    """The API version of an ``Update`` manager (the API server names it beside one)."""

    @property
    def owner(self) -> str:
        """The manager as the API server names it: ``"flux"``, ``"kubectl-edit" using v1``."""
        return json.dumps(self.manager) + (f" using {self.using}" if self.using else "")

    @property
    def field(self) -> str:
        """The field as the API server prints it: ``.spec.containers[name="main"].image``."""
        return path_text(self.path)


class ApplyConflict(Exception):
    """The applied configuration changes fields other managers own."""

    def __init__(self, conflicts: list[Conflict]) -> None:
        super().__init__(conflict_message(conflicts))
        self.conflicts = conflicts


def path_text(path: Path) -> str:
    """A fieldsV1 path in the API server's notation."""
    out = ""
    for element in path:
        if element == ".":
            continue
        prefix, _, rest = element.partition(":")
        if prefix == "f":
            out += "." + rest
        elif prefix == "k":
            keys = json.loads(rest)
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]"
        elif prefix == "v":
            out += f"[={rest}]"
        else:
            out += f"[{rest}]"
    return out


def conflict_message(conflicts: list[Conflict]) -> str:
    """The API server's message for apply conflicts."""
    if len(conflicts) == 1:
        only = conflicts[0]
        return f"Apply failed with 1 conflict: conflict with {only.owner}: {only.field}"
    by_manager: dict[str, list[str]] = {}
    for conflict in conflicts:
        by_manager.setdefault(conflict.owner, []).append(conflict.field)
    text = "conflicts with"
    if len(by_manager) == 1:
        ((manager, fields),) = by_manager.items()
        text += f" {manager}:" + "".join(f"\n- {field}" for field in fields)
    else:
        for manager, fields in by_manager.items():
            text += f"\n{manager}:" + "".join(f"\n- {field}" for field in fields)
    return f"Apply failed with {len(conflicts)} conflicts: {text}"


# --- schemas -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Schemas:
    root: Mapping[str, Any]
    named: Mapping[str, Any]

    def resolve(self, schema: Mapping[str, Any] | None) -> Mapping[str, Any]:
        return openapi._resolve(schema or {}, self.named)

    def child(self, schema: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        schema = self.resolve(schema)
        props = schema.get("properties")
        if isinstance(props, Mapping) and key in props:
            return self.resolve(props[key])
        additional = schema.get("additionalProperties")
        return self.resolve(additional) if isinstance(additional, Mapping) else {}

    def items(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        items = self.resolve(schema).get("items")
        return self.resolve(items) if isinstance(items, Mapping) else {}


def _schemas(served: openapi.Served) -> _Schemas:
    named = openapi.builtin_schemas()
    if served.schema is None:
        root = named.get(served.schema_name, {})
    else:
        root = openapi._custom_schema(served)
    return _Schemas(root, named)


def _list_kind(schema: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """("map", keys), ("set", ()) or ("atomic", ()) for a list's schema."""
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "map":
        return "map", tuple(schema.get("x-kubernetes-list-map-keys") or ())
    if list_type == "set":
        return "set", ()
    merge_key = schema.get("x-kubernetes-patch-merge-key")
    if list_type is None and isinstance(merge_key, str):
        return "map", (merge_key,)
    return "atomic", ()


def _item_key(item: Any, keys: tuple[str, ...]) -> str:
    fields = {key: item[key] for key in keys if isinstance(item, Mapping) and key in item}
    return "k:" + json.dumps(fields, sort_keys=True, separators=(",", ":"))


def _value_key(value: Any) -> str:
    return "v:" + json.dumps(value, sort_keys=True, separators=(",", ":"))


# --- field sets ----------------------------------------------------------------------------


def field_set(config: Mapping[str, Any], schemas: _Schemas) -> set[Path]:
    """The fields an applied configuration names (the server-managed ones excluded)."""
    paths: set[Path] = set()
    for key, value in config.items():
        if key in ("apiVersion", "kind") or value is None:
            continue
        if key == "metadata" and isinstance(value, Mapping):
            meta = {k: v for k, v in value.items() if k not in _RESET_METADATA}
            if meta:
                _collect(meta, ("f:metadata",), schemas.child(schemas.root, key), schemas, paths)
            continue
        _collect(value, (f"f:{key}",), schemas.child(schemas.root, key), schemas, paths)
    return paths


def _collect(
    value: Any, path: Path, schema: Mapping[str, Any], schemas: _Schemas, paths: set[Path]
) -> None:
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            if sub is not None:
                _collect(sub, (*path, f"f:{key}"), schemas.child(schema, key), schemas, paths)
        return
    if isinstance(value, list) and value:
        kind, keys = _list_kind(schemas.resolve(schema))
        if kind == "map" and keys and all(isinstance(item, dict) for item in value):
            item_schema = schemas.items(schema)
            for item in value:
                item_path = (*path, _item_key(item, keys))
                paths.add((*item_path, "."))
                _collect(item, item_path, item_schema, schemas, paths)
            return
        if kind == "set":
            for item in value:
                paths.add((*path, _value_key(item)))
            return
    paths.add(path)


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    """A set of paths as a ``fieldsV1`` tree."""
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    return tree


def from_fields_v1(tree: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    """The set of paths of a ``fieldsV1`` tree."""
    paths: set[Path] = set()
    for element, sub in tree.items():
        if isinstance(sub, dict) and sub:
            paths |= from_fields_v1(sub, (*prefix, element))
        else:
            paths.add((*prefix, element))
    return paths


# --- values at paths -----------------------------------------------------------------------

_MISSING = object()


@functools.lru_cache(maxsize=4096)
def _element_value(element: str) -> Any:
    return json.loads(element.partition(":")[2])


def _find_item(items: list[Any], element: str) -> int | None:
    prefix = element[:1]
    wanted = _element_value(element)
    for index, item in enumerate(items):
        if prefix == "k" and isinstance(item, dict):
            if all(item.get(k) == v for k, v in wanted.items()):
                return index
        elif prefix == "v" and item == wanted:
            return index
    return None


def value_at(obj: Any, path: Path) -> Any:
    """The value a path names in ``obj`` (``_MISSING`` when absent)."""
    node = obj
    for element in path:
        if element == ".":
            return node
        if element.startswith("f:") and isinstance(node, dict):
            if element[2:] not in node:
                return _MISSING
            node = node[element[2:]]
        elif element[:2] in ("k:", "v:") and isinstance(node, list):
            index = _find_item(node, element)
            if index is None:
                return _MISSING
            node = node[index]
        else:
            return _MISSING
    return node


def remove_at(obj: Any, path: Path) -> None:
    """Remove the field (or list item, for a path ending in ``.`` or ``v:``) at ``path``."""
    if path and path[-1] == ".":
        path = path[:-1]
    parent = value_at(obj, path[:-1]) if len(path) > 1 else obj
    last = path[-1]
    if last.startswith("f:") and isinstance(parent, dict):
        parent.pop(last[2:], None)
    elif last[:2] in ("k:", "v:") and isinstance(parent, list):
        index = _find_item(parent, last)
        if index is not None:
            del parent[index]


def merge(live: Any, applied: Any, schema: Mapping[str, Any], schemas: _Schemas) -> Any:
    """Merge an applied configuration into the live value, list semantics by schema."""
    if isinstance(applied, Mapping) and isinstance(live, Mapping):
        result = copy.deepcopy(dict(live))
        for key, value in applied.items():
            if value is None:
                continue
            result[key] = merge(live.get(key), value, schemas.child(schema, key), schemas)
        return result
    if isinstance(applied, list) and isinstance(live, list):
        kind, keys = _list_kind(schemas.resolve(schema))
        if kind == "map" and keys:
            result_list = copy.deepcopy(live)
            item_schema = schemas.items(schema)
            for item in applied:
                index = _find_item(result_list, _item_key(item, keys))
                if index is None:
                    result_list.append(copy.deepcopy(item))
                else:
                    result_list[index] = merge(result_list[index], item, item_schema, schemas)
            return result_list
        if kind == "set":
            return copy.deepcopy(live) + [item for item in applied if item not in live]
    return copy.deepcopy(applied)


# --- apply ---------------------------------------------------------------------------------


def _entries(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    entries = (obj.get("metadata") or {}).get("managedFields") or []
    return [dict(entry) for entry in entries if isinstance(entry, Mapping)]


def apply(
    served: openapi.Served,
    live: Mapping[str, Any] | None,
    config: Mapping[str, Any],
    *,
    manager: str,
    force: bool,
    now: str,
) -> dict[str, Any]:
    """The object after ``manager`` applies ``config`` to ``live`` (None: create), with its
    ``metadata.managedFields``; raises :class:`ApplyConflict` unless ``force``."""
    schemas = _schemas(served)
    base: dict[str, Any] = copy.deepcopy(dict(live)) if live is not None else {}
    # With a status subresource, the main resource's writes leave status alone (reset fields).
    applied = {
        key: value
        for key, value in config.items()
        if not (key == "status" and "status" in served.subresources)
    }
    new_set = field_set(applied, schemas)
    api_version = f"{served.group}/{served.version}" if served.group else served.version
    owners: list[tuple[dict[str, Any], set[Path]]] = []
    previous: set[Path] = set()
    previous_time = now
    for entry in _entries(base):
        fields = from_fields_v1(entry.get("fieldsV1") or {})
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            previous, previous_time = fields, str(entry.get("time") or now)
        else:
            owners.append((entry, fields))
    conflicts = [
        Conflict(
            str(entry.get("manager")),
            path,
            str(entry.get("apiVersion", "")) if entry.get("operation") == "Update" else "",
        )
        for entry, fields in owners
        if not entry.get("subresource")
        for path in sorted(new_set & fields)
        if path[-1] != "." and value_at(base, path) != value_at(applied, path)
    ]
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    taken = {conflict.path for conflict in conflicts}
    others = set().union(*(fields for _, fields in owners)) - taken
    result = base
    # Whole list items first: their fields hold the keys that find them.
    for path in sorted(previous - new_set, key=lambda p: (p[-1] != ".", -len(p))):
        if path not in others:
            remove_at(result, path)
    result = dict(merge(result, applied, schemas.root, schemas))
    entries: list[dict[str, Any]] = []
    for entry, fields in owners:
        kept = fields - taken
        if kept:
            entries.append({**entry, "fieldsV1": to_fields_v1(kept)})
    unchanged = (
        live is not None
        and previous == new_set
        and _without_managed_fields(result) == _without_managed_fields(live)
    )
    if new_set:
        entries.append(
            {
                "manager": manager,
                "operation": "Apply",
                "apiVersion": api_version,
                # A no-op apply changes nothing, not even its own timestamp: no write happens.
                "time": previous_time if unchanged else now,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(new_set),
            }
        )
    result.setdefault("metadata", {})["managedFields"] = entries
    return result


def _without_managed_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "metadata": metadata}


def record_update(
    served: openapi.Served,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    manager: str,
    now: str,
) -> list[dict[str, Any]]:
    """The ``managedFields`` after a write other than apply (an ``Update``): the fields it
    changed become ``manager``'s and leave their other owners, the fields it removed leave
    every owner. The status of a kind with a status subresource is not the write's."""
    schemas = _schemas(served)

    def owned(obj: Mapping[str, Any]) -> set[Path]:
        body = {
            key: value
            for key, value in obj.items()
            if not (key == "status" and "status" in served.subresources)
        }
        return field_set(body, schemas)

    before, after = owned(old), owned(new)
    changed = {path for path in after if value_at(old, path) != value_at(new, path)}
    gone = before - after
    if not changed and not gone:
        return _entries(old)
    api_version = f"{served.group}/{served.version}" if served.group else served.version
    entries: list[dict[str, Any]] = []
    mine: set[Path] = set(changed)
    for entry in _entries(old):
        fields = from_fields_v1(entry.get("fieldsV1") or {})
        if (
            entry.get("manager") == manager
            and entry.get("operation") == "Update"
            and entry.get("apiVersion") == api_version
            and not entry.get("subresource")
        ):
            mine |= fields - gone
            continue
        kept = fields if entry.get("subresource") else fields - changed - gone
        if kept:
            entries.append({**entry, "fieldsV1": to_fields_v1(kept)})
    if mine:
        entries.append(
            {
                "manager": manager,
                "operation": "Update",
                "apiVersion": api_version,
                "time": now,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(mine),
            }
        )
    return entries
