"""``mlops-operator register``: a model trained elsewhere becomes a ModelVersion.

The local ``model.joblib`` is hashed and unpickled (it is the user's own file); what the
server needs is read from the estimator as the server itself does (``describe``); the file
and an inferred ``manifest.json`` go to the version's directory of the artifact layout
(``<prefix>/<namespace>/<model>/<version>/``, where a TrainingJob would register it); then
the ModelVersion is created through the Kubernetes API. Every expected failure is one line
on stderr and exit code 1; nothing is ever overwritten.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

from mlops_operator.cli import CommandError, api_error, connect, current_namespace, run_command

if TYPE_CHECKING:
    from mlops_operator.api.trainingjob import Gate
    from mlops_operator.kube.client import Kube

_GATE_OPERATORS: Final = (">=", "<=")


class RegisterError(CommandError):
    """A registration that cannot be done, said in one sentence."""


def _metric(value: str) -> tuple[str, float]:
    name, sep, number = value.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected NAME=NUMBER, e.g. accuracy=0.95: {value!r}"
        ) from None


def _gate(value: str) -> tuple[str, str, float]:
    for op in _GATE_OPERATORS:
        name, sep, number = value.partition(op)
        if sep:
            try:
                if not name:
                    raise ValueError
                return name, op, float(number)
            except ValueError:
                break
    raise argparse.ArgumentTypeError(f"expected METRIC>=NUMBER or METRIC<=NUMBER: {value!r}")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``register`` arguments to ``parser``."""
    parser.add_argument("file", type=Path, help="the fitted model, dumped with joblib")
    parser.add_argument("--model", "-m", required=True, help="registry name of the model")
    parser.add_argument(
        "--version",
        type=int,
        help="version number (default: one above every version of the model in the namespace)",
    )
    parser.add_argument(
        "--namespace", "-n", help="namespace (default: the kubeconfig context's, else 'default')"
    )
    parser.add_argument(
        "--features",
        help="comma-separated feature names, for a model fitted on arrays (default: the "
        "names it was fitted on, else x0, x1, ...)",
    )
    parser.add_argument(
        "--reference-data",
        type=Path,
        metavar="FILE",
        help="the training data (CSV or Parquet with a column per feature): its statistics go "
        "to reference.json, so the server measures input drift (default: no drift detection)",
    )
    parser.add_argument(
        "--metric",
        type=_metric,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a held-out metric measured elsewhere, e.g. accuracy=0.95 (repeatable)",
    )
    parser.add_argument(
        "--gate",
        type=_gate,
        action="append",
        default=[],
        metavar="METRIC>=MIN|METRIC<=MAX",
        help="a promotion gate on a metric, e.g. 'accuracy>=0.9' (repeatable)",
    )
    parser.add_argument(
        "--bucket", help="artifact bucket (default: $MLOPS_S3_BUCKET, else mlops-artifacts)"
    )
    parser.add_argument("--prefix", help="key prefix (default: $MLOPS_S3_PREFIX, else models)")
    parser.add_argument(
        "--endpoint",
        help="S3 endpoint URL, also recorded in the ModelVersion (default: $MLOPS_S3_ENDPOINT "
        "or the AWS default, left to the operator's setting in the ModelVersion)",
    )
    parser.add_argument("--region", help="S3 region (default: $MLOPS_S3_REGION)")
    parser.add_argument(
        "--credentials-secret",
        help="Secret the operator and the model server read the artifact with (default: the "
        "operator's); the upload itself uses AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
        "ambient credentials",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the ModelVersion YAML; upload and create nothing",
    )


async def _taken_versions(kube: Kube, namespace: str, model: str) -> set[int]:
    """Every version of ``model`` registered in the namespace or reserved by a TrainingJob."""
    from mlops_operator.kube import client as k8s

    taken: set[int] = set()
    try:
        versions = await kube.list(k8s.MODELVERSIONS, namespace)
        jobs = await kube.list(k8s.TRAININGJOBS, namespace)
    except k8s.KubeError as exc:
        raise api_error(exc, f"list the ModelVersions of {namespace}") from None
    for mv in versions:
        spec = mv.get("spec") or {}
        if spec.get("model") == model and isinstance(spec.get("version"), int):
            taken.add(spec["version"])
    for tj in jobs:
        version = (tj.get("status") or {}).get("version")
        if (tj.get("spec") or {}).get("model") == model and isinstance(version, int):
            taken.add(version)
    return taken


