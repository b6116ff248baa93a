"""The ``mlops-sandbox`` command: ``up`` runs the local cluster, ``demo`` plays the whole loop."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from mlops_sandbox import cluster, demo, fault_cli


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="mlops-sandbox",
        description="A local cluster for mlops-operator: API emulator, S3 and workload runner.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="start a local cluster: API emulator, S3 and workload runner")
    cluster.configure_parser(up)
    up.set_defaults(func=cluster.sandbox_command)
    play = sub.add_parser("demo", help="train, serve, degrade, roll back and retrain, narrated")
    demo.configure_parser(play)
    play.set_defaults(func=demo.demo_command)
    fault = sub.add_parser(
        "fault", help="inject API and S3 faults into a running sandbox (docs/faults.md)"
    )
    fault_cli.configure_parser(fault)
    fault.set_defaults(func=fault_cli.fault_command)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``mlops-sandbox`` console script."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    sys.exit(func(args))
