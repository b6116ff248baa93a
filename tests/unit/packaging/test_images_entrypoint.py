"""The commands the builders put into pod specs run in the images: they start with the image's
ENTRYPOINT and the CLI accepts their subcommand and every flag. Each image has only what its
install brings: the operator (base dependencies) imports and runs `run` and `crds` without the
ML stack and says so in one line for `train` and `serve`; the runtime (the `runtime` extra)
imports the trainer and the model server; neither has the sandbox."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mlops_operator.api.inferenceservice import InferenceServiceSpec
from mlops_operator.api.modelversion import ModelVersionSpec
from mlops_operator.api.trainingjob import TrainingJobSpec
from mlops_operator.artifacts.storage import ResolvedStorage
from mlops_operator.cli import EXIT_NO_RUNTIME, RUNTIME_MODULES, build_parser
from mlops_operator.runtime.termination import EXIT_PERMANENT
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
        model_version=ModelVersionSpec.model_validate(
            example("templates/modelversion-by-hand.yaml")
        ),
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


# Run in a fresh interpreter: computes the distributions an install of the project with the
# given extras brings (the project's requirements from pyproject.toml, the rest from the
# installed metadata), makes every other installed module unimportable, then runs the checks.
INSTALL_ONLY = textwrap.dedent(
    """
    import sys, tomllib
    from importlib import metadata
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    PROJECT = canonicalize_name("mlops-operator")

    def project_requirements(pyproject, extras):
        project = tomllib.load(open(pyproject, "rb"))["project"]
        found, todo, seen = list(project["dependencies"]), list(extras), set()
        while todo:
            extra = todo.pop()
            if extra in seen:
                continue
            seen.add(extra)
            for line in project["optional-dependencies"][extra]:
                req = Requirement(line)
                if canonicalize_name(req.name) == PROJECT:
                    todo.extend(req.extras)
                else:
                    found.append(line)
        return found

    def closure(requirements):
        seen, todo = set(), [Requirement(line) for line in requirements]
        while todo:
            req = todo.pop()
            key = (canonicalize_name(req.name), tuple(sorted(req.extras)))
            if key in seen or (req.marker is not None and not any(
                req.marker.evaluate({"extra": e}) for e in (req.extras or {""})
            )):
                continue
            seen.add(key)
            try:
                requires = metadata.distribution(req.name).requires or []
            except metadata.PackageNotFoundError:
                continue
            for line in requires:
                sub = Requirement(line)
                if sub.marker is None or any(
                    sub.marker.evaluate({"extra": e}) for e in (req.extras or {""})
                ):
                    todo.append(Requirement(str(sub).split(";")[0]))
        return {name for name, _ in seen}

    pyproject, *extras = sys.argv[1:]
    installed = closure(project_requirements(pyproject, extras)) | {PROJECT}
    blocked = {"mlops_sandbox"} | {
        module
        for module, dists in metadata.packages_distributions().items()
        if not any(canonicalize_name(d) in installed for d in dists)
    }
    for module in blocked - set(sys.modules):
        sys.modules[module] = None  # import fails, find_spec says "not installed"
    print(*sorted(installed), sep=",")
    """
)


def run_with_install_only(extras: list[str], checks: str) -> subprocess.CompletedProcess[str]:
    """Run ``checks`` in a fresh interpreter where only an install with ``extras`` is present;
    its first line of output lists the installed distributions."""
    return subprocess.run(
        [sys.executable, "-c", INSTALL_ONLY + textwrap.dedent(checks), ROOT / "pyproject.toml"]
        + extras,
        capture_output=True,
        text=True,
        timeout=120,
    )


ML_STACK = {"scikit-learn", "scipy", "numpy", "pandas", "pyarrow", "joblib"}
SERVER = {"starlette", "uvicorn", "orjson"}
# (jsonpatch is not here: kopf depends on it.)
SANDBOX = {"kmock", "moto", "jsonschema", "rich"}


def test_the_operator_runs_with_the_base_install_only() -> None:
    result = run_with_install_only(
        [],
        """
        import contextlib, importlib, io, pkgutil
        import mlops_operator
        from mlops_operator.cli import main

        # Every operator module, and whatever runtime modules they import (not the runtime);
        # not __main__, which would run the command.
        for info in pkgutil.walk_packages(mlops_operator.__path__, "mlops_operator."):
            if not info.name.startswith(("mlops_operator.runtime.", "mlops_operator.__main__")):
                importlib.import_module(info.name)
        with contextlib.redirect_stdout(io.StringIO()) as out:
            try:
                main(["crds"])
            except SystemExit as exit:
                assert exit.code == 0, exit.code
        assert "kind: CustomResourceDefinition" in out.getvalue()
        for argv in (["train"], ["serve", "--model-uri", "s3://abc/m/", "--digest",
                                 "sha256:" + "0" * 64, "--name", "m"]):
            try:
                main(argv)
            except SystemExit as exit:
                print(argv[0], exit.code)
        # boto3 is installed but imported only where a storage client is built.
        heavy = {"sklearn", "numpy", "pandas", "pyarrow", "joblib", "boto3", "botocore"}
        print("loaded:", sorted(m for m in heavy if sys.modules.get(m) is not None))
        """,
    )
    assert result.returncode == 0, result.stderr
    installed, *lines = result.stdout.splitlines()
    assert not (ML_STACK | SERVER | SANDBOX) & set(installed.split(","))
    assert {"kopf", "kubernetes", "boto3", "pydantic"} <= set(installed.split(","))
    assert lines == [f"train {EXIT_NO_RUNTIME}", f"serve {EXIT_NO_RUNTIME}", "loaded: []"]
    said = result.stderr.splitlines()
    assert len(said) == 2
    for command, line in zip(["train", "serve"], said, strict=True):
        assert line.startswith(f"mlops-operator {command}: the runtime extra is not installed")
        assert "install 'mlops-operator[runtime]' or use the runtime image" in line


def test_the_runtime_imports_the_trainer_and_the_server_with_its_extra_only() -> None:
    result = run_with_install_only(
        ["runtime"],
        """
        import importlib, pkgutil
        import mlops_operator.runtime
        from mlops_operator.cli import build_parser

        for info in pkgutil.walk_packages(
            mlops_operator.runtime.__path__, "mlops_operator.runtime."
        ):
            importlib.import_module(info.name)
        import sklearn.ensemble, pandas, pyarrow, joblib
        print("imported")
        """,
    )
    assert result.returncode == 0, result.stderr
    installed, *lines = result.stdout.splitlines()
    assert ML_STACK | SERVER <= set(installed.split(","))
    assert not SANDBOX & set(installed.split(","))
    assert lines == ["imported"]


def test_the_cli_knows_the_runtime_extra_by_its_import_names() -> None:
    runtime = [
        Requirement(line).name
        for line in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
            "optional-dependencies"
        ]["runtime"]
    ]
    owners = importlib.metadata.packages_distributions()
    provided = {
        canonicalize_name(dist): module
        for module in RUNTIME_MODULES
        for dist in owners.get(module, [])
    }
    assert {canonicalize_name(name) for name in runtime} == set(provided)


def test_train_without_the_runtime_fails_the_job_at_once() -> None:
    assert EXIT_NO_RUNTIME == EXIT_PERMANENT