def _inspect(path: Path, features: str | None) -> tuple[str, Any, Any, str]:
    """The file's digest, its estimator, what the server will know of it, and the
    scikit-learn version it was pickled with."""
    import sklearn

    from mlops_operator.artifacts.store import sha256_file
    from mlops_operator.runtime.server.model import LoadError, Manifest, describe, read_estimator

    if not path.is_file():
        raise RegisterError(f"{path} does not exist or is not a file")
    digest = sha256_file(path)
    manifest = None
    if features is not None:
        names = tuple(f.strip() for f in features.split(","))
        if not all(names) or len(set(names)) != len(names):
            raise RegisterError(f"--features {features!r} is not a list of distinct names")
        manifest = Manifest(features=names)
    try:
        estimator, pickled_with = read_estimator(path, str(path))
        info = describe(estimator, digest, str(path), manifest)
    except LoadError as exc:
        raise RegisterError(exc.message) from None
    return digest, estimator, info, pickled_with or sklearn.__version__


def _reference(path: Path, features: Sequence[str]) -> bytes:
    """``reference.json`` for the training data in ``path``: per-feature quantile bins."""
    import numpy as np
    import pandas as pd

    from mlops_operator.runtime.refstats import reference_stats

    if not path.is_file():
        raise RegisterError(f"--reference-data {path} does not exist or is not a file")
    try:
        if path.name.lower().endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
    except (ValueError, OSError, ImportError) as exc:
        raise RegisterError(f"cannot read --reference-data {path}: {exc}") from None
    frame.columns = [str(c) for c in frame.columns]
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise RegisterError(
            f"--reference-data {path} has no column for features {missing} (its columns: "
            f"{list(frame.columns)[:20]}); name the model's features with --features"
        )
    try:
        columns = {f: frame[f].to_numpy(dtype=float, na_value=np.nan) for f in features}
    except (ValueError, TypeError) as exc:
        raise RegisterError(f"--reference-data {path} has a non-numeric feature: {exc}") from None
    return (json.dumps(reference_stats(columns), indent=2) + "\n").encode()


def _gates(raw: Sequence[tuple[str, str, float]]) -> list[Gate]:
    from mlops_operator.api.trainingjob import Gate

    return [
        Gate(metric=name, min=value) if op == ">=" else Gate(metric=name, max=value)
        for name, op, value in raw
    ]


