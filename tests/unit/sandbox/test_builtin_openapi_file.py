"""The committed built-in OpenAPI schemas are what hack/gen_builtin_openapi.py generates."""

from __future__ import annotations

import importlib.util
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_the_committed_builtin_schemas_are_regenerated_unchanged() -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_builtin_openapi", ROOT / "hack" / "gen_builtin_openapi.py"
    )
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    committed = json.loads(generator.OUTPUT.read_text(encoding="utf-8"))
    assert committed == generator.generate(), "run: python hack/gen_builtin_openapi.py"
    # The kinds kubectl explains and validates against, and the types they refer to.
    assert {"io.k8s.api.batch.v1.Job", "io.k8s.api.apps.v1.Deployment"} <= set(committed)
    containers = committed["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
