"""The commands the builders put into pod specs run in the images: they start with the image's
ENTRYPOINT and the CLI accepts their subcommand and every flag; and the CLI, the operator and
the runtime import without the sandbox extra, which the images do not install."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_operator.api.inferenceservice import InferenceServiceSpec
from mlops_operator.api.modelversion import ModelVersionSpec
from mlops_operator.api.trainingjob import TrainingJobSpec
from mlops_operator.artifacts.storage import ResolvedStorage
from mlops_operator.cli import build_parser
from mlops_operator.serving.build import build_deployment
from mlops_operator.training.build import build_training_job

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
STORAGE = ResolvedStorage("mlops-artifacts", "models", "http://minio:9000", None, "s3-creds")


def entrypoint(image: str) -> list[str]:
    """The exec-form ENTRYPOINT of images/<image>/Dockerfile."""
    text = (ROOT / "images" / image / "Dockerfile").read_text()
    (found,) = re.findall(r"^ENTRYPOINT\s+(\[.*\])\s*$", text, flags=re.MULTILINE)
    value: list[str] = json.loads(found)
    return value


def example(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())["spec"]
    return spec


def container_argv(workload: dict[str, Any]) -> list[str]:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return [*container["command"], *container.get("args", [])]


def training_argv(example_file: str) -> list[str]:
    job = build_training_job(
        name="example",
        namespace="mlops",
        uid="00000000-0000-0000-0000-000000000000",
        spec=TrainingJobSpec.model_validate(example(example_file)),
        image="mlops-operator-runtime:test",
        storage=STORAGE,
        output_uri="s3://mlops-artifacts/models/example/runs/example/",
        allowed_prefixes=["sklearn."],
        ttl_seconds=3600,
    )
    return container_argv(job)


def serving_argv() -> list[str]:
    deployment = build_deployment(
        name="breast-cancer",
        namespace="mlops",
        spec=InferenceServiceSpec.model_validate(example("inferenceservice.yaml")),
        model_version=ModelVersionSpec.model_validate(example("modelversion-by-hand.yaml")),
        image="mlops-operator-runtime:test",
        storage=STORAGE,
    )
    return container_argv(deployment)


POD_COMMANDS = {
    "train-classification": lambda: training_argv("trainingjob-classification.yaml"),
    "train-regression": lambda: training_argv("trainingjob-regression.yaml"),
    "serve": serving_argv,
}


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse like the console script; argparse's exit on a bad flag becomes a test failure."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"mlops-operator rejects {argv}: exit {exc.code}")


@pytest.mark.parametrize("pod", POD_COMMANDS)
def test_pod_command_starts_with_the_runtime_images_entrypoint(pod: str) -> None:
    argv = POD_COMMANDS[pod]()
    prefix = entrypoint("runtime")
    assert argv[: len(prefix)] == prefix


@pytest.mark.parametrize("pod", POD_COMMANDS)
def test_cli_accepts_the_pod_commands_subcommand_and_every_flag(
    pod: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = POD_COMMANDS[pod]()[len(entrypoint("runtime")) :]
    args = parse(argv)
    assert args.command == argv[0] and callable(args.func)
    assert capsys.readouterr().err == ""


def test_cli_accepts_the_serve_values_it_is_given() -> None:
    argv = serving_argv()[len(entrypoint("runtime")) :]
    args = vars(parse(argv))
    # Each --flag value reaches its destination unchanged (a typo'd dest would not).
    flags = {argv[i]: argv[i + 1] for i in range(1, len(argv), 2)}
    assert flags["--digest"] == args["digest"]
    assert flags["--model-uri"] == args["model_uri"]
    assert str(args["port"]) == flags["--port"]


@pytest.mark.parametrize("image", ["operator", "runtime"])
def test_images_default_command_parses(image: str) -> None:
    text = (ROOT / "images" / image / "Dockerfile").read_text()
    (cmd,) = re.findall(r"^CMD\s+(\[.*\])\s*$", text, flags=re.MULTILINE)
    argv: list[str] = json.loads(cmd)
    if argv == ["--help"]:
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args(argv)
        assert exc.value.code == 0
    else:
        assert parse(argv).command == "run"


def test_cli_operator_and_runtime_import_without_the_sandbox_extra() -> None:
    # The images install the package without extras: block every distribution that only
    # the `sandbox` extra brings in, then import what the containers run.
    script = textwrap.dedent(
        """
        import importlib.abc, sys
        from importlib import metadata
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name

        def closure(name, extras=()):
            seen, todo = set(), [(name, tuple(extras))]
            while todo:
                dist_name, active = todo.pop()
                key = (canonicalize_name(dist_name), active)
                if key in seen:
                    continue
                seen.add(key)
                try:
                    requires = metadata.distribution(dist_name).requires or []
                except metadata.PackageNotFoundError:
                    continue
                envs = [{"extra": e} for e in active] or [{"extra": ""}]
                for line in requires:
                    req = Requirement(line)
                    if req.marker is None or any(req.marker.evaluate(e) for e in envs):
                        todo.append((req.name, tuple(sorted(req.extras))))
            return {dist for dist, _ in seen}

        extra_only = closure("mlops-operator", ["sandbox"]) - closure("mlops-operator")
        assert {"kmock", "moto"} <= extra_only, extra_only
        blocked = {
            module
            for module, dists in metadata.packages_distributions().items()
            if any(canonicalize_name(d) in extra_only for d in dists)
        }

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in blocked:
                    raise ModuleNotFoundError(f"{name} is not installed in the images")

        sys.meta_path.insert(0, Block())
        from mlops_operator.cli import build_parser
        build_parser().parse_args(["run"])
        import mlops_operator.main
        import mlops_operator.runtime.trainer
        import mlops_operator.runtime.server.app
        print("imported")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"
