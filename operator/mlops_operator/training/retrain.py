"""``mlops-operator retrain --from <modelversion>``: train a registered version again, exactly,
from its lineage: the TrainingJob spec it was trained with, the dataset pinned to the object
version it read (when the bucket is versioned), the same parameters and split, so the same
data gives the same metrics."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from mlops_operator.api.base import API_VERSION
from mlops_operator.api.trainingjob import KIND
from mlops_operator.cli import CommandError, api_error, connect, current_namespace, run_command
from mlops_operator.kube import names
from mlops_operator.training.plan import retrain_spec


class RetrainError(CommandError):
    """A retraining that cannot be started, said in one sentence."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``retrain`` options to ``parser``."""
    parser.add_argument(
        "--from", dest="source", required=True, metavar="MODELVERSION", help="version to retrain"
    )
    parser.add_argument("--name", help="the new TrainingJob's name (default: <version>-rerun)")
    parser.add_argument(
        "--namespace", "-n", help="namespace (default: the kubeconfig context's, else 'default')"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the TrainingJob YAML; create nothing"
    )


def trainingjob(name: str, namespace: str, mv: dict[str, Any]) -> dict[str, Any]:
    """The TrainingJob that retrains ``mv`` from its lineage; raises :class:`RetrainError`."""
    spec = retrain_spec(mv)
    if isinstance(spec, str):
        raise RetrainError(spec)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {names.LABEL_MODEL: spec.model},
            "annotations": {"mlops.dev/retrained-from": mv["metadata"]["name"]},
        },
        "spec": spec.to_wire(),
    }


async def retrain(args: argparse.Namespace) -> str:
    """Read the ModelVersion, create (or with ``--dry-run`` print) its TrainingJob."""
    from mlops_operator.kube import client as k8s

    namespace = args.namespace or current_namespace()
    kube = connect("retrain")
    try:
        try:
            mv = await kube.get(k8s.MODELVERSIONS, namespace, args.source)
        except k8s.NotFound:
            raise RetrainError(f"ModelVersion {namespace}/{args.source} does not exist") from None
        except Exception as exc:
            raise api_error(exc, f"read ModelVersion {args.source}") from None
        body = trainingjob(args.name or f"{args.source}-rerun", namespace, mv)
        if args.dry_run:
            return yaml.safe_dump(body, sort_keys=False)
        try:
            await kube.create(k8s.TRAININGJOBS, namespace, body)
        except k8s.Conflict:
            raise RetrainError(
                f"TrainingJob {namespace}/{body['metadata']['name']} already exists; "
                "choose another with --name"
            ) from None
        except Exception as exc:
            raise api_error(exc, "create the TrainingJob") from None
        return f"trainingjob.mlops.dev/{body['metadata']['name']} created from {args.source}"
    finally:
        kube.close()


def retrain_command(args: argparse.Namespace) -> int:
    """``mlops-operator retrain``: exit code 0 on success, 1 on a failure said on stderr."""
    return run_command("retrain", retrain(args))
