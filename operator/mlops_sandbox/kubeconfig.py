"""A kubeconfig that points kubectl, the kubernetes client and kopf at the sandbox API."""

from __future__ import annotations

import os
import pathlib
from typing import Any

import yaml

CONTEXT = "mlops-sandbox"
"""Name of the cluster, the user and the context in the generated kubeconfig."""

TOKEN = "mlops-sandbox"  # a placeholder: the sandbox API checks no credentials
"""Bearer token the clients send; the emulator accepts anything."""


def kubeconfig_dict(server: str, *, namespace: str = "default") -> dict[str, Any]:
    """A kubeconfig with one cluster (``server``, TLS unverified), one user and one context."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {"name": CONTEXT, "cluster": {"server": server, "insecure-skip-tls-verify": True}},
        ],
        "users": [{"name": CONTEXT, "user": {"token": TOKEN}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace},
            },
        ],
        "current-context": CONTEXT,
    }


def write_kubeconfig(
    path: pathlib.Path, server: str, *, namespace: str = "default"
) -> pathlib.Path:
    """Write the sandbox kubeconfig to ``path`` (owner-only, like kubectl does) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(kubeconfig_dict(server, namespace=namespace), sort_keys=False)
    # Create with 0600 from the start: kubectl and helm warn about group/world-readable configs.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return path
