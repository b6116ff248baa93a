"""Generate ``operator/mlops_sandbox/openapi_builtins.json``: the OpenAPI v3 schemas of the
built-in kinds the sandbox API serves, as Kubernetes 1.33 publishes them.

The source is the JSON-schema rendering of the 1.33 OpenAPI definitions that the dev
dependency ``kubernetes-validate`` ships; this script takes the closure of the served kinds,
turns it back into the API server's OpenAPI v3 form (``#/components/schemas/…`` references
wrapped in ``allOf`` beside a description, plain ``type`` instead of ``[type, "null"]``,
``int-or-string`` and quantities as strings) and writes it compactly, sorted, so a rerun
gives the same file.

Usage: ``python hack/gen_builtin_openapi.py`` (rerun when the served built-ins change).
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import kubernetes_validate

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "operator" / "mlops_sandbox" / "openapi_builtins.json"
KUBE_VERSION = "1.33.0"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
ROOTS = (
    "io.k8s.api.core.v1.Namespace",
    "io.k8s.api.core.v1.Pod",
    "io.k8s.api.core.v1.Secret",
    "io.k8s.api.core.v1.ConfigMap",
    "io.k8s.api.core.v1.Service",
    "io.k8s.api.core.v1.ServiceAccount",
    "io.k8s.api.core.v1.Event",
    "io.k8s.api.batch.v1.Job",
    "io.k8s.api.apps.v1.Deployment",
    "io.k8s.api.apps.v1.ReplicaSet",
    "io.k8s.api.autoscaling.v1.Scale",
    "io.k8s.api.events.v1.Event",
    "io.k8s.api.coordination.v1.Lease",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
    f"{META}.Status",
    f"{META}.DeleteOptions",
    f"{META}.Patch",
)
_SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "type": "string",
        "format": "int-or-string",
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
}


def _definitions() -> dict[str, Any]:
    folder = pathlib.Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    path = folder / f"v{KUBE_VERSION}-local" / "_definitions.json"
    return dict(json.loads(path.read_text(encoding="utf-8"))["$defs"])


def _refs(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        found = {ref.rsplit("/", 1)[1]} if isinstance(ref, str) else set()
        return found.union(*(_refs(value) for value in schema.values()))
    if isinstance(schema, list):
        return set().union(*(_refs(value) for value in schema))
    return set()


def _convert(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_convert(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, list):
            kinds = [kind for kind in value if kind != "null"]
            out[key] = kinds[0] if len(kinds) == 1 else kinds
        elif key == "$ref" and isinstance(value, str):
            continue
        elif key in ("properties", "patternProperties", "definitions"):
            out[key] = {name: _convert(sub) for name, sub in value.items()}
        else:
            out[key] = _convert(value)
    if isinstance(schema.get("$ref"), str):
        ref = {"$ref": "#/components/schemas/" + schema["$ref"].rsplit("/", 1)[1]}
        if out:
            out["allOf"] = [ref]
        else:
            out = ref
    return out


def generate() -> dict[str, Any]:
    """The schemas of the served built-ins and everything they reference, by name."""
    definitions = _definitions()
    wanted: set[str] = set()
    pending = list(ROOTS)
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        wanted.add(name)
        pending.extend(_refs(definitions[name]) - wanted)
    schemas: dict[str, Any] = {}
    for name in sorted(wanted):
        schema = _convert(definitions[name])
        for field in ("apiVersion", "kind"):
            # The JSON-schema rendering pins these with an enum; the API server's does not.
            schema.get("properties", {}).get(field, {}).pop("enum", None)
        if name in _SPECIAL:
            schema = {"description": schema.get("description", ""), **_SPECIAL[name]}
        schemas[name] = schema
    return schemas


def main() -> int:
    """Write the generated file."""
    text = json.dumps(generate(), sort_keys=True, separators=(",", ":"))
    OUTPUT.write_text(text + "\n", encoding="utf-8")
    print(f"{OUTPUT.relative_to(ROOT)}: {len(text)} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
