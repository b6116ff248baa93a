"""The Dockerfiles in images/: lint-clean under hadolint, multi-stage on one pinned slim base,
non-root with the UID the pod builders run as, built from pyproject.toml and the mlops_operator
package only (no sandbox), the operator without extras and the runtime with `runtime`."""

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
    """The instructions of each build stage, FROM first."""
    found: list[list[Instruction]] = []
    for instruction in instructions(path):
        if instruction[0] == "FROM":
            found.append([])
        found[-1].append(instruction)
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
def test_build_is_multi_stage_on_one_pinned_slim_base(image: str) -> None:
    builder, final = stages(DOCKERFILES[image])
    base, _, name = one(builder, "FROM").partition(" AS ")
    assert name == "builder"
    assert PINNED_SLIM.match(base), base
    # The venv's interpreter symlinks only resolve on the same base.
    assert one(final, "FROM") == base


def builder_commands(image: str) -> list[str]:
    """The commands of the builder's one RUN, split at ``&&``."""
    builder, _ = stages(DOCKERFILES[image])
    (run,) = [args for keyword, args in builder if keyword == "RUN"]
    return [" ".join(command.split()) for command in run.split("&&")]


@pytest.mark.parametrize("image", DOCKERFILES)
def test_builder_builds_a_wheel_of_the_operator_package_only(image: str) -> None:
    builder, _ = stages(DOCKERFILES[image])
    copied = [args for keyword, args in builder if keyword == "COPY"]
    # mlops_sandbox is never copied, so the wheel built here cannot contain it.
    assert copied == [
        "pyproject.toml README.md ./",
        "operator/mlops_operator/ operator/mlops_operator/",
    ]
    assert "/opt/venv/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ." in (
        builder_commands(image)
    )


@pytest.mark.parametrize("image", DOCKERFILES)
def test_builder_installs_the_wheel_with_the_images_extra(image: str) -> None:
    installs = [c for c in builder_commands(image) if c.startswith("/opt/venv/bin/pip install")]
    extra = EXTRA[image]
    if extra is None:
        assert installs == ["/opt/venv/bin/pip install --no-cache-dir /wheels/mlops_operator-*.whl"]
    else:
        assert extra in PYPROJECT["project"]["optional-dependencies"]
        assert 'wheel="$(echo /wheels/mlops_operator-*.whl)"' in builder_commands(image)
        assert installs == [
            f'/opt/venv/bin/pip install --no-cache-dir "mlops-operator[{extra}] @ file://${{wheel}}"'
        ]


@pytest.mark.parametrize("image", DOCKERFILES)
def test_builder_removes_the_sandbox_console_script_the_wheel_declares(image: str) -> None:
    sandbox_scripts = [
        name
        for name, target in PYPROJECT["project"]["scripts"].items()
        if target.startswith("mlops_sandbox")
    ]
    assert sandbox_scripts
    removed = [c for c in builder_commands(image) if c.startswith("rm ")]
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
def test_labels_carry_the_project_version_and_license(image: str) -> None:
    _, final = stages(DOCKERFILES[image])
    assert one(final, "ARG") == f"VERSION={PYPROJECT['project']['version']}"
    labels = one(final, "LABEL")
    for key in ("title", "description", "version", "licenses", "base.name"):
        assert f"org.opencontainers.image.{key}=" in labels
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