async def register(args: argparse.Namespace) -> str:
    """Register ``args.file``; the line to print on success."""
    from pydantic import ValidationError

    from mlops_operator.api.validation import describe_validation_error
    from mlops_operator.artifacts import layout
    from mlops_operator.artifacts.store import ArtifactStore, StorageError
    from mlops_operator.kube import client as k8s
    from mlops_operator.registry.build import (
        Registration,
        build_model_version,
        manifest_document,
    )
    from mlops_operator.runtime.trainer.output import json_safe
    from mlops_operator.settings import Settings
    from mlops_operator.training.plan import next_version

    digest, estimator, info, framework_version = _inspect(args.file, args.features)
    reference = _reference(args.reference_data, info.features) if args.reference_data else None
    settings = Settings()
    namespace = args.namespace or current_namespace()
    bucket = args.bucket or settings.s3_bucket
    prefix = args.prefix if args.prefix is not None else settings.s3_prefix
    endpoint = args.endpoint or settings.s3_endpoint
    if args.version is not None and args.version < 1:
        raise RegisterError(f"--version must be a positive integer, not {args.version}")

    kube = None if args.dry_run and args.version is not None else connect("register")
    try:
        version = args.version
        if version is None:
            assert kube is not None
            version = next_version(await _taken_versions(kube, namespace, args.model))
        try:
            artifact_uri = layout.version_dir_uri(bucket, prefix, namespace, args.model, version)
        except ValueError as exc:
            raise RegisterError(str(exc)) from None
        reg = Registration(
            model=args.model,
            version=version,
            namespace=namespace,
            artifact_uri=artifact_uri,
            digest=digest,
            task=info.task,
            features=info.features,
            classes=info.classes,
            class_name=f"{type(estimator).__module__}.{type(estimator).__qualname__}",
            framework_version=framework_version,
            params=(
                json_safe(estimator.get_params(deep=False))
                if callable(getattr(estimator, "get_params", None))
                else {}
            ),
            metrics=dict(args.metric),
            gates=_gates(args.gate),
            endpoint=args.endpoint,
            credentials_secret=args.credentials_secret,
        )
        try:
            mv = build_model_version(reg)
        except ValidationError as exc:
            raise RegisterError(describe_validation_error(exc)) from None
        name = mv["metadata"]["name"]
        model_uri = layout.file_uri(artifact_uri, layout.MODEL_FILE)
        manifest_uri = layout.file_uri(artifact_uri, layout.MANIFEST_FILE)
        reference_uri = layout.file_uri(artifact_uri, layout.REFERENCE_FILE)
        if args.dry_run:
            sys.stdout.write(yaml.safe_dump(mv, sort_keys=False))
            return (
                f"dry run: would upload {args.file} ({digest}) to {model_uri} with the inferred "
                f"{layout.MANIFEST_FILE}"
                + (f" and {layout.REFERENCE_FILE}" if reference is not None else "")
                + f", then create ModelVersion {namespace}/{name}"
            )
        assert kube is not None
        try:
            await kube.get(k8s.MODELVERSIONS, namespace, name)
        except k8s.NotFound:
            pass
        except k8s.KubeError as exc:
            raise api_error(exc, f"read ModelVersion {namespace}/{name}") from None
        else:
            raise RegisterError(
                f"ModelVersion {namespace}/{name} already exists; a version is immutable: "
                "register under another --version"
            )

        store = ArtifactStore(endpoint=endpoint, region=args.region or settings.s3_region)
        created_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        manifest = json.dumps(manifest_document(reg, created_at), indent=2) + "\n"
        try:
            if await asyncio.to_thread(store.exists, artifact_uri):
                raise RegisterError(
                    f"{artifact_uri} already holds files (of a version registered before?); "
                    "nothing is ever overwritten: register under another --version"
                )
            if reference is not None:
                await asyncio.to_thread(store.write_bytes, reference_uri, reference)
            await asyncio.to_thread(store.upload_file, args.file, model_uri)
            # The manifest last, as the trainer writes it: its presence marks a whole directory.
            await asyncio.to_thread(store.write_bytes, manifest_uri, manifest.encode())
        except StorageError as exc:
            raise RegisterError(exc.message) from None

        try:
            await kube.create(k8s.MODELVERSIONS, namespace, mv)
        except k8s.KubeError as exc:
            # The directory was empty before: what is in it now is ours, and unregistered.
            with contextlib.suppress(StorageError):
                for uri in (manifest_uri, model_uri, reference_uri):
                    await asyncio.to_thread(store.delete, uri)
            if isinstance(exc, k8s.Conflict):
                raise RegisterError(
                    f"ModelVersion {namespace}/{name} was created meanwhile by someone else; "
                    "the upload was removed: register under another --version"
                ) from None
            raise api_error(exc, f"create ModelVersion {namespace}/{name}") from None
        return (
            f"modelversion.mlops.dev/{name} created in {namespace}: {info.task}, "
            f"{len(info.features)} features, {digest} at {artifact_uri}\n"
            f"wait for it: kubectl wait -n {namespace} --for=condition=Ready "
            f"modelversion/{name}"
        )
    finally:
        if kube is not None:
            kube.close()


def register_command(args: argparse.Namespace) -> int:
    """``mlops-operator register``: exit code 0 on success, 1 on a failure said on stderr."""
    return run_command("register", register(args), to_stderr=args.dry_run)
