"""The ``mlops-operator`` command: one entrypoint for the operator and the runtime (the local
sandbox has its own, ``mlops-sandbox``)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from mlops_operator.kube.client import Kube

RUNTIME_MODULES: Final = (
    "sklearn",
    "joblib",
    "numpy",
    "pandas",
    "pyarrow",
    "starlette",
    "uvicorn",
    "orjson",
    "grpc",
    "google",  # protobuf
)
"""What the ``runtime`` extra installs, by import name: ``train`` and ``serve`` need it; the
operator image (``run``, ``crds``) does not have it."""

EXIT_NO_RUNTIME: Final = 2
"""The exit code of ``train`` and ``serve`` without the runtime extra: no retry can fix it, so
it is the trainer's ``EXIT_PERMANENT`` (a training Job then fails at once)."""

EXIT_FAILED: Final = 1
"""The exit code of ``register`` and ``retrain`` on a failure they said on stderr."""


class CommandError(Exception):
    """A failure the user can act on: one line on stderr, exit code :data:`EXIT_FAILED`."""


def run_command(command: str, work: Coroutine[Any, Any, str], *, to_stderr: bool = False) -> int:
    """Run a command's coroutine: the message it returns on stdout (stderr if ``to_stderr``)
    and exit code 0, or its :class:`CommandError` as one line ``mlops-operator <command>:
    <error>`` on stderr and :data:`EXIT_FAILED`."""
    import asyncio

    try:
        message = asyncio.run(work)
    except CommandError as exc:
        print(f"mlops-operator {command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(message, file=sys.stderr if to_stderr else sys.stdout)
    return 0


def current_namespace() -> str:
    """The namespace a command works in without ``--namespace``: the kubeconfig context's,
    else the pod's service account's, else ``default``."""
    import kubernetes

    try:
        _, current = kubernetes.config.list_kube_config_contexts()  # type: ignore[no-untyped-call]
        namespace = (current or {}).get("context", {}).get("namespace")
    except (kubernetes.config.ConfigException, OSError):
        namespace = None
    if not namespace:
        path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        namespace = path.read_text().strip() if path.is_file() else None
    return namespace or "default"


def connect(command: str) -> Kube:
    """The API client of ``mlops-operator <command>`` (User-Agent ``mlops-operator-<command>``);
    a :class:`CommandError` without a kubeconfig or a service account."""
    import kubernetes

    from mlops_operator.kube.client import Kube

    try:
        return Kube.from_environment(agent=f"mlops-operator-{command}")
    except (kubernetes.config.ConfigException, OSError) as exc:
        raise CommandError(
            f"no Kubernetes configuration: {exc} (set KUBECONFIG or run inside a cluster)"
        ) from None


def api_error(exc: Exception, what: str) -> CommandError:
    """The :class:`CommandError` that says why the API call to ``what`` failed."""
    from mlops_operator.kube.client import KubeError, Transient

    if isinstance(exc, Transient) and exc.status == 0:
        return CommandError(f"cannot reach the Kubernetes API to {what}: {exc.message}")
    if isinstance(exc, KubeError):
        return CommandError(f"the Kubernetes API refused to {what} ({exc.status}): {exc.message}")
    return CommandError(f"cannot {what}: {exc}")


def _crds(args: argparse.Namespace) -> int:
    from mlops_operator.api import crds

    if args.output_dir:
        for path in crds.write(Path(args.output_dir)):
            print(f"wrote {path}")
        if args.reference:
            from mlops_operator.api import reference

            print(f"wrote {reference.write(Path(args.reference))}")
    else:
        sys.stdout.write(crds.render_all())
    return 0


def _run(args: argparse.Namespace) -> int:
    from mlops_operator.main import run

    return run(
        namespaces=args.namespace or [],
        standalone=args.standalone,
        verbose=args.verbose,
        liveness=args.liveness,
        metrics_port=args.metrics_port,
    )


def _missing_runtime(command: str) -> bool:
    """Whether the runtime extra is missing, said on one line of stderr if so."""
    missing = [name for name in RUNTIME_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"mlops-operator {command}: the runtime extra is not installed (no module "
            f"{', '.join(missing)}); install 'mlops-operator[runtime]' or use the runtime image",
            file=sys.stderr,
        )
    return bool(missing)


def _train(args: argparse.Namespace) -> int:
    if _missing_runtime("train"):
        return EXIT_NO_RUNTIME
    from mlops_operator.runtime.trainer.command import train_command

    return train_command(manifest_path=args.file, output=args.output)


def _serve(args: argparse.Namespace) -> int:
    if _missing_runtime("serve"):
        return EXIT_NO_RUNTIME
    from mlops_operator.runtime.server.cli import serve_command

    return serve_command(args)


def _register(args: argparse.Namespace) -> int:
    if _missing_runtime("register"):
        return EXIT_NO_RUNTIME
    from mlops_operator.registry.register import register_command

    return register_command(args)


def _retrain(args: argparse.Namespace) -> int:
    from mlops_operator.training.retrain import retrain_command

    return retrain_command(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="mlops-operator",
        description="Train, register, serve, monitor and roll back models on Kubernetes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the operator against the current kubeconfig")
    run.add_argument(
        "--namespace",
        "-n",
        action="append",
        help="watch this namespace; repeat for several (default: the whole cluster)",
    )
    run.add_argument(
        "--standalone", action="store_true", help="no peering/leader election (one replica only)"
    )
    run.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    run.add_argument(
        "--liveness", help="serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz"
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("MLOPS_METRICS_PORT", "0")),
        help="serve the operator's Prometheus metrics on this port "
        "(default: $MLOPS_METRICS_PORT, else 0 = off)",
    )
    run.set_defaults(func=_run)

    crds = sub.add_parser("crds", help="print the CustomResourceDefinitions as YAML")
    crds.add_argument("--output-dir", "-o", help="write one file per CRD into this folder")
    crds.add_argument("--reference", help="also write the Markdown API reference to this file")
    crds.set_defaults(func=_crds)

    train = sub.add_parser("train", help="train a model from a TrainingJob (runs in the Job's pod)")
    train.add_argument(
        "--file",
        "-f",
        help="TrainingJob manifest (YAML or JSON, '-' for stdin); "
        "default: the MLOPS_TRAININGJOB environment variable",
    )
    train.add_argument(
        "--output",
        help="artifact directory URI (s3://bucket/prefix/ or file:///path/); "
        "default: s3://<bucket>/<prefix>/_local/<model>/runs/<name>/ from the spec and settings",
    )
    train.set_defaults(func=_train)

    from mlops_operator.runtime.server.cli import configure_parser as configure_serve

    serve = sub.add_parser(
        "serve", help="serve a model over HTTP and gRPC (runs in a predictor's pod)"
    )
    configure_serve(serve)
    serve.set_defaults(func=_serve)

    from mlops_operator.registry.register import configure_parser as configure_register

    register = sub.add_parser(
        "register",
        help="register a model trained elsewhere: upload model.joblib, create its ModelVersion",
        description="Hash and upload a local model.joblib with an inferred manifest.json to "
        "<bucket>/<prefix>/<namespace>/<model>/<version>/, then create the ModelVersion "
        "<model>-v<version> through the Kubernetes API (kubeconfig or in-cluster).",
    )
    configure_register(register)
    register.set_defaults(func=_register)

    from mlops_operator.training.retrain import configure_parser as configure_retrain

    retrain = sub.add_parser(
        "retrain",
        help="train a ModelVersion again from its lineage: create a TrainingJob",
        description="Read the ModelVersion's spec.source.trainingSpec (the dataset pinned to "
        "the object version it read) and create a TrainingJob with it, so the same data, "
        "parameters and split train again.",
    )
    configure_retrain(retrain)
    retrain.set_defaults(func=_retrain)

    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``mlops-operator`` console script."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    sys.exit(func(args))
